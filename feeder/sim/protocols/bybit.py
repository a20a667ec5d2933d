"""Bybit v5 spot public stream as the simulator speaks it: trades and the 50-level book.

The book topic is a 50-level window onto the market: each market event is published as the
difference between the previous window and the new one (levels entering the window are added,
levels leaving it are deleted with size "0"), exactly what a depth-limited feed shows. ``u``
advances by one per published delta; ``seq`` is a per-symbol cross sequence shared with trades.
Subscribing to a book topic pushes a snapshot of the current window after the acknowledgement.
Only depth 50 is served; other depths are refused like an unknown topic.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from feeder.normalize.decimal import render
from feeder.sim.market import LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange

DEPTH = 50
MAX_ARGS = 10  # spot: args per subscribe request
TRADE_ID_BASE = 2_100_000_000_000_000_000  # spot trade ids are large decimal strings


def levels(rows: Sequence[tuple[int, int]], pp: int, qp: int) -> list[list[str]]:
    # Prices at tick precision ("17440.00"), sizes at lot precision, deletions as "0".
    return [[render(p, places=pp), render(q, places=qp) if q else "0"] for p, q in rows]


class _Window:
    """The last published top-``DEPTH`` levels of one symbol and its update id."""

    __slots__ = ("asks", "bids", "u")

    def __init__(self, market: SymbolMarket) -> None:
        self.bids = dict(market.book.top_bids(DEPTH))
        self.asks = dict(market.book.top_asks(DEPTH))
        self.u = 1000  # a running service; 1 would announce a restart

    def advance(self, market: SymbolMarket) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Move to the market's current window; the changed levels (bids best first)."""
        new_bids = dict(market.book.top_bids(DEPTH))
        new_asks = dict(market.book.top_asks(DEPTH))
        bids = sorted(_diff(self.bids, new_bids), reverse=True)
        asks = sorted(_diff(self.asks, new_asks))
        self.bids, self.asks = new_bids, new_asks
        return bids, asks


def _diff(old: dict[int, int], new: dict[int, int]) -> list[tuple[int, int]]:
    out = [(p, 0) for p in old if p not in new]
    out += [(p, q) for p, q in new.items() if old.get(p) != q]
    return out


class BybitSim(SimProtocol):
    name = "bybit"
    ws_path = "/v5/public/spot"

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.windows = {sym: _Window(m) for sym, m in sim.markets.items()}
        self.cross_seq = dict.fromkeys(sim.markets, 10_000)
        self._conn_ids: weakref.WeakKeyDictionary[SimConnection, str] = weakref.WeakKeyDictionary()
        self._conn_counter = itertools.count(1)

    def _conn_id(self, conn: SimConnection) -> str:
        cid = self._conn_ids.get(conn)
        if cid is None:
            cid = self._conn_ids[conn] = f"sim-{next(self._conn_counter):08x}"
        return cid

    async def _reply(self, conn: SimConnection, op: str, req_id: str, ok: bool, ret: str) -> None:
        body: dict[str, Any] = {"success": ok, "ret_msg": ret, "conn_id": self._conn_id(conn)}
        if req_id:
            body["req_id"] = req_id
        body["op"] = op
        await conn.send(orjson.dumps(body).decode())

    async def on_message(self, conn: SimConnection, text: str) -> None:
        try:
            msg = orjson.loads(text)
            op = msg["op"]
            req_id = str(msg.get("req_id", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await self._reply(conn, "", "", False, "error:request not supported")
            return
        if op == "ping":
            await self._reply(conn, "ping", req_id, True, "pong")
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._reply(conn, str(op), req_id, False, f"error:op {op} not supported")
            return
        args = msg.get("args")
        if not isinstance(args, list) or not args:
            await self._reply(conn, op, req_id, False, "error:args empty")
            return
        if len(args) > MAX_ARGS:
            await self._reply(conn, op, req_id, False, f"error:args size >{MAX_ARGS}")
            return
        topics = [self._topic(a) for a in args]
        bad = [str(a) for a, t in zip(args, topics, strict=True) if t is None]
        if bad:
            await self._reply(conn, op, req_id, False, f"error:handler not found,topic:{bad[0]}")
            return
        wanted = [t for t in topics if t is not None]
        if op == "subscribe":
            dup = [
                f"{k}.{s}" for k, s in wanted if s in (conn.trades if k == "trade" else conn.books)
            ]
            if dup:
                await self._reply(
                    conn, op, req_id, False, f"error:already subscribed,topic:{dup[0]}"
                )
                return
            for kind, sym in wanted:
                conn.subscribe(sym, trades=kind == "trade", book=kind == "book")
            await self._reply(conn, op, req_id, True, "subscribe")
            # Subscribed before the snapshot is sent: a delta generated meanwhile reaches the
            # client ahead of it, and is stale once the snapshot (with a later u) arrives.
            for kind, sym in wanted:
                if kind == "book":
                    await self.sim.snapshot_to(conn, sym)
        else:
            for kind, sym in wanted:
                conn.unsubscribe(sym, trades=kind == "trade", book=kind == "book")
            await self._reply(conn, op, req_id, True, "")

    def _topic(self, arg: object) -> tuple[str, str] | None:
        """("trade" | "book", symbol) for a topic this simulator serves."""
        text = str(arg)
        if text.startswith("publicTrade."):
            sym = text[len("publicTrade.") :]
            return ("trade", sym) if sym in self.sim.markets else None
        prefix = f"orderbook.{DEPTH}."
        if text.startswith(prefix):
            sym = text[len(prefix) :]
            return ("book", sym) if sym in self.sim.markets else None
        return None

    def snapshot_frames(self, symbol: str, market: SymbolMarket) -> list[str]:
        w = self.windows[symbol]
        bids = sorted(w.bids.items(), reverse=True)
        asks = sorted(w.asks.items())
        return [self._book_frame("snapshot", symbol, market, bids, asks)]

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        w = self.windows[symbol]
        bids, asks = w.advance(market)
        if not bids and not asks:
            return []  # the event changed nothing inside the window: Bybit sends nothing
        w.u += 1
        self.cross_seq[symbol] += 1
        return [self._book_frame("delta", symbol, market, bids, asks)]

    def _book_frame(
        self,
        kind: str,
        symbol: str,
        market: SymbolMarket,
        bids: Sequence[tuple[int, int]],
        asks: Sequence[tuple[int, int]],
    ) -> str:
        pp, qp = market.inst.price_places, market.inst.qty_places
        now = time.time_ns() // 1_000_000
        return orjson.dumps(
            {
                "topic": f"orderbook.{DEPTH}.{symbol}",
                "type": kind,
                "ts": now,
                "data": {
                    "s": symbol,
                    "b": levels(bids, pp, qp),
                    "a": levels(asks, pp, qp),
                    "u": self.windows[symbol].u,
                    "seq": self.cross_seq[symbol],
                },
                "cts": now,
            }
        ).decode()

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        pp, qp = market.inst.price_places, market.inst.qty_places
        self.cross_seq[symbol] += 1
        now = time.time_ns() // 1_000_000
        data = {
            "T": now,
            "s": symbol,
            "S": "Buy" if trade.buyer_aggressor else "Sell",
            "v": render(trade.qty, places=qp),
            "p": render(trade.price, places=pp),
            "i": str(TRADE_ID_BASE + trade.trade_id),
            "BT": False,
            "RPI": False,
            "seq": self.cross_seq[symbol],
        }
        return [
            orjson.dumps(
                {"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": now, "data": [data]}
            ).decode()
        ]
