"""Kraken spot WebSocket v2 as the simulator speaks it: ``book``, ``trade``, ``instrument``, ping.

Frames follow the Kraken v2 docs: ``{"channel", "type", "data": [...]}``, prices and quantities
as JSON numbers written with the pair's full precision (``45281.0``, ``0.10000000``), RFC 3339
timestamps with microseconds, a ``status`` message on connect, one acknowledgement per symbol.

The book is served at the subscribed depth (10 when none is named): updates carry the levels that
changed inside it, plus a level that comes into scope when one inside is removed; a level pushed
out of scope by a better one is not announced, since clients truncate (as Kraken documents).
Every snapshot and update carries the CRC32 of the best 10 asks then bids. One depth is served
per pair, the most recently subscribed one, because every subscriber gets the same frames.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from feeder.normalize.decimal import render
from feeder.sim.market import Instrument, LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange

DEPTHS = (10, 25, 100, 500, 1000)
DEFAULT_DEPTH = 10  # a subscription that names no depth
# Served until someone subscribes: the feeder's depth, so corpora generated without a
# subscription hold what the feeder would receive.
INITIAL_DEPTH = 25
CHECKSUM_DEPTH = 10

Ladder = dict[int, int]  # price -> qty: one side of what subscribers hold


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _number(value: int, places: int) -> orjson.Fragment:
    """A JSON number with exactly ``places`` decimals, as Kraken writes them."""
    return orjson.Fragment(render(value, 8, places=places))


def _levels(rows: Sequence[tuple[int, int]], inst: Instrument) -> list[dict[str, Any]]:
    pp, qp = inst.price_places, inst.qty_places
    return [{"price": _number(p, pp), "qty": _number(q, qp)} for p, q in rows]


def _checksum(
    asks: Sequence[tuple[int, int]], bids: Sequence[tuple[int, int]], inst: Instrument
) -> int:
    """Kraken's CRC32: best 10 asks then best 10 bids, each number's text without its point
    and leading zeros."""

    def text(value: int, places: int) -> str:
        return render(value, 8, places=places).replace(".", "").lstrip("0")

    pp, qp = inst.price_places, inst.qty_places
    levels = itertools.chain(asks[:CHECKSUM_DEPTH], bids[:CHECKSUM_DEPTH])
    return zlib.crc32("".join(text(p, pp) + text(q, qp) for p, q in levels).encode())


def _changed(
    old: Ladder, new: Ladder, market_side: Ladder, descending: bool
) -> list[tuple[int, int]]:
    """What a subscriber holding ``old`` must be told to hold ``new`` after truncating."""
    out = [(p, q) for p, q in new.items() if old.get(p) != q]
    # Gone from the market: announce the removal. Still in the market but pushed out of scope:
    # say nothing, the client's truncation drops it.
    out += [(p, 0) for p in old if p not in new and p not in market_side]
    out.sort(reverse=descending)
    return out


class KrakenSim(SimProtocol):
    name = "kraken"
    ws_path = "/v2"

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.depth = dict.fromkeys(sim.markets, INITIAL_DEPTH)
        self.view = {sym: self._top(m, INITIAL_DEPTH) for sym, m in sim.markets.items()}
        self._connections = itertools.count(1)

    @staticmethod
    def _top(market: SymbolMarket, depth: int) -> tuple[Ladder, Ladder]:
        return dict(market.book.top_bids(depth)), dict(market.book.top_asks(depth))

    # --- client messages ----------------------------------------------------------------------

    async def on_connect(self, conn: SimConnection) -> None:
        status = {
            "version": "2.0.9",
            "system": "online",
            "api_version": "v2",
            "connection_id": next(self._connections),
        }
        await self._send(conn, {"channel": "status", "type": "update", "data": [status]})

    async def _send(self, conn: SimConnection, body: dict[str, Any]) -> None:
        await conn.send(orjson.dumps(body).decode())

    async def _reply(
        self, conn: SimConnection, body: dict[str, Any], req_id: object, time_in: str
    ) -> None:
        if req_id is not None:
            body["req_id"] = req_id
        body["time_in"], body["time_out"] = time_in, _now()
        await self._send(conn, body)

    async def on_message(self, conn: SimConnection, text: str) -> None:
        time_in = _now()
        try:
            msg = orjson.loads(text)
            method, req_id = msg["method"], msg.get("req_id")
            params = msg.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError("params")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            await self._reply(conn, {"error": "Malformed request", "success": False}, None, time_in)
            return
        if method == "ping":
            await self._reply(conn, {"method": "pong"}, req_id, time_in)
        elif method in ("subscribe", "unsubscribe"):
            await self._subscription(conn, method, params, req_id, time_in)
        else:
            error = {"error": "Method not found", "method": method, "success": False}
            await self._reply(conn, error, req_id, time_in)

    async def _subscription(
        self, conn: SimConnection, method: str, params: dict[str, Any], req_id: object, t: str
    ) -> None:
        channel = params.get("channel")
        subscribe = method == "subscribe"
        if channel == "instrument":
            await self._instrument_subscription(conn, method, params, req_id, t)
            return
        listed = params.get("symbol")
        symbols: list[object] = listed if isinstance(listed, list) else []
        depth = params.get("depth", DEFAULT_DEPTH)
        problem = ""
        if channel not in ("book", "trade"):
            problem = "Channel not found"
        elif not symbols:
            problem = "Symbol list required"
        elif channel == "book" and depth not in DEPTHS:
            problem = f"Invalid depth {depth}"
        if problem:
            error = {"error": problem, "method": method, "success": False}
            await self._reply(conn, error, req_id, t)
            return
        book = channel == "book"
        snapshot = bool(params.get("snapshot", book))  # book snapshots by default, trades not
        for symbol in symbols:
            if not isinstance(symbol, str) or symbol not in self.sim.markets:
                error = {
                    "error": f"Currency pair not supported {symbol}",
                    "method": method,
                    "success": False,
                    "symbol": symbol,
                }
                await self._reply(conn, error, req_id, t)
                continue
            result: dict[str, Any] = {"channel": channel}
            if book:
                result["depth"] = depth
            if subscribe:
                result["snapshot"] = snapshot
                if book and depth != self.depth[symbol]:
                    self.depth[symbol] = depth
                    self.view[symbol] = self._top(self.sim.markets[symbol], depth)
                conn.subscribe(symbol, trades=not book, book=book)
            else:
                conn.unsubscribe(symbol, trades=not book, book=book)
            result["symbol"] = symbol
            await self._reply(
                conn, {"method": method, "result": result, "success": True}, req_id, t
            )
            if book and subscribe and snapshot:
                await self.sim.snapshot_to(conn, symbol)

    async def _instrument_subscription(
        self, conn: SimConnection, method: str, params: dict[str, Any], req_id: object, t: str
    ) -> None:
        snapshot = bool(params.get("snapshot", True))
        result = {"channel": "instrument", "snapshot": snapshot}
        await self._reply(conn, {"method": method, "result": result, "success": True}, req_id, t)
        if method == "subscribe" and snapshot:
            await self._send(conn, self._instruments())

    def _instruments(self) -> dict[str, Any]:
        pairs, assets = [], {}
        for symbol, market in self.sim.markets.items():
            inst = market.inst
            base, _, quote = symbol.partition("/")
            for asset in (base, quote):
                assets[asset] = {"id": asset, "status": "enabled", "precision": 8}
            pairs.append(
                {
                    "symbol": symbol,
                    "base": base,
                    "quote": quote,
                    "status": "online",
                    "qty_precision": inst.qty_places,
                    "qty_increment": _number(inst.lot, inst.qty_places),
                    "price_precision": inst.price_places,
                    "price_increment": _number(inst.tick, inst.price_places),
                }
            )
        data = {"assets": list(assets.values()), "pairs": pairs}
        return {"channel": "instrument", "type": "snapshot", "data": data}

    # --- market data --------------------------------------------------------------------------

    def _book_frame(
        self,
        kind: str,
        symbol: str,
        inst: Instrument,
        bids: Sequence[tuple[int, int]],
        asks: Sequence[tuple[int, int]],
        checksum: int,
    ) -> str:
        data = {
            "symbol": symbol,
            "bids": _levels(bids, inst),
            "asks": _levels(asks, inst),
            "checksum": checksum,
            "timestamp": _now(),
        }
        return orjson.dumps({"channel": "book", "type": kind, "data": [data]}).decode()

    def snapshot_frames(self, symbol: str, market: SymbolMarket) -> list[str]:
        bids, asks = self.view[symbol] = self._top(market, self.depth[symbol])
        best_bids = sorted(bids.items(), reverse=True)
        best_asks = sorted(asks.items())
        checksum = _checksum(best_asks, best_bids, market.inst)
        return [self._book_frame("snapshot", symbol, market.inst, best_bids, best_asks, checksum)]

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        # The market already holds this event's changes; announce what moved in the view.
        old_bids, old_asks = self.view[symbol]
        new_bids, new_asks = self.view[symbol] = self._top(market, self.depth[symbol])
        bids = _changed(old_bids, new_bids, market.book.bids, descending=True)
        asks = _changed(old_asks, new_asks, market.book.asks, descending=False)
        if not bids and not asks:
            return []  # everything happened beyond the subscribed depth
        checksum = _checksum(
            sorted(new_asks.items()), sorted(new_bids.items(), reverse=True), market.inst
        )
        if self.corrupt_next_checksum:
            self.corrupt_next_checksum = False
            checksum ^= 1
        return [self._book_frame("update", symbol, market.inst, bids, asks, checksum)]

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        inst = market.inst
        data = {
            "symbol": symbol,
            "side": "buy" if trade.buyer_aggressor else "sell",
            "price": _number(trade.price, inst.price_places),
            "qty": _number(trade.qty, inst.qty_places),
            "ord_type": "market",
            "trade_id": trade.trade_id,
            "timestamp": _now(),
        }
        return [orjson.dumps({"channel": "trade", "type": "update", "data": [data]}).decode()]
