"""Coinbase Exchange as the simulator speaks it: level2(_batch) snapshot + l2update, matches,
heartbeats, and the ``subscriptions``/``error`` replies.

Numbers are strings: prices with the product's quote increment places (``"10101.10"``), sizes
with 8 places (``"0.45054140"``), as the docs' examples render them. Times are ISO 8601 UTC with
microseconds. ``sequence`` is per product and advances on every market event, as the
full-channel sequence does, so matches show the same gaps a real client sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from feeder.normalize.decimal import render
from feeder.sim.market import LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange

SIZE_PLACES = 8
BOOK_CHANNELS = ("level2", "level2_batch")


def iso_time(ns: int) -> str:
    us = ns // 1000
    return (
        datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{us % 1_000_000:06d}Z"
    )


def levels(rows: Sequence[tuple[int, int]], pp: int) -> list[list[str]]:
    return [[render(p, places=pp), render(q, places=SIZE_PLACES)] for p, q in rows]


class CoinbaseSim(SimProtocol):
    name = "coinbase"
    ws_path = "/"

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.sequence = {sym: 1_000_000 for sym in sim.markets}
        self.last_trade: dict[str, Trade] = {}
        self.last_trade_ns: dict[str, int] = {}
        self.heartbeats: dict[SimConnection, set[str]] = {}
        self._beaters: dict[SimConnection, asyncio.Task[None]] = {}

    # --- client messages ------------------------------------------------------------------

    async def on_message(self, conn: SimConnection, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind = msg["type"]
            if kind not in ("subscribe", "unsubscribe"):
                raise ValueError(kind)
            wanted = self._channels(msg)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            await self._error(conn, "Failed to subscribe", "malformed subscription message")
            return
        unknown = sorted({p for ps in wanted.values() for p in ps} - set(self.sim.markets))
        if unknown:
            await self._error(conn, "Failed to subscribe", f"{unknown[0]} is not a valid product")
            return
        fresh_books: list[str] = []
        fresh_trades: list[str] = []
        beats = self.heartbeats.setdefault(conn, set())
        for channel, products in wanted.items():
            for p in products:
                if kind == "subscribe":
                    if channel in BOOK_CHANNELS and p not in conn.books:
                        fresh_books.append(p)  # subscribed together with its snapshot
                    elif channel == "matches" and p not in conn.trades:
                        conn.subscribe(p, trades=True, book=False)
                        fresh_trades.append(p)
                    elif channel == "heartbeat":
                        beats.add(p)
                elif channel in BOOK_CHANNELS:
                    conn.unsubscribe(p, trades=False, book=True)
                elif channel == "matches":
                    conn.unsubscribe(p, trades=True, book=False)
                elif channel == "heartbeat":
                    beats.discard(p)
        # Subscribe and build the snapshot with no await between: the first update this
        # connection gets for the product is the first one after its snapshot.
        for p in dict.fromkeys(fresh_books):
            conn.subscribe(p, trades=False, book=True)
            await self.sim.snapshot_to(conn, p)
        for p in fresh_trades:
            last = self.last_trade.get(p)
            if last is not None:
                await conn.send(self._match(p, self.sim.markets[p], last, "last_match"))
        await conn.send(self._subscriptions(conn))
        if not beats and conn not in self._beaters:
            del self.heartbeats[conn]
        elif beats and conn not in self._beaters:
            self._beaters[conn] = asyncio.create_task(self._beat(conn))

    @staticmethod
    def _channels(msg: dict[str, Any]) -> dict[str, list[str]]:
        """Channels as names (with top-level ``product_ids``) or ``{"name", "product_ids"}``."""
        top = [str(p) for p in msg.get("product_ids", [])]
        out: dict[str, list[str]] = {}
        for ch in msg["channels"]:
            if isinstance(ch, str):
                out.setdefault(ch, []).extend(top)
            else:
                out.setdefault(str(ch["name"]), []).extend(
                    str(p) for p in ch.get("product_ids", top)
                )
        return out

    async def _error(self, conn: SimConnection, message: str, reason: str) -> None:
        await conn.send(
            orjson.dumps({"type": "error", "message": message, "reason": reason}).decode()
        )

    def _subscriptions(self, conn: SimConnection) -> str:
        channels = [
            {"name": "level2_batch", "product_ids": sorted(conn.books)},
            {"name": "matches", "product_ids": sorted(conn.trades)},
            {"name": "heartbeat", "product_ids": sorted(self.heartbeats.get(conn, ()))},
        ]
        return orjson.dumps(
            {"type": "subscriptions", "channels": [c for c in channels if c["product_ids"]]}
        ).decode()

    async def _beat(self, conn: SimConnection) -> None:
        """One heartbeat per subscribed product each second, while the client is connected."""
        try:
            while not conn.ws.closed:
                await asyncio.sleep(1.0)
                now = iso_time(time.time_ns())
                for p in sorted(self.heartbeats.get(conn, ())):
                    last = self.last_trade.get(p)
                    beat = {
                        "type": "heartbeat",
                        "sequence": self.sequence[p],
                        "last_trade_id": last.trade_id if last else 0,
                        "product_id": p,
                        "time": now,
                    }
                    await conn.send(orjson.dumps(beat).decode())
        finally:
            self.heartbeats.pop(conn, None)
            self._beaters.pop(conn, None)

    # --- market frames --------------------------------------------------------------------

    def snapshot_frames(self, symbol: str, market: SymbolMarket) -> list[str]:
        book, pp = market.book, market.inst.price_places
        body = {
            "type": "snapshot",
            "product_id": symbol,
            "bids": levels(book.top_bids(len(book.bids)), pp),
            "asks": levels(book.top_asks(len(book.asks)), pp),
        }
        return [orjson.dumps(body).decode()]

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        self.corrupt_next_checksum = False  # Coinbase level 2 has no checksum to corrupt
        self.sequence[symbol] += len(changes)
        pp = market.inst.price_places
        body = {
            "type": "l2update",
            "product_id": symbol,
            "changes": [
                [
                    "buy" if c.is_bid else "sell",
                    render(c.price, places=pp),
                    render(c.qty, places=SIZE_PLACES),
                ]
                for c in changes
            ],
            "time": iso_time(time.time_ns()),
        }
        return [orjson.dumps(body).decode()]

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        self.sequence[symbol] += 1
        self.last_trade[symbol] = trade
        self.last_trade_ns[symbol] = time.time_ns()
        return [self._match(symbol, market, trade, "match")]

    def _match(self, symbol: str, market: SymbolMarket, trade: Trade, kind: str) -> str:
        # Order ids are the simulator's own, shaped like Coinbase's UUIDs.
        tid = trade.trade_id
        body = {
            "type": kind,
            "trade_id": tid,
            "sequence": self.sequence[symbol],
            "maker_order_id": f"00000000-0000-4000-8000-{2 * tid:012d}",
            "taker_order_id": f"00000000-0000-4000-8000-{2 * tid + 1:012d}",
            "time": iso_time(self.last_trade_ns.get(symbol, time.time_ns())),
            "product_id": symbol,
            "size": render(trade.qty, places=SIZE_PLACES),
            "price": render(trade.price, places=market.inst.price_places),
            # The maker's side: a buyer-aggressor trade hit a resting sell.
            "side": "sell" if trade.buyer_aggressor else "buy",
        }
        return orjson.dumps(body).decode()
