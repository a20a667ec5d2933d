"""One exchange connection: connect, subscribe, read, keep alive, resync, reconnect.

Isolation: each exchange runs in its own task and every failure is caught here, so one exchange
failing never stalls the others. Reconnects back off exponentially with jitter; after
``breaker_failures`` consecutive failures the circuit opens for ``breaker_cooldown_s`` (reported,
then retried). A stream silent for longer than the adapter's ``stale_after_s`` is treated as dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from feeder.book.sync import SymbolBook
from feeder.exchanges.base import Adapter, ParseError, SnapshotSource
from feeder.runtime.ratelimit import TokenBucket
from feeder.runtime.router import ExchangeRouter

log = logging.getLogger("feeder.connection")


class StaleStream(Exception):
    pass


@dataclass
class ConnectionStats:
    connects: int = 0
    reconnects: int = 0
    failures: int = 0
    breaker_opens: int = 0
    frames: int = 0
    parse_errors: dict[str, int] = field(default_factory=dict)
    snapshots_fetched: int = 0
    last_error: str = ""
    state: str = "starting"


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.2
    max_s: float = 10.0
    breaker_failures: int = 8
    breaker_cooldown_s: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        # Full exponential, then +-50 % jitter so a fleet does not reconnect in lockstep.
        delay: float = min(self.max_s, self.base_s * 2 ** max(failures - 1, 0))
        return delay * rng.uniform(0.5, 1.5)


class ExchangeConnection:
    def __init__(
        self,
        adapter: Adapter,
        symbols: list[str],
        books: dict[str, SymbolBook],
        router_factory: Callable[[Callable[[str], None]], ExchangeRouter],
        http: aiohttp.ClientSession,
        *,
        url: str | None = None,
        rest_url: str | None = None,
        after_frame: Callable[[int], None] = lambda read_ns: None,
        backoff: Backoff = Backoff(),
        seed: int | None = None,
    ) -> None:
        self.adapter = adapter
        self.symbols = symbols
        self.books = books
        self.http = http
        self.url = url
        self.rest_url = rest_url
        self.after_frame = after_frame
        self.backoff = backoff
        self.stats = ConnectionStats()
        self._rng = random.Random(seed)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._resync: asyncio.Queue[str] = asyncio.Queue()
        self.router = router_factory(self._outbox.put_nowait)
        for book in books.values():
            book.request_snapshot = self._resync.put_nowait
        self._stopping = False
        self.requests = TokenBucket(adapter.subscribe_rate, adapter.subscribe_burst)

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                await self._session()
                failures = 0  # a clean end (server closed after a healthy run)
            except asyncio.CancelledError:
                raise
            except (
                aiohttp.ClientError,
                OSError,
                TimeoutError,
                StaleStream,
                ParseError,
                ValueError,
            ) as e:
                if self._stopping:
                    break  # our own close, not a failure
                failures += 1
                self.stats.failures += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
                log.warning("%s: %s", self.adapter.name, self.stats.last_error)
            if self._stopping:
                break
            self._mark_disconnected()
            self.stats.reconnects += 1
            if failures >= self.backoff.breaker_failures:
                self.stats.breaker_opens += 1
                self.stats.state = "circuit-open"
                log.error(
                    "%s: %d failures in a row; circuit open for %.0f s",
                    self.adapter.name,
                    failures,
                    self.backoff.breaker_cooldown_s,
                )
                await asyncio.sleep(self.backoff.breaker_cooldown_s)
                failures = self.backoff.breaker_failures - 1  # half-open: one more try
            else:
                self.stats.state = "backoff"
                await asyncio.sleep(self.backoff.delay(max(failures, 1), self._rng))

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()

    def _mark_disconnected(self) -> None:
        """Every book of this exchange is unknown until the next snapshot: say so on the wire."""
        for book in self.books.values():
            book.disconnected()
        # The resync requests belong to the dead connection; the new one subscribes afresh.
        while not self._resync.empty():
            self._resync.get_nowait()

    # --- one connection -----------------------------------------------------------------------

    async def _session(self) -> None:
        adapter = self.adapter
        url = adapter.url(self.url)
        ping_s = adapter.ping.interval_s
        token = adapter.token_request(self.rest_url)
        if token is not None:
            async with self.http.request(token.method, token.url, params=token.params) as r:
                r.raise_for_status()
                url, interval = adapter.url_from_token(await r.read(), self.url)
                ping_s = interval or ping_s
        self.stats.state = "connecting"
        # Exchanges that keep alive with WebSocket ping frames (no app-level message) get them
        # from aiohttp's heartbeat, which also fails the connection when pongs stop.
        frames_ping = ping_s if ping_s and adapter.ping.message is None else None
        async with self.http.ws_connect(url, heartbeat=frames_ping, max_msg_size=0) as ws:
            self._ws = ws
            self.stats.connects += 1
            self.stats.state = "subscribing"
            tasks = [asyncio.create_task(self._subscribe(ws))]
            if ping_s and adapter.ping.message is not None:
                tasks.append(asyncio.create_task(self._pinger(ws, ping_s)))
            tasks.append(asyncio.create_task(self._resyncer(ws)))
            tasks.append(asyncio.create_task(self._writer(ws)))
            try:
                await self._read(ws)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
                self._ws = None

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        for msg in self.adapter.subscribe(self.symbols):
            await self.requests.take()  # the exchange's request rate limit
            await ws.send_str(msg)
        self.stats.state = "live"
        if self.adapter.snapshot_source is SnapshotSource.REST:
            for sym in self.symbols:
                self._resync.put_nowait(sym)

    async def _resyncer(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Serve snapshot requests: REST fetch, or resubscribe for push-snapshot exchanges."""
        adapter = self.adapter
        while True:
            symbol = await self._resync.get()
            if adapter.snapshot_source is SnapshotSource.REST:
                await self._fetch_snapshot(symbol)
            else:
                for m in adapter.unsubscribe([symbol]) + adapter.subscribe([symbol]):
                    await self.requests.take()
                    await ws.send_str(m)

    async def _fetch_snapshot(self, symbol: str) -> None:
        req = self.adapter.snapshot_request(symbol, self.rest_url)
        for attempt in range(5):
            try:
                async with self.http.request(
                    req.method, req.url, params=req.params, timeout=aiohttp.ClientTimeout(total=10)
                ) as r:
                    r.raise_for_status()
                    body = await r.read()
                read_ns = time.time_ns()
                update = self.adapter.parse_snapshot(symbol, body, read_ns)
            except (aiohttp.ClientError, TimeoutError, ParseError) as e:
                log.warning("%s %s snapshot: %s", self.adapter.name, symbol, e)
                await asyncio.sleep(self.backoff.delay(attempt + 1, self._rng))
                continue
            self.stats.snapshots_fetched += 1
            self.books[symbol].load_snapshot(update)
            self.after_frame(read_ns)
            return

    async def _pinger(self, ws: aiohttp.ClientWebSocketResponse, interval_s: float) -> None:
        message = self.adapter.ping.message
        assert message is not None
        while True:
            await asyncio.sleep(interval_s)
            await ws.send_str(message())

    async def _writer(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await ws.send_str(await self._outbox.get())

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        adapter, router, stats = self.adapter, self.router, self.stats
        stale = adapter.ping.stale_after_s
        after = self.after_frame
        errors = stats.parse_errors
        while True:
            try:
                msg = await ws.receive(timeout=stale)
            except TimeoutError:
                raise StaleStream(f"no frame for {stale:.0f} s") from None
            now = time.time_ns()
            t = msg.type
            if t is aiohttp.WSMsgType.TEXT or t is aiohttp.WSMsgType.BINARY:
                stats.frames += 1
                try:
                    adapter.parse(msg.data, now, router)
                except ParseError as e:
                    errors[e.reason] = errors.get(e.reason, 0) + 1
                    if errors[e.reason] <= 3:
                        log.warning("%s: bad frame (%s): %.200r", adapter.name, e, msg.data)
                after(now)
            elif t in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                raise ConnectionResetError(f"server closed the connection ({ws.close_code})")
            elif t is aiohttp.WSMsgType.ERROR:
                raise ConnectionResetError(f"websocket error: {ws.exception()}")
