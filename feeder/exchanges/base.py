"""What every exchange adapter is: a table of facts plus pure parse/subscribe functions.

An adapter never touches the network. The runtime owns connections and calls ``parse`` with
each frame's text and the time it was read; the adapter turns the frame into normalized,
fixed-point events on a ``Sink``. That keeps each adapter testable on recorded frames, and
keeps exchange quirks (symbol formats, sequence fields, checksums) in one small module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, Protocol

import orjson

from feeder.book.orderbook import OrderBook
from feeder.book.sequence import SequenceRule


def json_object(frame: str | bytes) -> dict[str, Any]:
    """A frame's JSON object; ParseError ``bad_json`` / ``unexpected`` for anything else."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        raise ParseError("bad_json", str(e)) from None
    if not isinstance(msg, dict):
        raise ParseError("unexpected", f"top-level {type(msg).__name__}")
    return msg


class LevelText(dict[tuple[int, int], str]):
    """``memo[(price, qty)] == render(price, qty)``: a level's checksum text, remembered.

    Checksums are computed after every update over the top levels, which barely change between
    updates; rendering them afresh each time was most of a checksum exchange's replay time.
    Bounded: cleared when it reaches ``limit`` entries.
    """

    __slots__ = ("limit", "render")

    def __init__(self, render: Callable[[int, int], str], limit: int = 1 << 16) -> None:
        super().__init__()
        self.render = render
        self.limit = limit

    def __missing__(self, level: tuple[int, int]) -> str:
        text = self.render(*level)
        if len(self) >= self.limit:
            self.clear()
        self[level] = text
        return text


class ParseError(ValueError):
    """A frame the adapter cannot use; ``reason`` is a short code for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class BookUpdate:
    """One book message, normalized: levels are (price, qty) fixed-point ints, qty 0 = delete.

    Sequence fields are 0 when the exchange has none; their meaning is the adapter's
    ``sequence`` rule's (e.g. Binance U/u -> first_seq/last_seq, OKX prevSeqId -> prev_seq).
    """

    snapshot: bool
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    first_seq: int = 0
    last_seq: int = 0
    prev_seq: int = 0
    checksum: int | None = None
    exchange_ts_ns: int = 0
    receive_ts_ns: int = 0

    def __post_init__(self) -> None:
        # These go on the wire as u64, possibly long after parse (a delta buffered until its
        # REST snapshot arrives): refuse them now, while the frame can still be counted as bad.
        # One test for all three: a negative int has sign bits above bit 63 too; a float or
        # str raises TypeError here, which the adapter counts like any wrong type.
        if (self.first_seq | self.last_seq | self.exchange_ts_ns) >> 64:
            raise ParseError(
                "out_of_range",
                f"sequence {self.first_seq}..{self.last_seq} or time {self.exchange_ts_ns} "
                "is outside 0..2**64-1",
            )


class Sink(Protocol):
    """Where a parsed frame goes (the runtime's router, or a recorder in tests)."""

    def trade(
        self,
        symbol: str,
        side: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None: ...

    def book(self, symbol: str, update: BookUpdate) -> None: ...

    def control(self, kind: str, detail: str) -> None:
        """Non-market frames: ``subscribed``, ``pong``, ``ping`` (detail = reply to send),
        ``error`` (the exchange said so), ``info``."""


class SnapshotSource(Enum):
    PUSH = "push"  # the exchange sends a snapshot on subscribe (resync = resubscribe)
    REST = "rest"  # a REST call gives it (Binance, KuCoin): buffer deltas meanwhile


@dataclass(frozen=True)
class Ping:
    """Keepalive rules: who pings, how often, and what an application-level ping is."""

    interval_s: float
    # Text the client sends as an application ping (None: WebSocket ping frames).
    message: Callable[[], str] | None = None
    # Seconds without any frame before the stream is considered stale.
    stale_after_s: float = 30.0


@dataclass(frozen=True)
class Request:
    """An HTTP request the runtime performs for an adapter (snapshot, token)."""

    method: str
    url: str
    params: dict[str, str] = field(default_factory=dict)


class Adapter:
    """Base of every exchange adapter. Subclasses fill the class attributes and methods."""

    name: ClassVar[str]
    exchange_id: ClassVar[int]  # wire Exchange code
    ws_url: ClassVar[str]  # production endpoint
    rest_url: ClassVar[str] = ""  # production REST base
    snapshot_source: ClassVar[SnapshotSource] = SnapshotSource.PUSH
    ping: ClassVar[Ping] = Ping(interval_s=20.0)
    # Subscribe messages per second the exchange accepts, and how many may go in a burst; the
    # runtime paces requests with a token bucket of these.
    subscribe_rate: ClassVar[float] = 5.0
    subscribe_burst: ClassVar[int] = 5
    # Max symbols per subscribe message.
    symbols_per_message: ClassVar[int] = 50
    # What the exchange's symbols look like, to refuse a typo before connecting.
    symbol_pattern: ClassVar[str] = r"[A-Z0-9]{2,30}"
    symbol_example: ClassVar[str] = "BTCUSDT"
    # Max levels kept (the subscribed depth); None = unbounded. Books are truncated to it
    # after each update because checksums are computed over that depth.
    book_depth: ClassVar[int | None] = None

    def __init__(self, price_scale: int = 8, qty_scale: int = 8) -> None:
        self.price_scale = price_scale
        self.qty_scale = qty_scale

    @classmethod
    def symbol_error(cls, symbol: str) -> str | None:
        """Why ``symbol`` cannot be one of this exchange's symbols, or None."""
        if re.fullmatch(cls.symbol_pattern, symbol):
            return None
        return f"{symbol!r} is not a {cls.name} symbol (they look like {cls.symbol_example})"

    # --- protocol -----------------------------------------------------------------------------

    @property
    def sequence(self) -> SequenceRule:
        raise NotImplementedError

    def url(self, base: str | None = None) -> str:
        """The WebSocket URL to connect to (``base`` overrides the host, e.g. the simulator)."""
        return base or self.ws_url

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        """Text frames subscribing to trades and the book of ``symbols``."""
        raise NotImplementedError

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        """Parse one frame onto ``sink``; raises ``ParseError`` for frames it cannot use."""
        raise NotImplementedError

    # --- optional: connection handshake, checksums, REST snapshots ---------------------------

    def token_request(self, rest_base: str | None = None) -> Request | None:
        """A request whose answer is needed before connecting (KuCoin's bullet token)."""
        return None

    def url_from_token(self, body: bytes, ws_base: str | None = None) -> tuple[str, float | None]:
        """The URL to connect to, and the ping interval, from ``token_request``'s answer."""
        raise NotImplementedError(f"{self.name} needs no token")

    def checksum(self, symbol: str, book: OrderBook) -> int | None:
        """The exchange's checksum of ``symbol``'s ``book`` (None when it defines none)."""
        return None

    def snapshot_request(self, symbol: str, rest_base: str | None = None) -> Request:
        raise NotImplementedError(f"{self.name} pushes its snapshots")

    def parse_snapshot(self, symbol: str, body: bytes, receive_ts_ns: int) -> BookUpdate:
        raise NotImplementedError(f"{self.name} pushes its snapshots")
