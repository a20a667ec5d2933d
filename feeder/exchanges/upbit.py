"""Upbit quotation WebSocket: types ``trade`` and ``orderbook`` (DEFAULT format).

Endpoint ``wss://api.upbit.com/websocket/v1`` (Upbit docs, "WebSocket 사용 안내" and the
``trade``/``orderbook`` references). A request is one JSON array
``[{"ticket": ..}, {"type": "trade", "codes": [..]}, {"type": "orderbook", "codes": [..]},
{"format": "DEFAULT"}]``; the answer frames are JSON in BINARY WebSocket frames, so ``parse``
takes bytes. Upbit has no unsubscribe and no acknowledgement: a new request on a connection
replaces that connection's whole subscription (docs "WebSocket 연동 Best Practice"). The adapter
therefore remembers its codes and every request carries all of them; removing the last code
sends nothing (close the connection instead). Errors come back as
``{"error": {"name": .., "message": ..}}``.

Book procedure: every ``orderbook`` message is the complete top of the book, ``orderbook_units``
pairing the i-th ask with the i-th bid (30 pairs unless a ``{code}.{count}`` suffix asks for 1, 5
or 15). Each one replaces the book (``BookUpdate(snapshot=True)``), so there is nothing to
sequence (``NoSequence``), no checksum, and a lost message costs only that one update; the book
is kept to the 30 levels Upbit sends. Numbers are JSON numbers: ``from_float`` recovers the exact
decimal (at most 15 significant digits; anything else is ``inexact``).

Trades are subscribed with ``is_only_realtime`` (no replay of the last trade on subscribing).
``ask_bid`` is the aggressor: ``ASK`` a sell, ``BID`` a buy. ``sequential_id`` is published as
the trade id; Upbit says it identifies a trade uniquely but does not order trades.

Keepalive (docs "연결 관리"): the server closes a connection idle for 120 s. The client sends the
text ``PING`` every 60 s; the server then answers ``{"status":"UP"}`` (every 10 s while the
connection lives), reported as ``pong``. Limits (docs "요청 수 제한"): 5 data requests per
second per connection. No cap on codes per request is documented.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from feeder.book.sequence import NoSequence, SequenceRule
from feeder.exchanges.base import (
    Adapter,
    BookUpdate,
    ParseError,
    Ping,
    Sink,
    SnapshotSource,
    json_object,
)
from feeder.normalize.decimal import FLOAT, InexactValue, NumberCache, from_float, parse
from feeder.wire import Exchange, Side

_RULE = NoSequence()
DEPTH = 30
_SIDES = {"ASK": Side.SELL, "BID": Side.BUY}
_U64 = 1 << 64
MICROS_FROM = 10**15  # a 16-digit epoch timestamp is in microseconds, 13 digits milliseconds


def _ping() -> str:
    return "PING"


def number(value: object, scale: int) -> int:
    """A JSON number (or, defensively, a numeric string) as an exact fixed-point int."""
    if isinstance(value, str):
        return parse(value, scale)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_float(value, scale)
    raise TypeError(f"not a number: {value!r}")


# number() remembered, by scale: a whole-book frame repeats almost every value of the last one.
_NUMBERS = [NumberCache(scale, number) for scale in range(len(FLOAT))]


def epoch_ns(value: object) -> int:
    """Epoch milliseconds (documented) or microseconds (some Bithumb frames), number or text."""
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise TypeError(f"not a timestamp: {value!r}")
    t = int(value)
    return t * 1000 if t >= MICROS_FROM else t * 1_000_000


def trade_id(value: object) -> int:
    """``sequential_id`` (number or text) as an unsigned 64-bit id; 0 when out of that range."""
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise TypeError(f"not an id: {value!r}")
    n = int(value)
    return n if 0 <= n < _U64 else 0


class UpbitAdapter(Adapter):
    name = "upbit"
    symbol_pattern = r"[A-Z]+-[A-Z0-9]+"
    symbol_example = "KRW-BTC"
    exchange_id = int(Exchange.UPBIT)
    ws_url = "wss://api.upbit.com/websocket/v1"
    rest_url = "https://api.upbit.com"
    snapshot_source = SnapshotSource.PUSH
    ping = Ping(interval_s=60.0, message=_ping, stale_after_s=30.0)
    subscribe_rate = 5.0
    # One request must name every code (it replaces the subscription), so never split.
    symbols_per_message = 1_000
    book_depth = DEPTH

    def __init__(
        self, price_scale: int = 8, qty_scale: int = 8, *, ticket: str | None = None
    ) -> None:
        super().__init__(price_scale, qty_scale)
        self.ticket = ticket or f"feeder-{uuid.uuid4()}"
        self._codes: dict[str, None] = {}  # ordered set of subscribed codes

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    @property
    def codes(self) -> list[str]:
        return list(self._codes)

    def _request(self) -> list[str]:
        if not self._codes:
            return []
        codes = list(self._codes)
        return [
            orjson.dumps(
                [
                    {"ticket": self.ticket},
                    {"type": "trade", "codes": codes, "is_only_realtime": True},
                    {"type": "orderbook", "codes": codes},
                    {"format": "DEFAULT"},
                ]
            ).decode()
        ]

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        for s in symbols:
            self._codes[s.upper()] = None  # codes must be upper case
        return self._request()

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        for s in symbols:
            self._codes.pop(s.upper(), None)
        return self._request()

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        msg = json_object(frame)
        try:
            kind = msg.get("type")
            if kind == "orderbook":
                self._orderbook(msg, receive_ts_ns, sink)
            elif kind == "trade":
                if msg.get("stream_type") == "SNAPSHOT":
                    return  # a repeat of the latest trade, not a new one
                side = _SIDES.get(msg["ask_bid"])
                if side is None:
                    raise ParseError("unexpected", f"ask_bid {msg['ask_bid']!r}")
                sink.trade(
                    msg["code"],
                    side,
                    number(msg["trade_price"], self.price_scale),
                    number(msg["trade_volume"], self.qty_scale),
                    trade_id(msg["sequential_id"]),
                    epoch_ns(msg["trade_timestamp"]),
                    receive_ts_ns,
                )
            elif kind is not None:
                sink.control("info", f"unhandled type {kind!r}")
            elif "status" in msg:
                sink.control("pong", str(msg["status"]))
            elif "error" in msg:
                err = msg["error"]
                if isinstance(err, dict):
                    sink.control("error", f"{err.get('name')}: {err.get('message')}")
                else:
                    sink.control("error", str(err))
            else:
                raise ParseError("unexpected", f"keys {sorted(msg)[:5]}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _orderbook(self, msg: dict[str, Any], receive_ts_ns: int, sink: Sink) -> None:
        units = msg["orderbook_units"]
        try:
            bids, asks = _units(units, _NUMBERS[self.price_scale], _NUMBERS[self.qty_scale])
        except TypeError:  # an unhashable value: let number() name it as it always did
            bids, asks = _units(units, _Direct(self.price_scale), _Direct(self.qty_scale))
        sink.book(
            msg["code"],
            # Positional (first, last, prev seq, checksum, exchange ts, receive ts): every book
            # frame builds one, and keyword arguments cost a third of the call.
            BookUpdate(
                True,
                bids,
                asks,
                0,
                0,
                0,
                None,
                epoch_ns(msg["timestamp"]),
                receive_ts_ns,
            ),
        )


class _Direct:
    """``number`` at one scale, indexed like a ``NumberCache`` but remembering nothing."""

    __slots__ = ("scale",)

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def __getitem__(self, value: object) -> int:
        return number(value, self.scale)


def _units(
    units: list[dict[str, Any]], prices: NumberCache | _Direct, sizes: NumberCache | _Direct
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``orderbook_units`` (the i-th ask beside the i-th bid) -> bids, asks."""
    bids: list[tuple[int, int]] = []
    asks: list[tuple[int, int]] = []
    for unit in units:
        # A side with fewer levels than the other pads with zero sizes: skip those.
        size = sizes[unit["ask_size"]]
        if size:
            asks.append((prices[unit["ask_price"]], size))
        size = sizes[unit["bid_size"]]
        if size:
            bids.append((prices[unit["bid_price"]], size))
    return bids, asks
