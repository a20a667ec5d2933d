"""KuCoin spot as the simulator speaks it: bullet token, welcome, match and level2 topics.

REST: ``POST /api/v1/bullet-public`` (token and instance server pointing back at this simulator)
and ``GET /api/v1/market/orderbook/level2_100`` (best 100 levels and the book's sequence).
WebSocket: a ``welcome`` on connect, ``ping``/``pong``, ``subscribe``/``unsubscribe`` with
``ack`` replies. Every level change of a market event takes the next sequence number of its
symbol; a ``trade.l2update`` carries the event's [sequenceStart, sequenceEnd] and, per price,
only the last change with its own sequence, as KuCoin does (so numbers can be missing inside a
range). Numbers are rendered as KuCoin does: decimal strings without trailing zeros.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from feeder.normalize.decimal import render
from feeder.sim.market import LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange

OK = "200000"
MAX_SYMBOLS = 100  # per topic
PING_INTERVAL_MS = 18_000
PING_TIMEOUT_MS = 10_000
SNAPSHOT_DEPTH = 100
TRADE_SEQ_BASE = 11_067_996_711_960_000


def _num(value: int) -> str:
    return render(value)  # "67523", "0.00331", "0"


def _levels(rows: Sequence[tuple[int, int]]) -> list[list[str]]:
    return [[_num(p), _num(q)] for p, q in rows]


def _order_id(n: int) -> str:
    return f"{n:024x}"  # KuCoin order ids are 24 hex digits


class KucoinSim(SimProtocol):
    name = "kucoin"
    ws_path = "/"

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.sequence = dict.fromkeys(sim.markets, 14_103_800)
        self._ids = itertools.count(1)
        self.tokens: set[str] = set()

    # --- REST ----------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/bullet-public", self.bullet_public),
            web.get("/api/v1/market/orderbook/level2_100", self.level2_100),
        ]

    def _issue_token(self) -> str:
        token = secrets.token_urlsafe(96)
        self.tokens.add(token)
        return token

    async def bullet_public(self, request: web.Request) -> web.Response:
        # The instance server is this simulator's WebSocket path, under the same prefix.
        prefix = request.path.removesuffix("/api/v1/bullet-public")
        scheme = "wss" if request.secure else "ws"
        body = {
            "code": OK,
            "data": {
                "token": self._issue_token(),
                "instanceServers": [
                    {
                        "endpoint": f"{scheme}://{request.host}{prefix}{self.ws_path}",
                        "encrypt": request.secure,
                        "protocol": "websocket",
                        "pingInterval": PING_INTERVAL_MS,
                        "pingTimeout": PING_TIMEOUT_MS,
                    }
                ],
            },
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def level2_100(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        market = self.sim.markets.get(symbol)
        if market is None:
            err = {"code": "400100", "msg": "This pair is not provided at present"}
            return web.Response(body=orjson.dumps(err), status=400, content_type="application/json")
        body = self.rest_snapshot(symbol, market, SNAPSHOT_DEPTH)
        return web.Response(body=body, content_type="application/json")

    def rest_snapshot(
        self, symbol: str, market: SymbolMarket, limit: int = SNAPSHOT_DEPTH
    ) -> bytes:
        book = market.book
        body = {
            "code": OK,
            "data": {
                "time": time.time_ns() // 1_000_000,
                "sequence": str(self.sequence[symbol]),
                "bids": _levels(book.top_bids(limit)),
                "asks": _levels(book.top_asks(limit)),
            },
        }
        return orjson.dumps(body)

    # --- WebSocket -----------------------------------------------------------------------------

    async def on_connect(self, conn: SimConnection) -> None:
        # KuCoin refuses a connection without a token it issued, and echoes connectId.
        if conn.query.get("token") not in self.tokens:
            await self._error(conn, "", 401, "token is invalid")
            await conn.ws.close()
            return
        await self._send(
            conn, {"id": conn.query.get("connectId") or secrets.token_hex(6), "type": "welcome"}
        )

    async def _send(self, conn: SimConnection, body: dict[str, Any]) -> None:
        await conn.send(orjson.dumps(body).decode())

    async def _error(self, conn: SimConnection, rid: object, code: int, text: str) -> None:
        await self._send(conn, {"id": rid, "type": "error", "code": code, "data": text})

    async def on_message(self, conn: SimConnection, text: str) -> None:
        try:
            msg = orjson.loads(text)
            kind = msg["type"]
            rid = msg.get("id", "")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            await self._error(conn, "", 400, "malformed message")
            return
        if kind == "ping":
            await self._send(conn, {"id": rid, "type": "pong", "timestamp": time.time_ns() // 1000})
            return
        if kind not in ("subscribe", "unsubscribe"):
            await self._error(conn, rid, 400, f"type {kind} is not supported")
            return
        channel, _, names = str(msg.get("topic", "")).partition(":")
        if channel not in ("/market/match", "/market/level2") or not names:
            await self._error(conn, rid, 404, f"topic {msg.get('topic')} is not found")
            return
        symbols = names.split(",")
        if len(symbols) > MAX_SYMBOLS:
            await self._error(
                conn,
                rid,
                509,
                f"exceed max subscription count limitation of {MAX_SYMBOLS} per time",
            )
            return
        unknown = [s for s in symbols if s not in self.sim.markets]
        if unknown:
            await self._error(conn, rid, 404, f"topic {channel}:{unknown[0]} is not found")
            return
        trades, book = channel == "/market/match", channel == "/market/level2"
        for sym in symbols:
            if kind == "subscribe":
                conn.subscribe(sym, trades=trades, book=book)
            else:
                conn.unsubscribe(sym, trades=trades, book=book)
        if msg.get("response"):
            await self._send(conn, {"id": rid, "type": "ack"})

    # --- market data ---------------------------------------------------------------------------

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        start = self.sequence[symbol] + 1
        # Per price only the last change survives, with the sequence it was given.
        last: dict[tuple[bool, int], tuple[int, int]] = {}
        for i, c in enumerate(changes):
            last[(c.is_bid, c.price)] = (c.qty, start + i)
        end = start + len(changes) - 1
        self.sequence[symbol] = end
        bids = sorted(((p, q, s) for (b, p), (q, s) in last.items() if b), reverse=True)
        asks = sorted((p, q, s) for (b, p), (q, s) in last.items() if not b)
        data = {
            "changes": {
                "asks": [[_num(p), _num(q), str(s)] for p, q, s in asks],
                "bids": [[_num(p), _num(q), str(s)] for p, q, s in bids],
            },
            "sequenceEnd": end,
            "sequenceStart": start,
            "symbol": symbol,
            "time": time.time_ns() // 1_000_000,
        }
        frame = {
            "topic": f"/market/level2:{symbol}",
            "type": "message",
            "subject": "trade.l2update",
            "data": data,
        }
        return [orjson.dumps(frame).decode()]

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        seq = str(TRADE_SEQ_BASE + trade.trade_id)
        data = {
            "makerOrderId": _order_id(next(self._ids)),
            "price": _num(trade.price),
            "sequence": seq,
            "side": "buy" if trade.buyer_aggressor else "sell",
            "size": _num(trade.qty),
            "symbol": symbol,
            "takerOrderId": _order_id(next(self._ids)),
            "time": str(time.time_ns()),
            "tradeId": seq,
            "type": "match",
        }
        frame = {
            "topic": f"/market/match:{symbol}",
            "type": "message",
            "subject": "trade.l3match",
            "data": data,
        }
        return [orjson.dumps(frame).decode()]
