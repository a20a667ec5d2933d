"""The simulator's server: one aiohttp app, each exchange under its own path prefix.

``ws://HOST:PORT/<exchange><ws_path>`` speaks that exchange's WebSocket protocol and
``http://HOST:PORT/<exchange>/...`` its REST endpoints. A generator task steps every market at
the configured rate and sends each event's frames to the connections subscribed to it; faults
are injected here, in one place, for every protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from feeder.normalize.decimal import render
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument, SymbolMarket
from feeder.sim.protocol import SimProtocol

log = logging.getLogger("feeder.sim")


class SimConnection:
    """One client connection and what it subscribed to."""

    def __init__(
        self, ws: web.WebSocketResponse, binary: bool, query: dict[str, str] | None = None
    ) -> None:
        self.ws = ws
        self.binary = binary
        self.query = query or {}  # the connect URL's query (e.g. KuCoin's token, connectId)
        self.trades: set[str] = set()
        self.books: set[str] = set()
        self.sent = 0

    def subscribe(self, symbol: str, trades: bool = True, book: bool = True) -> None:
        if trades:
            self.trades.add(symbol)
        if book:
            self.books.add(symbol)

    def unsubscribe(self, symbol: str, trades: bool = True, book: bool = True) -> None:
        if trades:
            self.trades.discard(symbol)
        if book:
            self.books.discard(symbol)

    async def send(self, frame: str) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):  # client went away
            if self.binary:
                await self.ws.send_bytes(frame.encode())
            else:
                await self.ws.send_str(frame)
            self.sent += 1


@dataclass
class FaultState:
    fault: Fault
    fired: bool = False
    fired_at_event: int = -1


@dataclass
class SimExchange:
    """One simulated exchange: protocol, markets, connections, faults, counters."""

    name: str
    make_protocol: Callable[[SimExchange], SimProtocol]
    instruments: Sequence[Instrument]
    seed: int = 1
    faults: list[FaultState] = field(default_factory=list)
    events: int = 0
    frames_skipped: int = 0
    stalled_until: float = 0.0
    down_until: float = 0.0
    refused: int = 0

    def __post_init__(self) -> None:
        self.markets = {
            inst.symbol: SymbolMarket(inst, self.seed * 1000 + i)
            for i, inst in enumerate(self.instruments)
        }
        self.conns: set[SimConnection] = set()
        self.protocol = self.make_protocol(self)

    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self.down_until:
            self.refused += 1
            return web.Response(status=503, text="exchange down (simulated outage)")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = SimConnection(ws, self.protocol.binary_frames, dict(request.query))
        self.conns.add(conn)
        try:
            await self.protocol.on_connect(conn)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self.protocol.on_message(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self.protocol.on_message(conn, msg.data.decode(errors="replace"))
        finally:
            self.conns.discard(conn)
        return ws

    async def snapshot_to(self, conn: SimConnection, symbol: str) -> None:
        """Send a new subscriber the snapshot frames (push-snapshot exchanges)."""
        market = self.markets.get(symbol)
        if market is None:
            return
        for frame in self.protocol.snapshot_frames(symbol, market):
            await conn.send(frame)

    # --- generation ----------------------------------------------------------------------------

    async def step(self, symbol: str) -> None:
        market = self.markets[symbol]
        ev = market.step()
        self.events += 1
        skip = await self._faults()
        proto = self.protocol
        if ev.trade is not None:
            frames = proto.trade_frames(symbol, market, ev.trade)
            for conn in list(self.conns):
                if symbol in conn.trades:
                    for f in frames:
                        await conn.send(f)
        if ev.changes:
            frames = proto.book_frames(symbol, market, ev.changes)
            if skip:
                self.frames_skipped += len(frames)
                return
            for conn in list(self.conns):
                if symbol in conn.books:
                    for f in frames:
                        await conn.send(f)

    async def _faults(self) -> bool:
        """Fire due faults; True when this event's book frames must be skipped."""
        skip = False
        for st in self.faults:
            if st.fired or self.events < st.fault.after_events:
                continue
            st.fired, st.fired_at_event = True, self.events
            kind = st.fault.kind
            log.warning("sim %s: injecting %s at event %d", self.name, kind.value, self.events)
            if kind is FaultKind.DROP_CONNECTION:
                for conn in list(self.conns):
                    await conn.ws.close()
            elif kind is FaultKind.SKIP_SEQUENCE:
                skip = True
            elif kind is FaultKind.CORRUPT_CHECKSUM:
                self.protocol.corrupt_next_checksum = True
            elif kind is FaultKind.MALFORMED:
                for conn in list(self.conns):
                    await conn.send('{"this is not": valid json')
                    await conn.send('{"unexpected": "shape"}')
            elif kind is FaultKind.STALL:
                self.stalled_until = time.monotonic() + st.fault.seconds
            elif kind is FaultKind.DOWN:
                self.down_until = time.monotonic() + st.fault.seconds
                for conn in list(self.conns):
                    await conn.ws.close()
            elif kind is FaultKind.BURST:
                pass  # the generator sends a burst when it sees the fired state
        return skip

    def burst_due(self) -> int:
        for st in self.faults:
            if st.fault.kind is FaultKind.BURST and st.fired and st.fired_at_event == self.events:
                st.fired_at_event = -2  # once
                return st.fault.count
        return 0


class Simulator:
    """Every configured exchange in one aiohttp app, and the generator driving them."""

    def __init__(self, exchanges: Sequence[SimExchange], rate: float) -> None:
        self.exchanges = {ex.name: ex for ex in exchanges}
        self.rate = rate  # market events per second, per exchange
        self.app = web.Application()
        for ex in exchanges:
            self.app.router.add_get(f"/{ex.name}{ex.protocol.ws_path}", ex.ws_handler)
            for route in ex.protocol.routes():
                assert isinstance(route, web.RouteDef)
                self.app.router.add_route(route.method, f"/{ex.name}{route.path}", route.handler)
        # Control endpoints for tests and the demo: pause the markets, read the true books.
        self.app.router.add_post("/control/pause", self._pause)
        self.app.router.add_post("/control/resume", self._resume)
        self.app.router.add_get("/control/books", self._books)
        self.app.router.add_get("/control/stats", self._stats)
        self.app.router.add_get("/control/info", self._info)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._gen: asyncio.Task[None] | None = None
        self.paused = False

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        # TCPSite does not expose the bound port; port 0 asks the kernel for a free one.
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        self._gen = asyncio.create_task(self._generate())
        return self.port

    async def stop(self) -> None:
        if self._gen is not None:
            self._gen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gen
        for ex in self.exchanges.values():
            for conn in list(ex.conns):
                await conn.ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, exchange: str, scheme: str = "ws") -> str:
        ex = self.exchanges[exchange]
        path = ex.protocol.ws_path if scheme == "ws" else ""
        return f"{scheme}://127.0.0.1:{self.port}/{exchange}{path}"

    async def _pause(self, request: web.Request) -> web.Response:
        self.paused = True
        return web.json_response({"paused": True})

    async def _resume(self, request: web.Request) -> web.Response:
        self.paused = False
        return web.json_response({"paused": False})

    async def _books(self, request: web.Request) -> web.Response:
        depth = int(request.query.get("depth", "10"))
        return web.json_response(self.books(depth))

    async def _info(self, request: web.Request) -> web.Response:
        host = request.host.rsplit(":", 1)[0]
        return web.json_response(self.info(host))

    def info(self, host: str = "127.0.0.1") -> dict[str, object]:
        """Where each exchange is served and which symbols it has (what ``feeder run`` needs)."""
        return {
            "port": self.port,
            "exchanges": {
                name: {
                    "url": self.url(name).replace("127.0.0.1", host),
                    "rest_url": self.url(name, "http").replace("127.0.0.1", host),
                    "symbols": list(ex.markets),
                }
                for name, ex in self.exchanges.items()
            },
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def books(self, depth: int) -> dict[str, dict[str, dict[str, list[list[str]]]]]:
        """The true books, best ``depth`` levels, as decimal strings (exchange -> symbol)."""
        out: dict[str, dict[str, dict[str, list[list[str]]]]] = {}
        for name, ex in self.exchanges.items():
            out[name] = {}
            for sym, m in ex.markets.items():
                out[name][sym] = {
                    "bids": [[render(p), render(q)] for p, q in m.book.top_bids(depth)],
                    "asks": [[render(p), render(q)] for p, q in m.book.top_asks(depth)],
                }
        return out

    def stats(self) -> dict[str, dict[str, object]]:
        return {
            name: {
                "events": ex.events,
                "connections": len(ex.conns),
                "frames_skipped": ex.frames_skipped,
                "refused_connections": ex.refused,
                "faults": [
                    {"name": st.fault.kind.value, "fired": st.fired, "at_event": st.fired_at_event}
                    for st in ex.faults
                ],
            }
            for name, ex in self.exchanges.items()
        }

    async def _generate(self) -> None:
        tick = 0.005
        start = time.monotonic()
        done: dict[str, int] = dict.fromkeys(self.exchanges, 0)
        while True:
            await asyncio.sleep(tick)
            if self.paused:
                start = time.monotonic()
                done = dict.fromkeys(self.exchanges, 0)
                continue
            now = time.monotonic()
            for name, ex in self.exchanges.items():
                if now < ex.stalled_until or not ex.conns:
                    continue
                due = int((now - start) * self.rate) - done[name]
                due += ex.burst_due()
                symbols = list(ex.markets)
                for i in range(max(due, 0)):
                    await ex.step(symbols[(done[name] + i) % len(symbols)])
                    if i % 32 == 31:
                        # Sends rarely block, so without this the generator would hold the
                        # loop for whole bursts and REST snapshots / subscriptions would wait
                        # seconds behind it, as no real exchange makes them wait.
                        await asyncio.sleep(0)
                done[name] += max(due, 0)
