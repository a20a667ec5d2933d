"""OKX v5 public channels as the simulator speaks them: ``trades`` and ``books``.

Frames follow the OKX v5 docs field for field: ``{"arg", "action", "data": [{"asks", "bids",
"ts", "checksum", "prevSeqId", "seqId"}]}`` with levels ``[px, sz, "0", orders]``, numbers as
decimal strings without trailing zeros, ``ts`` in milliseconds as a string. Each instrument has
its own ``seqId``; a book update links to the previous one through ``prevSeqId`` and the
sequence advances even for frames the skip-sequence fault withholds. Subscribing to ``books``
pushes a snapshot (``prevSeqId: -1``) right after the subscribe acknowledgement. The text
``ping`` is answered with ``pong``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from feeder.normalize.decimal import render
from feeder.sim.market import LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange

SNAPSHOT_DEPTH = 400  # the ``books`` channel's depth
CHECKSUM_DEPTH = 25


def _text(value: int) -> str:
    # OKX writes "8477", "0.1": the shortest exact decimal (market values are at scale 8).
    return render(value, 8)


def _row(price: int, qty: int) -> list[str]:
    # The third field is deprecated and always "0"; the fourth counts orders at the price,
    # which the simulated market does not model: one order per live level.
    return [_text(price), _text(qty), "0", "1" if qty else "0"]


def _checksum(bids: Sequence[list[str]], asks: Sequence[list[str]]) -> int:
    """OKX's CRC32 over the best 25 levels, alternating bid and ask, as a signed int."""
    parts: list[str] = []
    for i in range(CHECKSUM_DEPTH):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class OkxSim(SimProtocol):
    name = "okx"
    ws_path = "/ws/v5/public"

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.seq_id = dict.fromkeys(sim.markets, 1000)
        self.trade_seq = dict.fromkeys(sim.markets, 0)

    @staticmethod
    def _conn_id(conn: SimConnection) -> str:
        return f"{id(conn) & 0xFFFF_FFFF:08x}"

    async def _error(self, conn: SimConnection, code: str, msg: str) -> None:
        body = {"event": "error", "code": code, "msg": msg, "connId": self._conn_id(conn)}
        await conn.send(orjson.dumps(body).decode())

    async def on_message(self, conn: SimConnection, text: str) -> None:
        if text == "ping":
            await conn.send("pong")
            return
        try:
            msg = orjson.loads(text)
            op, args = msg["op"], msg["args"]
            if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
                raise ValueError(op)
            pairs = [(a["channel"], a["instId"]) for a in args]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            await self._error(conn, "60012", f"Invalid request: {text}")
            return
        for channel, symbol in pairs:
            if channel not in ("trades", "books") or symbol not in self.sim.markets:
                await self._error(
                    conn, "60018", f"Wrong URL or channel:{channel},instId:{symbol} doesn't exist"
                )
                continue
            trades, book = channel == "trades", channel == "books"
            if op == "subscribe":
                conn.subscribe(symbol, trades=trades, book=book)
            else:
                conn.unsubscribe(symbol, trades=trades, book=book)
            ack = {
                "event": op,
                "arg": {"channel": channel, "instId": symbol},
                "connId": self._conn_id(conn),
            }
            await conn.send(orjson.dumps(ack).decode())
            if book and op == "subscribe":
                await self.sim.snapshot_to(conn, symbol)

    def _frame(self, symbol: str, action: str, data: dict[str, Any]) -> str:
        return orjson.dumps(
            {"arg": {"channel": "books", "instId": symbol}, "action": action, "data": [data]}
        ).decode()

    def snapshot_frames(self, symbol: str, market: SymbolMarket) -> list[str]:
        book = market.book
        asks = [_row(p, q) for p, q in book.top_asks(SNAPSHOT_DEPTH)]
        bids = [_row(p, q) for p, q in book.top_bids(SNAPSHOT_DEPTH)]
        data = {
            "asks": asks,
            "bids": bids,
            "ts": str(time.time_ns() // 1_000_000),
            "checksum": _checksum(bids, asks),
            "prevSeqId": -1,
            "seqId": self.seq_id[symbol],
        }
        return [self._frame(symbol, "snapshot", data)]

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        prev = self.seq_id[symbol]
        self.seq_id[symbol] = prev + len(changes)
        book = market.book  # already holds this event's changes
        top_asks = [_row(p, q) for p, q in book.top_asks(CHECKSUM_DEPTH)]
        top_bids = [_row(p, q) for p, q in book.top_bids(CHECKSUM_DEPTH)]
        checksum = _checksum(top_bids, top_asks)
        if self.corrupt_next_checksum:
            self.corrupt_next_checksum = False
            checksum = checksum + 1 if checksum < (1 << 31) - 1 else checksum - 1
        data = {
            "asks": [_row(c.price, c.qty) for c in changes if not c.is_bid],
            "bids": [_row(c.price, c.qty) for c in changes if c.is_bid],
            "ts": str(time.time_ns() // 1_000_000),
            "checksum": checksum,
            "prevSeqId": prev,
            "seqId": self.seq_id[symbol],
        }
        return [self._frame(symbol, "update", data)]

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        self.trade_seq[symbol] += 1
        data = {
            "instId": symbol,
            "tradeId": str(trade.trade_id),
            "px": _text(trade.price),
            "sz": _text(trade.qty),
            "side": "buy" if trade.buyer_aggressor else "sell",
            "ts": str(time.time_ns() // 1_000_000),
            "count": "1",
            "source": "0",
            "seqId": self.trade_seq[symbol],
        }
        return [
            orjson.dumps({"arg": {"channel": "trades", "instId": symbol}, "data": [data]}).decode()
        ]
