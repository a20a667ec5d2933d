"""``feeder run``: exchanges -> books -> wire -> send path, until stopped or a duration ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Literal

import aiohttp

from feeder import tuning
from feeder.book.sync import State, SymbolBook
from feeder.config import FeederConfig
from feeder.exchanges import adapter_class
from feeder.instruments import Instrument, Registry
from feeder.metrics.prom import FeederCollector
from feeder.metrics.prom import serve as serve_metrics
from feeder.metrics.ticktowire import TickToWire
from feeder.publish.ab import both_lines, line_b, open_lines
from feeder.publish.book_output import WireOutput
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import Candidate, SendPath
from feeder.publish.transport import Transport, TransportUnavailable, UdpTransport
from feeder.recovery.server import RecoveryEndpoint
from feeder.runtime.connection import ExchangeConnection
from feeder.runtime.router import ExchangeRouter
from hosttune.host import Host

log = logging.getLogger("feeder.run")
RECOVERY_LINGER_S = 0.5  # re-requests still answered after end of session


def channel_map(cfg: FeederConfig) -> ChannelMap:
    if cfg.single_port:
        return ChannelMap.single(cfg.group, cfg.port, cfg.channels)
    return ChannelMap.multi(cfg.group, cfg.port, cfg.channels)


def line_b_map(cfg: FeederConfig, chmap: ChannelMap) -> ChannelMap | None:
    """Line B of A/B feeds (laid out like line A), or None when only line A is configured."""
    if cfg.group_b is None:
        return None
    return line_b(chmap, cfg.group_b, cfg.port if cfg.port_b is None else cfg.port_b)


def recovery_endpoint(cfg: FeederConfig, chmap: ChannelMap) -> RecoveryEndpoint | None:
    if cfg.recovery_address is None:
        return None
    return RecoveryEndpoint(
        chmap.channels,
        cfg.recovery_address,
        cfg.recovery_port,
        buffer_packets=cfg.recovery_buffer_packets,
        allow_any=cfg.allow_any_recovery_address,
        netns=cfg.netns,
    )


def udp_candidates(cfg: FeederConfig, chmap: ChannelMap) -> list[Candidate]:
    loopback = cfg.interface.startswith("127.")
    ttl = 0 if loopback else cfg.ttl
    b = line_b_map(cfg, chmap)

    def make(mmsg: bool) -> Candidate:
        def open_one(iface: str, dests: Sequence[tuple[str, int]]) -> Transport:
            return UdpTransport.open(
                iface,
                dests,
                ttl=ttl,
                loop=loopback,
                prefer_mmsg=mmsg,
                netns=cfg.netns,
                tx_timestamps=cfg.tx_timestamps,
            )

        return Candidate(
            "udp-sendmmsg" if mmsg else "udp-sendto",
            lambda: open_lines(open_one, cfg.interface, chmap, b, cfg.interface_b),
        )

    if cfg.send_path == "udp-sendto":
        return [make(False)]
    return [make(True), make(False)]


def xdp_candidates(
    iface: str,
    destinations: Sequence[tuple[str, int]],
    *,
    ttl: int,
    netns: str | None,
    max_datagram: int = 1400,  # the Publisher's default max_packet
    tx_times: bool = False,
) -> list[Candidate]:
    """AF_XDP zero-copy, then copy mode (``xdp.transport``, imported only when tried)."""

    def make(mode: Literal["zerocopy", "copy"]) -> Candidate:
        def open_xdp() -> Transport:
            try:
                from xdp.transport import XdpTransport
            except ImportError as e:
                raise TransportUnavailable(f"AF_XDP support cannot be loaded: {e}") from e
            return XdpTransport.open(
                iface,
                destinations,
                mode=mode,
                ttl=ttl,
                netns=netns,
                max_datagram=max_datagram,
                tx_times=tx_times,
            )

        return Candidate(f"xdp-{mode}", open_xdp)

    return [make("zerocopy"), make("copy")]


def send_candidates(cfg: FeederConfig, chmap: ChannelMap) -> list[Candidate]:
    """The transports ``cfg.send_path`` allows, best first. ``auto`` and ``xdp`` put AF_XDP
    ahead of kernel UDP, which stays behind it as the fallback for a failure while running
    (``auto`` skips AF_XDP on loopback, where it has nothing to offer)."""
    udp = udp_candidates(cfg, chmap)
    loopback = cfg.interface.startswith("127.")
    # AF_XDP sends on one interface: both A/B lines, unless line B has its own interface.
    split = cfg.interface_b not in (None, cfg.interface)
    if not split and (cfg.send_path == "xdp" or (cfg.send_path == "auto" and not loopback)):
        if cfg.xdp_unavailable is not None:
            return [
                _unavailable(f"xdp-{m}", cfg.xdp_unavailable) for m in ("zerocopy", "copy")
            ] + udp
        dests = both_lines(chmap, line_b_map(cfg, chmap))
        xdp = xdp_candidates(
            cfg.interface, dests, ttl=cfg.ttl, netns=cfg.netns, tx_times=cfg.tx_timestamps
        )
        return xdp + udp
    return udp


def _unavailable(name: str, reason: str) -> Candidate:
    """A candidate that cannot be created (fault injection: AF_XDP unavailable)."""

    def fail() -> Transport:
        raise TransportUnavailable(reason)

    return Candidate(name, fail)


def require_send_path(send_path: str, path: SendPath) -> None:
    """``xdp`` means AF_XDP: once ``path`` has started, refuse anything else (``ValueError``
    with the reasons; the path is closed). Other choices accept what the path found."""
    if send_path != "xdp" or path.name.startswith("xdp-"):
        return
    why = "; ".join(e.split(" ", 1)[1] for e in path.stats.events if " xdp-" in e)
    path.close()
    raise ValueError(
        f"send path xdp: AF_XDP cannot be used here ({why or 'no AF_XDP candidate'}); "
        "send path auto falls back to kernel UDP"
    )


LATER = 1 << 62  # later than any frame's read time: "nothing unsent", "not timing yet"
IDLE_TX_DRAIN = 16  # TX timestamps read per idle loop turn (the ticker takes the rest)


class Flusher:
    """When packets leave: as soon as the event loop is idle (one publisher poll per loop turn,
    batched across everything that arrived together), and, inside a burst of frames that the
    read loop handles back to back without yielding, once the oldest unsent frame was read
    ``max_delay_ns`` ago (0: after every frame). Without that bound the first frame of a burst
    waits for the whole burst: a 5 ms exchange tick of 30 frames held tick-to-wire p50 at
    ~700 µs and p99 at ~20 ms."""

    def __init__(
        self,
        publisher: Publisher,
        loop: asyncio.AbstractEventLoop,
        max_delay_ns: int = 50_000,
        clock: Callable[[], int] = time.time_ns,  # the clock frames' read times come from
        idle: Callable[[], object] = lambda: None,
    ) -> None:
        self.publisher = publisher
        self.idle = idle  # after the idle turn's send: bounded bookkeeping (TX timestamps)
        self.loop = loop
        self.max_delay_ns = max_delay_ns
        self.clock = clock
        self.pending = False
        self.oldest_ns = LATER  # read time of the oldest frame not yet sent
        self.bounded = 0  # polls made inside a burst because of the bound

    def request(self, read_ns: int) -> None:
        """A frame read at ``read_ns`` was handled: its messages wait in the publisher."""
        if read_ns < self.oldest_ns:
            self.oldest_ns = read_ns
        if not self.pending:
            self.pending = True
            self.loop.call_soon(self._run)
        if self.clock() - self.oldest_ns >= self.max_delay_ns:
            self.bounded += 1
            self._poll()

    def _run(self) -> None:
        self.pending = False
        self._poll()
        self.idle()

    def _poll(self) -> None:
        self.publisher.poll()
        self.oldest_ns = LATER


class FeederApp:
    def __init__(self, cfg: FeederConfig, path: SendPath | None = None) -> None:
        if not cfg.exchanges:
            raise ValueError("no exchanges configured: give --exchange/--symbols or a config file")
        self.cfg = cfg
        self.chmap = channel_map(cfg)
        self.path = path if path is not None else SendPath(send_candidates(cfg, self.chmap))
        self.line_b = line_b_map(cfg, self.chmap)
        self.recovery = recovery_endpoint(cfg, self.chmap)
        self.publisher = Publisher(
            self.path,
            self.chmap,
            line_b=self.line_b,
            retransmit=self.recovery.store if self.recovery is not None else None,
        )
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
        self.tick_to_wire = TickToWire(since_ns=LATER)  # timed once every book is live
        self.tuning: list[tuning.Step] = []
        self.flusher: Flusher | None = None
        self.tick_to_wire_from_s: float | None = None

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
        # TX timestamps are read back a few packets at a time when the loop is idle: draining
        # them only from the 50 ms ticker stalled the loop for ~10 ms at 10k msg/s.
        flusher = Flusher(
            self.publisher,
            loop,
            self.cfg.flush_us * 1000,
            idle=lambda: self.path.drain_tx(self.tick_to_wire.on_packet, IDLE_TX_DRAIN),
        )
        self.flusher = flusher
        if self.path.transport is None and self.cfg.sender_delay_s > 0:
            # Fault injection: exchanges start first, the sender later; packets queue meanwhile.
            loop.call_later(self.cfg.sender_delay_s, self._start_sender)
        elif self.path.transport is None:
            self._start_sender()
        self.tuning = tuning.self_tune(Host(), pin=self.cfg.self_tune, cpu=self.cfg.cpu)
        if self.path.transport is not None:
            self.tuning += tuning.transport(self.path.transport.info())
        if self.recovery is not None:
            await self.recovery.start(self.publisher.session_id)
        if self.cfg.metrics_port:
            collector = FeederCollector(self, lambda: {"tick_to_wire": self.tick_to_wire.histogram})
            serve_metrics(self.cfg.metrics_port, self.cfg.metrics_addr, collector)
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
            self.tuning.append(tuning.tune_gc())
            if self.cfg.show_tuning:
                print(f"feeder run: self-tuning\n{tuning.table(self.tuning)}", file=sys.stderr)
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
        if self.recovery is not None:
            # Receivers may still be asking for the last packets before end of session.
            await asyncio.sleep(RECOVERY_LINGER_S)
            self.recovery.close()
        report = self.report()
        report["drained"] = drained
        self.path.close()
        return report

    def _all_books_live(self) -> bool:
        return bool(self.books) and all(
            b.state is State.LIVE for books in self.books.values() for b in books.values()
        )

    def _start_sender(self) -> None:
        self.path.start()
        require_send_path(self.cfg.send_path, self.path)

    async def _tick(self) -> None:
        """Time bound for packets and heartbeats; instrument definitions every 10 s."""
        next_defs = time.monotonic() + 10
        while True:
            await asyncio.sleep(0.05)
            self.publisher.poll()
            self.path.drain_tx(self.tick_to_wire.on_packet)
            if self.tick_to_wire.since_ns == LATER and self._all_books_live():
                self.tick_to_wire.since_ns = time.time_ns()
                self.tick_to_wire_from_s = round(time.monotonic() - self.started, 3)
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
            "flush": {
                "max_delay_us": self.cfg.flush_us,
                "bounded_polls": self.flusher.bounded if self.flusher is not None else 0,
            },
            "tick_to_wire_us": self.tick_to_wire.histogram.summary().scaled(1000.0),
            # Timed from when every book was first live (start-up sync buffering excluded).
            "tick_to_wire_from_s": self.tick_to_wire_from_s,
            "tick_to_wire_not_timed": self.tick_to_wire.not_timed,
            # Packets whose TX time came back (of "packets"): the coverage.
            "tick_to_wire_packets": self.tick_to_wire.packets,
            "tuning": tuning.as_json(self.tuning),
            "channels": [asdict(s) for s in stats],
            "send_fallbacks": self.path.stats.fallbacks,
            "queued_without_sender": self.path.stats.queued_without_sender,
            "send_backlog_peak": self.path.stats.backlog_peak,
            "send_backlog": self.path.backlog,
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "exchanges": exchanges,
            **({"ab": {"line_b": self.line_b.describe()}} if self.line_b is not None else {}),
            **({"recovery": self.recovery.report()} if self.recovery is not None else {}),
        }
