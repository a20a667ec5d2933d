"""``feeder run``: exchanges -> books -> wire -> send path, until stopped or a duration ends."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from dataclasses import asdict
from typing import Any

import aiohttp

from feeder.book.sync import SymbolBook
from feeder.config import FeederConfig
from feeder.exchanges import adapter_class
from feeder.instruments import Instrument, Registry
from feeder.metrics.ticktowire import TickToWire
from feeder.publish.book_output import WireOutput
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import Candidate, SendPath
from feeder.publish.transport import UdpTransport
from feeder.runtime.connection import ExchangeConnection
from feeder.runtime.router import ExchangeRouter

log = logging.getLogger("feeder.run")


def channel_map(cfg: FeederConfig) -> ChannelMap:
    if cfg.single_port:
        return ChannelMap.single(cfg.group, cfg.port, cfg.channels)
    return ChannelMap.multi(cfg.group, cfg.port, cfg.channels)


def udp_candidates(cfg: FeederConfig, chmap: ChannelMap) -> list[Candidate]:
    loopback = cfg.interface.startswith("127.")
    ttl = 0 if loopback else cfg.ttl

    def make(mmsg: bool) -> Candidate:
        return Candidate(
            "udp-sendmmsg" if mmsg else "udp-sendto",
            lambda: UdpTransport.open(
                cfg.interface,
                chmap.destinations,
                ttl=ttl,
                loop=loopback,
                prefer_mmsg=mmsg,
                netns=cfg.netns,
                tx_timestamps=cfg.tx_timestamps,
            ),
        )

    if cfg.send_path == "udp-sendto":
        return [make(False)]
    return [make(True), make(False)]


class Flusher:
    """Coalesces "a frame was handled" into one publisher poll per event-loop turn: packets go
    out as soon as the loop is idle, batched across everything that arrived together."""

    def __init__(self, publisher: Publisher, loop: asyncio.AbstractEventLoop) -> None:
        self.publisher = publisher
        self.loop = loop
        self.pending = False

    def request(self) -> None:
        if not self.pending:
            self.pending = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self.pending = False
        self.publisher.poll()


class FeederApp:
    def __init__(self, cfg: FeederConfig, path: SendPath | None = None) -> None:
        if not cfg.exchanges:
            raise ValueError("no exchanges configured: give --exchange/--symbols or a config file")
        self.cfg = cfg
        self.chmap = channel_map(cfg)
        self.path = path if path is not None else SendPath(udp_candidates(cfg, self.chmap))
        self.publisher = Publisher(self.path, self.chmap)
        self.registry = Registry()
        self.adapters = {}
        for ex in cfg.exchanges:
            adapter = adapter_class(ex.name)()
            self.adapters[ex.name] = adapter
            for sym in ex.symbols:
                self.registry.add(ex.name, adapter.exchange_id, sym, ex.channel)
        self.output = WireOutput(self.publisher, list(self.registry))
        self.connections: list[ExchangeConnection] = []
        self.books: dict[str, dict[str, SymbolBook]] = {}
        self.started = 0.0
        self.tick_to_wire = TickToWire()

    def _books(self, exchange: str) -> dict[str, SymbolBook]:
        adapter = self.adapters[exchange]
        books = {}
        for inst in self.registry:
            if inst.exchange == exchange:
                books[inst.symbol] = SymbolBook(
                    inst.symbol,
                    inst.instrument_id,
                    adapter.sequence,
                    self.output,
                    lambda s: None,
                    checksum=adapter.checksum,
                    depth=adapter.book_depth,
                    top_n=self.cfg.top_n,
                )
        return books

    async def run(self, duration_s: float | None = None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        flusher = Flusher(self.publisher, loop)
        if self.path.transport is None:
            self.path.start()
        self.output.definitions()
        self.publisher.poll()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        self.started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            tasks = []
            for ex in self.cfg.exchanges:
                books = self._books(ex.name)
                self.books[ex.name] = books
                instruments = {i.symbol: i for i in self.registry if i.exchange == ex.name}

                def router(
                    reply: Any,
                    name: str = ex.name,
                    b: dict[str, SymbolBook] = books,
                    ins: dict[str, Instrument] = instruments,
                ) -> ExchangeRouter:
                    return ExchangeRouter(name, ins, b, self.output, reply)

                conn = ExchangeConnection(
                    self.adapters[ex.name],
                    list(ex.symbols),
                    books,
                    router,
                    http,
                    url=ex.url,
                    rest_url=ex.rest_url,
                    after_frame=flusher.request,
                )
                self.connections.append(conn)
                tasks.append(asyncio.create_task(conn.run(), name=f"exchange:{ex.name}"))
            ticker = asyncio.create_task(self._tick())
            # Start-up garbage is long-lived: move it out of the collector's sight so the hot
            # loop's collections stay short.
            gc.collect()
            gc.freeze()
            try:
                if duration_s is None:
                    await stop.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), duration_s)
            finally:
                for c in self.connections:
                    await c.stop()
                for t in [*tasks, ticker]:
                    t.cancel()
                for t in [*tasks, ticker]:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        drained = self.publisher.close()
        await asyncio.sleep(0.01)  # the last TX timestamps reach the error queue
        self.path.drain_tx(self.tick_to_wire.on_packet)
        report = self.report()
        report["drained"] = drained
        self.path.close()
        return report

    async def _tick(self) -> None:
        """Time bound for packets and heartbeats; instrument definitions every 10 s."""
        next_defs = time.monotonic() + 10
        while True:
            await asyncio.sleep(0.05)
            self.publisher.poll()
            self.path.drain_tx(self.tick_to_wire.on_packet)
            if time.monotonic() >= next_defs:
                self.output.definitions()
                next_defs += 10

    def report(self) -> dict[str, Any]:
        exchanges = {}
        for conn in self.connections:
            name = conn.adapter.name
            books = self.books.get(name, {})
            exchanges[name] = {
                "messages": conn.router.trades + sum(b.counters.levels for b in books.values()),
                "trades": conn.router.trades,
                "book_updates": conn.router.book_updates,
                "resyncs": sum(b.counters.resyncs for b in books.values()),
                "gaps": sum(b.counters.gaps for b in books.values()),
                "checksum_errors": sum(b.counters.checksum_errors for b in books.values()),
                "crossed": sum(b.counters.crossed for b in books.values()),
                "reconnects": conn.stats.reconnects,
                "parse_errors": dict(conn.stats.parse_errors),
                "state": conn.stats.state,
                "last_error": conn.stats.last_error,
                "symbols": {
                    s: {"state": b.state.value, **asdict(b.counters)} for s, b in books.items()
                },
            }
        stats = self.publisher.stats()
        return {
            "send_path": self.path.name,
            "send_path_events": self.path.stats.events,
            "session_id": self.publisher.session_id,
            "sent": sum(s.messages for s in stats),
            "packets": sum(s.packets for s in stats),
            "tick_to_wire_us": self.tick_to_wire.histogram.summary().scaled(1000.0),
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "exchanges": exchanges,
        }
