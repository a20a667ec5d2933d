"""Binance spot as the simulator speaks it: combined streams, diff depth with U/u, REST depth."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from feeder.normalize.decimal import render
from feeder.sim.market import LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange


def levels(rows: Sequence[tuple[int, int]], pp: int, qp: int) -> list[list[str]]:
    # Binance renders every number with its full precision: "4.00000000".
    return [[render(p, places=pp), render(q, places=qp)] for p, q in rows]


class BinanceSim(SimProtocol):
    name = "binance"
    ws_path = "/stream"

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.update_id = {sym: 1000 for sym in sim.markets}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v3/depth", self.depth)]

    async def depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        market = self.sim.markets.get(symbol)
        if market is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        body = self.rest_snapshot(symbol, market, limit)
        return web.Response(body=body, content_type="application/json")

    def rest_snapshot(self, symbol: str, market: SymbolMarket, limit: int = 1000) -> bytes:
        inst = market.inst
        body = {
            "lastUpdateId": self.update_id[symbol],
            "bids": levels(market.book.top_bids(limit), inst.price_places, inst.qty_places),
            "asks": levels(market.book.top_asks(limit), inst.price_places, inst.qty_places),
        }
        return orjson.dumps(body)

    async def on_message(self, conn: SimConnection, text: str) -> None:
        try:
            msg = orjson.loads(text)
            method, params, rid = msg["method"], msg.get("params", []), msg["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await conn.send(orjson.dumps({"code": 2, "msg": "Invalid request"}).decode())
            return
        by_symbol = {s.lower(): s for s in self.sim.markets}
        for stream in params:
            sym, _, kind = str(stream).partition("@")
            symbol = by_symbol.get(sym)
            if symbol is None:
                continue
            trades, book = kind == "trade", kind.startswith("depth")
            if method == "SUBSCRIBE":
                conn.subscribe(symbol, trades=trades, book=book)
            elif method == "UNSUBSCRIBE":
                conn.unsubscribe(symbol, trades=trades, book=book)
        await conn.send(orjson.dumps({"result": None, "id": rid}).decode())

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        first = self.update_id[symbol] + 1
        self.update_id[symbol] += len(changes)
        pp, qp = market.inst.price_places, market.inst.qty_places
        now = time.time_ns() // 1_000_000
        data = {
            "e": "depthUpdate",
            "E": now,
            "s": symbol,
            "U": first,
            "u": self.update_id[symbol],
            "b": levels([(c.price, c.qty) for c in changes if c.is_bid], pp, qp),
            "a": levels([(c.price, c.qty) for c in changes if not c.is_bid], pp, qp),
        }
        stream = f"{symbol.lower()}@depth@100ms"
        return [orjson.dumps({"stream": stream, "data": data}).decode()]

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        pp, qp = market.inst.price_places, market.inst.qty_places
        now = time.time_ns() // 1_000_000
        data = {
            "e": "trade",
            "E": now,
            "s": symbol,
            "t": trade.trade_id,
            "p": render(trade.price, places=pp),
            "q": render(trade.qty, places=qp),
            "T": now,
            "m": not trade.buyer_aggressor,
            "M": True,
        }
        return [orjson.dumps({"stream": f"{symbol.lower()}@trade", "data": data}).decode()]
