"""The multicast receiver: sockets per group, batched receive, decode, track, measure.

One socket per joined group:port, each drained with ``recvmmsg`` batches when readable. Every
datagram is header-decoded (malformed ones are counted by reason and dropped, never raised on),
sequence-tracked per channel, and its latency (kernel RX software timestamp minus the packet's
sending time: the same host clock in the veth demo) recorded in a histogram.

Optional: a line B (A/B feeds), whose sockets feed the same tracker through an ``Arbiter``
(first copy wins, gaps only when both lines lost it); and recovery, a ``RecoveryClient`` that
re-requests what is still missing from the feeder, whose answers take the normal decode/track
path, with books then applied in sequence order (``InOrderBooks``).
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from feeder.listen.arbiter import Arbiter, novel
from feeder.listen.books import ReceiverBooks
from feeder.listen.dropfilter import DropRule, attach
from feeder.listen.inorder import InOrderBooks
from feeder.listen.tracker import SequenceTracker
from feeder.metrics.histogram import Histogram
from feeder.net import validate
from feeder.net.mcast import BufferReport, open_receiver, request_buffer
from feeder.net.mmsg import BatchReceiver, make_receiver
from feeder.net.netns import socket_in
from feeder.net.timestamps import await_rx_stamping, enable_rx_software
from feeder.recovery.client import ClientSettings, RecoveryClient
from feeder.wire import Packet, PacketHeader, PacketKind, Reject, decode_header, decode_packet

RECOVERY_RCVBUF = 16 << 20

DATA, HEARTBEAT = PacketKind.DATA, PacketKind.HEARTBEAT


@dataclass(frozen=True)
class ReceiverConfig:
    destinations: tuple[tuple[str, int], ...]
    iface_addr: str
    rcvbuf: int = 32 << 20
    batch: int = 64
    netns: str | None = None
    books: bool = False  # decode every message and rebuild books (slower)
    destinations_b: tuple[tuple[str, int], ...] = ()  # line B of A/B feeds; () = one line
    iface_b: str | None = None  # line B's receiving interface address (default: iface_addr)
    recovery: tuple[str, int] | None = None  # the feeder's re-request address
    recovery_settings: ClientSettings | None = None
    max_hold_ns: int = 20_000_000  # A/B: longest wait for the other line to fill a hole
    drop_a: DropRule | None = None  # loss injection: the kernel drops these on line A
    drop_b: DropRule | None = None  # ... and on line B


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
        self.paused_s = 0.0
        self.books = ReceiverBooks() if cfg.books else None
        self._selector = selectors.DefaultSelector()
        self._rx: list[BatchReceiver] = []
        self._socks: list[socket.socket] = []
        self.started_ns = time.time_ns()
        self.arbiter = (
            Arbiter(self.tracker, self._deliver, max_hold_ns=cfg.max_hold_ns)
            if cfg.destinations_b
            else None
        )
        self.recovery: RecoveryClient | None = None
        self.inorder = InOrderBooks(self.books) if self.books is not None and cfg.recovery else None
        lines = [(cfg.destinations, cfg.iface_addr, cfg.drop_a)]
        if cfg.destinations_b:
            lines.append((cfg.destinations_b, cfg.iface_b or cfg.iface_addr, cfg.drop_b))
        try:
            for line, (dests, iface, drop) in enumerate(lines):
                for group, port in dict.fromkeys(dests):
                    self._join(line, group, port, iface, drop)
            if cfg.recovery is not None:
                self.recovery = RecoveryClient(
                    self._recovery_socket(), cfg.recovery, cfg.recovery_settings
                )
                self._selector.register(self.recovery.sock, selectors.EVENT_READ, None)
        except BaseException:
            self.close()
            raise
        # The kernel turns RX stamping on lazily; without this the first datagrams of a run
        # would carry no timestamp and be missing from the latency figures.
        await_rx_stamping()

    def _join(self, line: int, group: str, port: int, iface: str, drop: DropRule | None) -> None:
        cfg = self.cfg
        opened = open_receiver(
            group,
            port,
            iface,
            rcvbuf=cfg.rcvbuf,
            force_buffer=True,
            blocking=False,
            netns=cfg.netns,
        )
        self._socks.append(opened.sock)
        self.buffers.append(opened.buffer)
        if drop is not None:
            attach(opened.sock, drop)
        enable_rx_software(opened.sock)
        rx = make_receiver(opened.sock, cfg.batch, 2048, timestamps=True)
        self._selector.register(opened.sock, selectors.EVENT_READ, (rx, line))
        self._rx.append(rx)

    def _recovery_socket(self) -> socket.socket:
        """Unicast UDP on the receiving interface: requests go out, answers come back."""
        cfg = self.cfg
        assert cfg.recovery is not None
        validate.destination(cfg.recovery)
        family, kind = socket.AF_INET, socket.SOCK_DGRAM
        sock = (
            socket.socket(family, kind) if cfg.netns is None else socket_in(cfg.netns, family, kind)
        )
        self._socks.append(sock)
        # Answers arrive as bursts of whole packets: the default buffer (~200 KiB) overflows
        # and the recovered data would be lost again.
        request_buffer(sock, "rcv", RECOVERY_RCVBUF, force=True)
        try:
            sock.bind((cfg.iface_addr, 0))
        except OSError as e:
            raise ValueError(f"recovery socket on {cfg.iface_addr}: {e.strerror or e}") from e
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        self._selector.close()
        for s in self._socks:
            s.close()
        self._socks.clear()

    def poll(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for datagrams and process all that are queued."""
        got = 0
        if self.settling:
            timeout_s = min(timeout_s, 0.002)  # holds to expire, requests to retry
        for key, _ in self._selector.select(timeout_s):
            if key.data is None:
                assert self.recovery is not None
                got += self.recovery.receive(self.tracker, self._recovered)
                continue
            rx, line = key.data
            while True:
                n = rx.recv(wait=False)
                if n == 0:
                    break
                got += n
                self._process(rx, n, line)
        if self.arbiter is not None:
            self.arbiter.expire()
        if self.recovery is not None:
            self.recovery.tick(self.tracker)
            if self.inorder is not None:
                self.inorder.settle(self._may_recover)
        return got

    @property
    def settling(self) -> bool:
        """Whether held packets or recoverable holes are waiting for time to pass."""
        if self.arbiter is not None and self.arbiter.holding:
            return True
        return self.recovery is not None and self.recovery.busy(self.tracker)

    def _may_recover(self, channel: int, start: int, end: int) -> bool:
        st = self.tracker.channels.get(channel)
        assert self.recovery is not None
        return st is not None and self.recovery.may_recover(st, start, end)

    def _process(self, rx: BatchReceiver, n: int, line: int) -> None:
        hist, rejects, arbiter = self.latency_ns, self.rejects, self.arbiter
        # Bound methods hoisted out of the per-datagram loop (each lookup costs per packet).
        view_of, truncated, stamp = rx.view, rx.truncated, rx.timestamp_ns
        record, deliver = hist.record, self._deliver
        offer = arbiter.offer if arbiter is not None else None
        nbytes = 0
        for i in range(n):
            view = view_of(i)
            nbytes += len(view)
            if truncated(i):
                self.truncated += 1
                rejects["truncated"] += 1
                continue
            h = decode_header(view)
            if type(h) is Reject:
                rejects[h.code] += 1
                continue
            assert not isinstance(h, Reject)
            ts = stamp(i)
            if ts is not None:
                record(ts - h.send_time_ns)
            if offer is None:
                deliver(h, view)
            else:
                offer(line, h, view)
        self.datagrams += n
        self.bytes += nbytes

    def _deliver(self, h: PacketHeader, data: bytes | bytearray | memoryview) -> int:
        """Track one packet and apply it to the books; returns how many messages were new."""
        if h.kind is not DATA:
            self.tracker.on_heartbeat(
                h.session_id, h.channel_id, h.first_seq, end=h.kind is not HEARTBEAT
            )
            return 0
        fresh = self.tracker.on_data(h.session_id, h.channel_id, h.first_seq, h.msg_count)
        if self.books is not None and fresh == h.msg_count:
            packet = decode_packet(data)
            if type(packet) is Packet:
                if self.inorder is not None:
                    self.inorder.offer(h.session_id, h.channel_id, h.first_seq, h.next_seq, packet)
                else:
                    self.books.apply(packet)
        return fresh

    def _recovered(self, data: memoryview) -> int:
        """A packet the feeder re-sent: tracked like any other if it fills what is missing."""
        h = decode_header(data)
        if type(h) is Reject:
            self.rejects[f"recovery_{h.code}"] += 1
            return 0
        assert not isinstance(h, Reject)
        st = self.tracker.channels.get(h.channel_id)
        if (
            h.kind is not DATA
            or st is None
            or st.session != h.session_id
            or not novel(st, h.first_seq, h.next_seq)
        ):
            return 0
        return self._deliver(h, data)

    def finish(self) -> None:
        """End of run: release A/B holds (their holes are gaps) and apply every packet still
        waiting for a hole to be recovered."""
        if self.arbiter is not None:
            self.arbiter.flush()
        if self.inorder is not None:
            self.inorder.flush()

    def run(
        self,
        *,
        count: int | None = None,
        duration_s: float | None = None,
        until_end: bool = False,
        tick_s: float = 1.0,
        on_tick: Callable[[Receiver], None] | None = None,
        idle_exit_s: float | None = None,
        pause_after: int | None = None,
        pause_s: float = 0.0,
        min_sessions: int = 1,
    ) -> None:
        """Receive until ``count`` messages, ``duration_s`` elapsed, every channel ended
        (``until_end``), or ``idle_exit_s`` without traffic after the first packet.
        ``pause_after``/``pause_s``: stop reading once for ``pause_s`` after that many
        datagrams (fault injection: a receiver slower than the feed)."""
        start = time.monotonic()
        next_tick = start + tick_s
        last_rx = start
        while True:
            if pause_after is not None and self.datagrams >= pause_after:
                self.paused_s += pause_s
                time.sleep(pause_s)  # the kernel queues, then drops: what a slow consumer does
                pause_after = None
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
                and all(
                    c.ended and c.sessions >= min_sessions for c in self.tracker.channels.values()
                )
                and not self.settling
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
            "paused_s": self.paused_s,
            "channels": chans,
            **({"books": self.books.top(10)} if self.books is not None else {}),
            **({"ab": self.arbiter.summary()} if self.arbiter is not None else {}),
            **({"recovery": self._recovery_summary()} if self.recovery is not None else {}),
        }

    def _recovery_summary(self) -> dict[str, Any]:
        assert self.recovery is not None
        out = self.recovery.summary(self.tracker)
        if self.inorder is not None:
            out["books_in_order"] = {
                "waited_packets": self.inorder.waited_packets,
                "skipped_holes": self.inorder.skipped_holes,
                "late_packets": self.inorder.late_packets,
            }
        return out


def parse_destinations(specs: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``239.1.1.1:5001`` strings into (group, port) pairs, with clear errors."""
    out = []
    for spec in specs:
        group, sep, port = spec.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"{spec!r}: expected GROUP:PORT, e.g. 239.100.0.1:31001")
        out.append((group, int(port)))
    return tuple(out)
