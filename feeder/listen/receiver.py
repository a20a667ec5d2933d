"""The multicast receiver: sockets per group, batched receive, decode, track, measure.

One socket per joined group:port, each drained with ``recvmmsg`` batches when readable. Every
datagram is header-decoded (malformed ones are counted by reason and dropped, never raised on),
sequence-tracked per channel, and its latency (kernel RX software timestamp minus the packet's
sending time: the same host clock in the veth demo) recorded in a histogram.
"""

from __future__ import annotations

import selectors
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from feeder.listen.books import ReceiverBooks
from feeder.listen.tracker import SequenceTracker
from feeder.metrics.histogram import Histogram
from feeder.net.mcast import BufferReport, open_receiver
from feeder.net.mmsg import BatchReceiver, make_receiver
from feeder.net.timestamps import await_rx_stamping, enable_rx_software
from feeder.wire import Packet, PacketKind, Reject, decode_header, decode_packet

DATA, HEARTBEAT = PacketKind.DATA, PacketKind.HEARTBEAT


@dataclass(frozen=True)
class ReceiverConfig:
    destinations: tuple[tuple[str, int], ...]
    iface_addr: str
    rcvbuf: int = 32 << 20
    batch: int = 64
    netns: str | None = None
    books: bool = False  # decode every message and rebuild books (slower)


class Receiver:
    def __init__(self, cfg: ReceiverConfig) -> None:
        self.cfg = cfg
        self.tracker = SequenceTracker()
        self.latency_ns = Histogram()
        self.rejects: Counter[str] = Counter()
        self.datagrams = 0
        self.bytes = 0
        self.truncated = 0
        self.buffers: list[BufferReport] = []
        self.books = ReceiverBooks() if cfg.books else None
        self._selector = selectors.DefaultSelector()
        self._rx: list[BatchReceiver] = []
        self._socks = []
        self.started_ns = time.time_ns()
        try:
            for group, port in dict.fromkeys(cfg.destinations):
                opened = open_receiver(
                    group,
                    port,
                    cfg.iface_addr,
                    rcvbuf=cfg.rcvbuf,
                    force_buffer=True,
                    blocking=False,
                    netns=cfg.netns,
                )
                self._socks.append(opened.sock)
                self.buffers.append(opened.buffer)
                enable_rx_software(opened.sock)
                rx = make_receiver(opened.sock, cfg.batch, 2048, timestamps=True)
                self._selector.register(opened.sock, selectors.EVENT_READ, rx)
                self._rx.append(rx)
        except BaseException:
            self.close()
            raise
        # The kernel turns RX stamping on lazily; without this the first datagrams of a run
        # would carry no timestamp and be missing from the latency figures.
        await_rx_stamping()

    def close(self) -> None:
        self._selector.close()
        for s in self._socks:
            s.close()
        self._socks.clear()

    def poll(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for datagrams and process all that are queued."""
        got = 0
        for key, _ in self._selector.select(timeout_s):
            rx: BatchReceiver = key.data
            while True:
                n = rx.recv(wait=False)
                if n == 0:
                    break
                got += n
                self._process(rx, n)
        return got

    def _process(self, rx: BatchReceiver, n: int) -> None:
        tracker, hist, rejects = self.tracker, self.latency_ns, self.rejects
        for i in range(n):
            view = rx.view(i)
            self.datagrams += 1
            self.bytes += len(view)
            if rx.truncated(i):
                self.truncated += 1
                rejects["truncated"] += 1
                continue
            h = decode_header(view)
            if type(h) is Reject:
                rejects[h.code] += 1
                continue
            assert not isinstance(h, Reject)
            ts = rx.timestamp_ns(i)
            if ts is not None:
                hist.record(ts - h.send_time_ns)
            if h.kind is DATA:
                fresh = tracker.on_data(h.session_id, h.channel_id, h.first_seq, h.msg_count)
                if self.books is not None and fresh == h.msg_count:
                    packet = decode_packet(view)
                    if type(packet) is Packet:
                        self.books.apply(packet)
            else:
                tracker.on_heartbeat(
                    h.session_id, h.channel_id, h.first_seq, end=h.kind is not HEARTBEAT
                )

    def run(
        self,
        *,
        count: int | None = None,
        duration_s: float | None = None,
        until_end: bool = False,
        tick_s: float = 1.0,
        on_tick: Callable[[Receiver], None] | None = None,
        idle_exit_s: float | None = None,
    ) -> None:
        """Receive until ``count`` messages, ``duration_s`` elapsed, every channel ended
        (``until_end``), or ``idle_exit_s`` without traffic after the first packet."""
        start = time.monotonic()
        next_tick = start + tick_s
        last_rx = start
        while True:
            got = self.poll(0.05)
            now = time.monotonic()
            if got:
                last_rx = now
            if on_tick is not None and now >= next_tick:
                on_tick(self)
                next_tick = now + tick_s
            if count is not None and self.messages >= count:
                return
            if duration_s is not None and now - start >= duration_s:
                return
            if (
                until_end
                and self.tracker.channels
                and all(c.ended for c in self.tracker.channels.values())
            ):
                return
            if idle_exit_s is not None and self.datagrams and now - last_rx >= idle_exit_s:
                return

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.tracker.channels.values())

    def summary(self) -> dict[str, Any]:
        chans = [
            c.to_json() for c in sorted(self.tracker.channels.values(), key=lambda c: c.channel)
        ]
        elapsed = (time.time_ns() - self.started_ns) / 1e9
        return {
            "received": self.messages,
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "gaps": sum(c["gaps"] for c in chans),
            "gap_messages": sum(c["gap_messages"] for c in chans),
            "missing_messages": sum(c["missing_messages"] for c in chans),
            "duplicates": sum(c["duplicates"] for c in chans),
            "out_of_order": sum(c["out_of_order"] for c in chans),
            "heartbeats": sum(c["heartbeats"] for c in chans),
            "rejected": dict(self.rejects),
            "latency_us": self.latency_ns.summary().scaled(1000.0),
            "rcvbuf": [str(b) for b in self.buffers],
            "elapsed_s": round(elapsed, 3),
            "channels": chans,
            **({"books": self.books.top(10)} if self.books is not None else {}),
        }


def parse_destinations(specs: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``239.1.1.1:5001`` strings into (group, port) pairs, with clear errors."""
    out = []
    for spec in specs:
        group, sep, port = spec.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"{spec!r}: expected GROUP:PORT, e.g. 239.100.0.1:31001")
        out.append((group, int(port)))
    return tuple(out)
