"""Bybit v5 spot, public stream: topics ``publicTrade.<SYMBOL>`` and ``orderbook.50.<SYMBOL>``.

Endpoint ``wss://stream.bybit.com/v5/public/spot`` (Bybit v5 docs, "WebSocket Stream > Connect").
Client messages are ``{"op": "subscribe" | "unsubscribe", "args": [topics], "req_id": ".."}``;
spot accepts at most 10 args per request, so one message carries 5 symbols (two topics each).
Keepalive is application level: the client sends ``{"op":"ping"}`` every 20 s, as the docs
recommend; spot answers ``{"success":true,"ret_msg":"pong","op":"ping",..}`` (other categories
answer with ``"op":"pong"``; both are accepted).

Book procedure (docs "Orderbook"): the first message after subscribing is a ``snapshot``; then
``delta`` messages carry absolute sizes (``"0"`` deletes). ``u`` is the update id: each delta's
``u`` is the previous one plus one, so the rule is ``Increment`` on ``u`` (kept in ``last_seq``).
``seq`` is the cross sequence, monotonic but not contiguous (shared with trades), so it cannot
reveal a lost message and is not used for continuity. Any snapshot replaces the book: Bybit
re-sends one after trouble on its side, and a snapshot with ``u == 1`` means its order book
service restarted and the numbering begins again; loading it sets the book's sequence to 1, so
the following delta (``u == 2``) applies. A gap is repaired by resubscribing the symbol, which
makes Bybit push a fresh snapshot. Depth 50 (20 ms pushes) is the deepest spot depth that is
pushed faster than every 200 ms; the book is kept to those 50 levels. Bybit has no checksum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from feeder.book.sequence import Increment, SequenceRule
from feeder.exchanges.base import (
    Adapter,
    BookUpdate,
    ParseError,
    Ping,
    Sink,
    SnapshotSource,
    json_object,
)
from feeder.normalize.decimal import TEXT, InexactValue, parse, parse_book
from feeder.wire import Exchange, Side

_RULE = Increment()
MS = 1_000_000
DEPTH = 50
_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
_U64 = 1 << 64


def _ping() -> str:
    return '{"op":"ping"}'


def trade_id(text: str) -> int:
    """Spot trade ids are decimal strings; anything else (UUIDs on derivatives) is 0."""
    if text.isdigit():
        n = int(text)
        if n < _U64:
            return n
    return 0


class BybitAdapter(Adapter):
    name = "bybit"
    exchange_id = int(Exchange.BYBIT)
    ws_url = "wss://stream.bybit.com/v5/public/spot"
    rest_url = "https://api.bybit.com"
    snapshot_source = SnapshotSource.PUSH
    ping = Ping(interval_s=20.0, message=_ping, stale_after_s=30.0)
    # Bybit documents no per-second message limit for public streams; stay conservative.
    subscribe_rate = 5.0
    symbols_per_message = 5  # spot: at most 10 args per request, two topics per symbol
    book_depth = DEPTH

    def __init__(self, price_scale: int = 8, qty_scale: int = 8) -> None:
        super().__init__(price_scale, qty_scale)
        self._next_id = 0

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    def _request(self, op: str, symbols: Sequence[str]) -> list[str]:
        out = []
        step = self.symbols_per_message
        for i in range(0, len(symbols), step):
            self._next_id += 1
            args = [
                t
                for s in symbols[i : i + step]
                for t in (f"publicTrade.{s}", f"orderbook.{DEPTH}.{s}")
            ]
            out.append(
                orjson.dumps({"op": op, "args": args, "req_id": str(self._next_id)}).decode()
            )
        return out

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("subscribe", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("unsubscribe", symbols)

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        msg = json_object(frame)
        try:
            topic = msg.get("topic")
            if topic is None:
                self._control(msg, sink)
            elif topic.startswith("orderbook."):
                self._book(msg, receive_ts_ns, sink)
            elif topic.startswith("publicTrade."):
                self._trades(msg["data"], receive_ts_ns, sink)
            else:
                sink.control("info", f"unhandled topic {topic!r}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _control(self, msg: dict[str, Any], sink: Sink) -> None:
        op = msg.get("op")
        if op is None:
            raise ParseError("unexpected", "neither topic nor op")
        ret = str(msg.get("ret_msg", ""))
        if op == "pong" or (op == "ping" and ret == "pong"):
            sink.control("pong", str(msg.get("conn_id", "")))
        elif msg.get("success") is False:
            sink.control("error", f"{op}: {ret}")
        elif op == "subscribe":
            sink.control("subscribed", str(msg.get("req_id", "")))
        else:
            sink.control("info", f"{op} {ret}".strip())

    def _book(self, msg: dict[str, Any], receive_ts_ns: int, sink: Sink) -> None:
        kind = msg["type"]
        if kind != "snapshot" and kind != "delta":
            raise ParseError("unexpected", f"orderbook type {kind!r}")
        data = msg["data"]
        u = int(data["u"])
        # cts is the matching engine's time; ts (when the frame was built) is the fallback.
        ts = msg.get("cts") or msg["ts"]
        symbol = data["s"]
        bids, asks = parse_book(data["b"], data["a"], TEXT[self.price_scale], TEXT[self.qty_scale])
        # Positional (first, last, prev seq, checksum, exchange ts, receive ts): every book
        # frame builds one, and keyword arguments cost a third of the call.
        sink.book(
            symbol,
            BookUpdate(kind == "snapshot", bids, asks, u, u, 0, None, int(ts) * MS, receive_ts_ns),
        )

    def _trades(self, rows: list[dict[str, Any]], receive_ts_ns: int, sink: Sink) -> None:
        ps, qs = self.price_scale, self.qty_scale
        for t in rows:
            side = _SIDES.get(t["S"])  # the taker's side
            if side is None:
                raise ParseError("unexpected", f"trade side {t['S']!r}")
            sink.trade(
                t["s"],
                side,
                parse(t["p"], ps),
                parse(t["v"], qs),
                trade_id(t["i"]),
                int(t["T"]) * MS,
                receive_ts_ns,
            )
