"""Kraken spot WebSocket v2: channels ``trade`` and ``book`` (depth 25), plus ``instrument``.

Book procedure (Kraken API docs, "Book (Level 2)" and the guide "Book checksum (WebSocket v2)"):
subscribing pushes a snapshot of ``depth`` levels per side, then updates carrying changed levels
(``qty: 0`` removes one). After each update the book is truncated to the subscribed depth,
because Kraken sends no removal for a level pushed out of scope. Resync = resubscribe.

Kraken numbers nothing, so a lost update shows up only through the checksum. What matters is
which side of a pushed snapshot an update arrived on: the adapter numbers each pair's book
messages in arrival order (rule ``Increment``), so updates buffered while waiting for a snapshot
(they belong to the previous subscription) are stale against it instead of replayed onto it.

Checksum: CRC32 (unsigned) of the best 10 asks (low to high) then the best 10 bids (high to low),
each level written as price then quantity with the decimal point and leading zeros removed. The
text is the pair's own: prices carry the pair's ``price_precision`` decimals and quantities its
``qty_precision`` (``0.00100000`` -> ``100000``). v2 sends prices and quantities as JSON numbers,
so they are read with ``from_float`` and the checksum text is rebuilt from the pair's precisions.

Those precisions come from the ``instrument`` channel (``price_precision``/``qty_precision`` per
pair), which ``subscribe`` adds while any requested pair's precisions are unknown, or from the
``precision`` argument. A pair whose precisions are unknown is not checksummed.

``checksum(symbol, book)`` uses the precisions of that pair.

Keepalive: Kraken sends ``{"channel": "heartbeat"}`` about once a second on a subscribed
connection; the client may also send ``{"method": "ping"}`` and gets ``{"method": "pong"}``.
Limits: Kraken documents a per-connection request budget without numbers; the pacing here is
conservative.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from feeder.book.orderbook import OrderBook
from feeder.book.sequence import Increment, SequenceRule
from feeder.exchanges.base import (
    Adapter,
    BookUpdate,
    LevelText,
    ParseError,
    Ping,
    Sink,
    SnapshotSource,
    json_object,
)
from feeder.normalize.decimal import FLOAT, InexactValue, from_float
from feeder.wire import Exchange, Side

_RULE = Increment()  # over arrival numbers, see the module docstring
CHECKSUM_LEVELS = 10
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _ping() -> str:
    return '{"method":"ping"}'


_second_cache: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds, once it parsed


def rfc3339_ns(text: str) -> int:
    """``2023-10-06T17:35:55.440295Z`` as integer nanoseconds since the epoch, exactly."""
    # Kraken's shape, 6 fraction digits and Z: frames of the same second share the text before
    # the fraction, remembered once datetime parsed it; anything else takes datetime's path.
    micros = text[20:26]
    if (
        len(text) == 27
        and text[19] == "."
        and text[26] == "Z"
        and micros.isascii()
        and micros.isdigit()
    ):
        seconds = _second_cache.get(text[:19])
        if seconds is not None:
            return seconds * 1_000_000_000 + int(micros) * 1000
        value = (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND * 1000
        if len(_second_cache) > 4096:
            _second_cache.clear()
        _second_cache[text[:19]] = value // 1_000_000_000
        return value
    return (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND * 1000


def _digits(value: int, scale: int, places: int) -> str:
    """A fixed-point value written with ``places`` decimals, point and leading zeros removed."""
    if places <= scale:
        return str(value // 10 ** (scale - places))
    return str(value * 10 ** (places - scale))


class KrakenAdapter(Adapter):
    """Symbols are Kraken v2 pair names (``BTC/USD``)."""

    name = "kraken"
    symbol_pattern = r"[A-Z0-9]+/[A-Z0-9]+"
    symbol_example = "BTC/USD"
    exchange_id = int(Exchange.KRAKEN)
    ws_url = "wss://ws.kraken.com/v2"
    rest_url = "https://api.kraken.com"
    snapshot_source = SnapshotSource.PUSH
    # Heartbeats arrive every second, so silence is noticed quickly; pings are a backstop.
    ping = Ping(interval_s=30.0, message=_ping, stale_after_s=10.0)
    subscribe_rate = 2.0
    symbols_per_message = 50
    book_depth = 25  # one of the depths Kraken accepts: 10, 25, 100, 500, 1000

    def __init__(
        self,
        price_scale: int = 8,
        qty_scale: int = 8,
        precision: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        super().__init__(price_scale, qty_scale)
        #: pair -> (price decimals, quantity decimals), as the instrument channel gives them.
        self.precision: dict[str, tuple[int, int]] = dict(precision or {})
        self._next_id = 0
        self._arrival: dict[str, int] = {}  # pair -> number of its last book message
        self._texts: dict[tuple[int, int], LevelText] = {}  # by (price, qty) decimals

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    # --- subscriptions ------------------------------------------------------------------------

    def _message(self, method: str, params: dict[str, Any]) -> str:
        self._next_id += 1
        return orjson.dumps({"method": method, "params": params, "req_id": self._next_id}).decode()

    def _requests(self, method: str, symbols: Sequence[str]) -> list[str]:
        out = []
        step = self.symbols_per_message
        for i in range(0, len(symbols), step):
            batch = list(symbols[i : i + step])
            # Unsubscribe names the depth too: Kraken matches it against the subscription.
            book: dict[str, Any] = {"channel": "book", "symbol": batch, "depth": self.book_depth}
            trade: dict[str, Any] = {"channel": "trade", "symbol": batch}
            if method == "subscribe":
                book["snapshot"] = True
                trade["snapshot"] = False  # the last 50 trades are history, not news
            out.append(self._message(method, book))
            out.append(self._message(method, trade))
        return out

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        out = []
        if any(s not in self.precision for s in symbols):
            # First, so the pairs' precisions arrive before their book snapshots.
            out.append(self._message("subscribe", {"channel": "instrument", "snapshot": True}))
        return out + self._requests("subscribe", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._requests("unsubscribe", symbols)

    # --- frames -------------------------------------------------------------------------------

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        msg = json_object(frame)
        try:
            channel = msg.get("channel")
            if channel == "book":
                self._book(msg["type"], msg["data"], receive_ts_ns, sink)
            elif channel == "trade":
                self._trades(msg["data"], receive_ts_ns, sink)
            elif channel == "heartbeat":
                pass  # its arrival is the point
            elif channel == "instrument":
                self._instruments(msg["data"], sink)
            elif channel == "status":
                status = msg["data"][0]
                sink.control("info", f"status {status.get('system')} {status.get('version')}")
            elif channel is not None:
                sink.control("info", f"unhandled channel {channel!r}")
            elif "method" in msg or "error" in msg:
                self._response(msg, sink)
            else:
                raise ParseError("unexpected", f"no channel or method in {sorted(msg)}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _book(self, kind: str, data: list[dict[str, Any]], receive_ts_ns: int, sink: Sink) -> None:
        if kind not in ("snapshot", "update"):
            raise ParseError("unexpected", f"book type {kind!r}")
        snapshot = kind == "snapshot"
        arrival = self._arrival
        for d in data:
            symbol = d["symbol"]
            ts = d.get("timestamp")  # snapshots may come without one
            # Positional (first, last, prev seq, checksum, exchange ts, receive ts): every book
            # frame builds one, and keyword arguments cost a third of the call.
            update = BookUpdate(
                snapshot,
                self._levels(d["bids"]),
                self._levels(d["asks"]),
                0,
                arrival.get(symbol, 0) + 1,
                0,
                int(d["checksum"]),
                rfc3339_ns(ts) if ts else 0,
                receive_ts_ns,
            )
            arrival[symbol] = update.last_seq
            sink.book(symbol, update)

    def _trades(self, data: list[dict[str, Any]], receive_ts_ns: int, sink: Sink) -> None:
        ps, qs = self.price_scale, self.qty_scale
        for t in data:
            side = _SIDES.get(t["side"])
            if side is None:  # the taker's side: buy or sell
                raise ParseError("unexpected", f"trade side {t['side']!r}")
            sink.trade(
                t["symbol"],
                side,
                from_float(t["price"], ps),
                from_float(t["qty"], qs),
                int(t["trade_id"]),
                rfc3339_ns(t["timestamp"]),
                receive_ts_ns,
            )

    def _levels(self, rows: list[dict[str, float]]) -> list[tuple[int, int]]:
        ps, qs = self.price_scale, self.qty_scale
        prices, sizes = FLOAT[ps], FLOAT[qs]
        try:
            return [(prices[r["price"]], sizes[r["qty"]]) for r in rows]
        except TypeError:  # an unhashable value: let from_float() judge it as it always did
            return [(from_float(r["price"], ps), from_float(r["qty"], qs)) for r in rows]

    def _instruments(self, data: dict[str, Any], sink: Sink) -> None:
        pairs = data["pairs"]
        for p in pairs:
            self.precision[p["symbol"]] = (int(p["price_precision"]), int(p["qty_precision"]))
        sink.control("info", f"instrument: precisions of {len(pairs)} pairs")

    def _response(self, msg: dict[str, Any], sink: Sink) -> None:
        method = msg.get("method", "request")
        if method == "pong":
            sink.control("pong", str(msg.get("req_id", "")))
            return
        if not msg.get("success", False):
            sink.control("error", f"{method}: {msg.get('error')} ({msg.get('symbol', '')})")
            return
        result = msg.get("result") or {}
        what = f"{result.get('channel')}:{result.get('symbol', '')}"
        if method == "subscribe":
            sink.control("subscribed", what)
        else:
            sink.control("info", f"{method} {what}")

    # --- checksum -----------------------------------------------------------------------------

    def checksum(self, symbol: str, book: OrderBook) -> int | None:
        precision = self.precision.get(symbol)
        if precision is None:
            return None
        texts = self._texts.get(precision)
        if texts is None:
            texts = self._texts[precision] = LevelText(self._renderer(*precision))
        # The book keeps each level's text in price order (see OrderBook.level_texts).
        bid_text, ask_text = book.level_texts(texts)
        bids = bid_text[-CHECKSUM_LEVELS:]
        bids.reverse()  # best first
        return zlib.crc32("".join(ask_text[:CHECKSUM_LEVELS] + bids).encode())

    def _renderer(self, pp: int, qp: int) -> Callable[[int, int], str]:
        """A level's checksum text at ``pp``/``qp`` decimals (remembered per level)."""
        ps, qs = self.price_scale, self.qty_scale

        def level(p: int, q: int) -> str:
            return _digits(p, ps, pp) + _digits(q, qs, qp)

        return level
