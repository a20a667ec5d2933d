"""What a parsed frame may hand the runtime: a sink that checks every value it is given.

Adapters promise two things (see ``feeder.exchanges.base``): a frame they cannot use raises
``ParseError``, and anything they do hand on fits what the books and the wire carry. The wire
stores prices and quantities as signed 64-bit fixed point and sequences, ids and timestamps as
unsigned 64-bit, so a value outside those ranges is a bug in the adapter even when it parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from feeder.exchanges.base import Adapter, BookUpdate, ParseError
from feeder.wire import PacketEncoder, Side

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
U64_MAX = (1 << 64) - 1
CONTROL_KINDS = {"subscribed", "pong", "ping", "error", "info"}
SIDES = {int(Side.BUY), int(Side.SELL)}


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: object) -> str:
    return f"{value.bit_length()}-bit int" if isinstance(value, int) else f"{value!r:.60}"


def check_i64(what: str, value: object) -> None:
    assert is_int(value), f"{what}={_show(value)} is not an int"
    assert isinstance(value, int) and I64_MIN <= value <= I64_MAX, f"{what}={_show(value)}"


def check_u64(what: str, value: object) -> None:
    assert is_int(value), f"{what}={_show(value)} is not an int"
    assert isinstance(value, int) and 0 <= value <= U64_MAX, f"{what}={_show(value)}"


def check_levels(what: str, levels: object) -> None:
    assert isinstance(levels, list), f"{what} is {type(levels).__name__}, not a list"
    for level in levels:
        assert isinstance(level, tuple) and len(level) == 2, f"{what} level {level!r}"
        check_i64(f"{what} price", level[0])
        check_i64(f"{what} qty", level[1])


def check_update(update: object, receive_ts_ns: int) -> None:
    assert isinstance(update, BookUpdate), f"book update is {type(update).__name__}"
    assert isinstance(update.snapshot, bool)
    check_levels("bids", update.bids)
    check_levels("asks", update.asks)
    check_u64("first_seq", update.first_seq)
    check_u64("last_seq", update.last_seq)
    # prev_seq and checksum are only compared, never sent: any int will do (OKX links to -1).
    assert is_int(update.prev_seq), f"prev_seq={update.prev_seq!r}"
    assert update.checksum is None or is_int(update.checksum), f"checksum={update.checksum!r}"
    check_u64("exchange_ts_ns", update.exchange_ts_ns)
    assert update.receive_ts_ns == receive_ts_ns


def _lookup(symbol: object) -> None:
    """What the runtime's router does with a symbol: look it up among the subscribed ones.

    A symbol of the wrong type is not the adapter's to police: an unknown one is counted by
    the router, an unhashable one fails this lookup with TypeError inside ``parse``, which the
    adapter must turn into ``ParseError`` like any other bad frame.
    """
    _SUBSCRIBED.get(symbol)  # type: ignore[call-overload]


_SUBSCRIBED: dict[str, None] = {}


@dataclass
class CheckingSink:
    """Records what a parse produced, asserting each value is well-formed as it arrives."""

    receive_ts_ns: int = 1_700_000_000_000_000_000
    trades: int = 0
    books: int = 0
    controls: list[tuple[str, str]] = field(default_factory=list)
    _encoder: PacketEncoder = field(default_factory=lambda: PacketEncoder(1, 1))
    _buffer: bytearray = field(default_factory=lambda: bytearray(1500))

    def trade(
        self,
        symbol: str,
        side: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        _lookup(symbol)
        assert side in SIDES, f"trade side {side!r}"
        check_i64("trade price", price)
        check_i64("trade qty", qty)
        assert is_int(trade_id), f"trade_id={_show(trade_id)}"
        assert is_int(exchange_ts_ns), f"exchange_ts_ns={_show(exchange_ts_ns)}"
        assert receive_ts_ns == self.receive_ts_ns
        # A trade is encoded at once, inside parse: the encoder's range checks (ValueError)
        # are the adapter's to turn into ParseError, as they are in the runtime.
        enc = self._encoder
        enc.discard()
        enc.begin(self._buffer, 1)
        enc.add_trade(1, side, 0, price, qty, trade_id, exchange_ts_ns, receive_ts_ns)
        self.trades += 1

    def book(self, symbol: str, update: BookUpdate) -> None:
        _lookup(symbol)
        check_update(update, self.receive_ts_ns)
        self.books += 1

    def control(self, kind: str, detail: str) -> None:
        assert kind in CONTROL_KINDS, f"control kind {kind!r}"
        assert isinstance(detail, str), f"control detail {detail!r}"
        self.controls.append((kind, detail))


REASON = re.compile(r"[a-z_]{1,32}")  # a counter key: short, and from a closed set


def parse_checked(adapter: Adapter, frame: str | bytes) -> str | None:
    """Parse into a checking sink; the ParseError reason, or None when the frame was used.

    Any other exception, or a malformed value handed to the sink, fails the calling test.
    """
    sink = CheckingSink()
    try:
        adapter.parse(frame, sink.receive_ts_ns, sink)
    except ParseError as e:
        assert REASON.fullmatch(e.reason), f"reason {e.reason!r} is not a short code"
        return e.reason
    return None
