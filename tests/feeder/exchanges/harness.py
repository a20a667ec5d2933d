"""Test support for exchange adapters: recording sinks and a simulator round trip.

``roundtrip`` connects an adapter to the simulator speaking the same exchange, keeps a
``SymbolBook`` per symbol from the parsed frames (REST snapshots or pushed ones), then pauses
the market and checks every book equals the simulator's, level for level.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from feeder.book.orderbook import OrderBook
from feeder.book.sync import SymbolBook
from feeder.exchanges.base import Adapter, BookUpdate, ParseError, SnapshotSource
from feeder.sim.faults import Fault
from feeder.sim.market import Instrument
from feeder.sim.protocol import SimProtocol
from feeder.sim.server import FaultState, SimExchange, Simulator


@dataclass
class RecordingSink:
    trades: list[tuple[str, int, int, int, int, int, int]] = field(default_factory=list)
    books: list[tuple[str, BookUpdate]] = field(default_factory=list)
    controls: list[tuple[str, str]] = field(default_factory=list)

    def trade(
        self,
        symbol: str,
        side: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        self.trades.append((symbol, side, price, qty, trade_id, exchange_ts_ns, receive_ts_ns))

    def book(self, symbol: str, update: BookUpdate) -> None:
        self.books.append((symbol, update))

    def control(self, kind: str, detail: str) -> None:
        self.controls.append((kind, detail))


class NullOutput:
    def __init__(self) -> None:
        self.levels = 0
        self.statuses: list[tuple[int, int]] = []

    def level(self, *args: int) -> None:
        self.levels += 1

    def status(self, instrument_id: int, code: int, detail: int, ts_ns: int) -> None:
        self.statuses.append((instrument_id, code))


@dataclass
class RoundTrip:
    books: dict[str, SymbolBook]
    sim: SimExchange
    trades: int
    parse_errors: dict[str, int]
    controls: list[tuple[str, str]]

    def sim_book(self, symbol: str, depth: int | None) -> OrderBook:
        truth = OrderBook()
        book = self.sim.markets[symbol].book
        n = depth or len(book)
        for p, q in book.top_bids(n):
            truth.set(True, p, q)
        for p, q in book.top_asks(n):
            truth.set(False, p, q)
        return truth


class _Router:
    """Sends parsed book updates to per-symbol books; counts trades."""

    def __init__(self, books: dict[str, SymbolBook]) -> None:
        self.books = books
        self.trades = 0
        self.controls: list[tuple[str, str]] = []

    def trade(self, *args: object) -> None:
        self.trades += 1

    def book(self, symbol: str, update: BookUpdate) -> None:
        self.books[symbol].on_update(update)

    def control(self, kind: str, detail: str) -> None:
        self.controls.append((kind, detail))


async def roundtrip(
    adapter: Adapter,
    protocol: type[SimProtocol],
    instruments: Sequence[Instrument],
    *,
    events: int = 400,
    rate: float = 2000,
    faults: Sequence[Fault] = (),
    timeout_s: float = 20.0,
) -> RoundTrip:
    ex = SimExchange(adapter.name, protocol, instruments, faults=[FaultState(f) for f in faults])
    sim = Simulator([ex], rate=rate)
    await sim.start()
    base = f"http://127.0.0.1:{sim.port}/{adapter.name}"
    errors: dict[str, int] = {}
    resync_requests: asyncio.Queue[str] = asyncio.Queue()
    books = {
        inst.symbol: SymbolBook(
            inst.symbol,
            i + 1,
            adapter.sequence,
            NullOutput(),
            resync_requests.put_nowait,
            checksum=adapter.checksum,
            depth=adapter.book_depth,
        )
        for i, inst in enumerate(instruments)
    }
    router = _Router(books)
    symbols = [i.symbol for i in instruments]
    try:
        async with aiohttp.ClientSession() as http:
            url = sim.url(adapter.name)
            token = adapter.token_request(base)
            if token is not None:
                async with http.request(token.method, token.url, params=token.params) as r:
                    url, _ = adapter.url_from_token(
                        await r.read(), f"ws://127.0.0.1:{sim.port}/{adapter.name}"
                    )
            deadline = time.monotonic() + timeout_s

            async def fetch(symbol: str) -> None:
                req = adapter.snapshot_request(symbol, base)
                async with http.request(req.method, req.url, params=req.params) as r:
                    body = await r.read()
                books[symbol].load_snapshot(adapter.parse_snapshot(symbol, body, time.time_ns()))

            async def resubscribe(ws: aiohttp.ClientWebSocketResponse, symbol: str) -> None:
                for m in adapter.unsubscribe([symbol]):
                    await ws.send_str(m)
                for m in adapter.subscribe([symbol]):
                    await ws.send_str(m)

            while time.monotonic() < deadline:
                async with http.ws_connect(url) as ws:
                    for m in adapter.subscribe(symbols):
                        await ws.send_str(m)
                    if adapter.snapshot_source is SnapshotSource.REST:
                        await asyncio.sleep(0.05)  # deltas buffer while the snapshot is fetched
                        for s in symbols:
                            await fetch(s)
                    while time.monotonic() < deadline:
                        while not resync_requests.empty():
                            sym = resync_requests.get_nowait()
                            if adapter.snapshot_source is SnapshotSource.REST:
                                await fetch(sym)
                            else:
                                await resubscribe(ws, sym)
                        try:
                            msg = await asyncio.wait_for(ws.receive(), 0.2)
                        except TimeoutError:
                            msg = None
                        if msg is not None:
                            if msg.type in (
                                aiohttp.WSMsgType.CLOSE,
                                aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.ERROR,
                            ):
                                break  # dropped: reconnect and start over
                            data = msg.data
                            try:
                                adapter.parse(data, time.time_ns(), router)
                            except ParseError as e:
                                errors[e.reason] = errors.get(e.reason, 0) + 1
                            for kind, detail in router.controls[-1:]:
                                if kind == "ping":
                                    await ws.send_str(detail)
                                    router.controls.append(("ponged", detail))
                        if ex.events >= events and not sim.paused:
                            sim.paused = True
                            quiet_since = time.monotonic()
                        if (
                            sim.paused
                            and msg is None
                            and time.monotonic() - quiet_since > 0.3
                            and all(b.state.value == "live" for b in books.values())
                        ):
                            return RoundTrip(books, ex, router.trades, errors, router.controls)
                    # Connection dropped: books must start over from new snapshots.
                    for b in books.values():
                        b.state = b.state.__class__.WAITING
                        b._buffer.clear()
            raise TimeoutError(f"{adapter.name}: books not live after {timeout_s} s")
    finally:
        await sim.stop()
