"""``XdpTransport``: the feeder's send path over an AF_XDP socket (kernel bypass on TX).

``offer`` copies a datagram into a free UMEM frame, behind room for its Ethernet/IPv4/UDP
headers, and stages it; it returns False when no frame is free or a batch is staged
(back-pressure: the caller keeps the datagram and flushes). ``flush`` writes the staged frames'
headers (``xdp.frames``) and TX descriptors (numpy slices for a batch, one at a time for a
few), publishes them, kicks the kernel as often as it needs, and reaps the completion ring,
whose addresses become free frames again.

What counts as sent: in copy mode the kernel copies a frame into an skb when it consumes the
descriptor, so consumed means sent (the completion comes when that skb is freed, which can be
later). In zero-copy mode the NIC reads the frame until it completes, so only completed means
sent. ``take_unsent`` returns the rest, in order: a frame the device dropped (EBUSY), published
descriptors the kernel has not consumed (in zero-copy mode: not completed), then staged ones.
The UMEM holds as many frames as the TX ring has slots, so every descriptor that still owns a
frame is still in the ring, and the frames themselves say where they were going. Resending
what the kernel may in fact have sent (zero-copy) can duplicate, never lose, a datagram.

Not supported: fragmentation (a datagram must fit the MTU; ``max_datagram`` checks it at open),
unicast destinations (no ARP), loopback and non-Ethernet interfaces. Frames bypass the sending
host's netfilter and qdiscs, and taps (tcpdump) on the sending interface do not see them.

Failures while sending become ``TransportError`` (the send path then falls back to the kernel
UDP path with what this transport never sent): the interface went away (ENXIO/ENODEV), went
down (ENETDOWN), the device dropped a frame (EBUSY), or the rings stopped making sense.
Failures at ``open`` are ``TransportUnavailable`` with the precise reason.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pyroute2 import IPRoute

from feeder.net.netns import entered, socket_in
from feeder.publish.transport import TransportError, TransportUnavailable
from xdp.frames import HEADER_LEN, FrameMemory, UdpFrames, format_mac, parse_mac
from xdp.umem import HugePagePolicy, Umem, UmemError
from xdp.xsk import (
    MODES,
    XDP_TX_METADATA,
    Mode,
    XskError,
    XskSocket,
    checksum_request,
    errno_name,
)

M32 = 0xFFFFFFFF
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
ARPHRD_ETHER = 1
#: Where the UDP header starts in a frame, and its checksum field within the header.
UDP_OFFSET = 34
UDP_CHECKSUM_OFFSET = 6
#: A kick loop stops after this many kicks without progress (the kernel is busy: try later).
_IDLE_KICKS = 2
#: From this many entries on, rings are read and written with numpy slices (one call each,
#: with a fixed cost of a few µs) instead of one entry at a time.
VECTOR_FROM = 32


@dataclass(frozen=True)
class Interface:
    """What the frames and the bind need to know about the sending interface."""

    name: str
    index: int
    mac: bytes
    mtu: int
    address: str
    flags: int
    link_type: int  # ARPHRD_*: 1 is Ethernet


def _where(netns: str | None) -> str:
    return f"network namespace {netns!r}" if netns else "this network namespace"


def find_interface(name_or_addr: str, netns: str | None = None) -> Interface:
    """The interface named ``name_or_addr``, or holding that IPv4 address, in ``netns``.

    ``ValueError`` saying what exists when nothing matches. The netlink query runs in a helper
    thread: pyroute2 drives its own asyncio loop, which cannot run inside a caller's running
    event loop (``feeder run`` opens its transport from one).
    """
    outcome: list[Interface | BaseException] = []

    def query() -> None:
        try:
            outcome.append(_query_interface(name_or_addr, netns))
        except BaseException as e:  # handed to the caller's thread
            outcome.append(e)

    worker = threading.Thread(target=query, name="xdp-interface")
    worker.start()
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _query_interface(name_or_addr: str, netns: str | None) -> Interface:
    by_addr = True
    try:
        ipaddress.IPv4Address(name_or_addr)
    except ValueError:
        by_addr = False
    with entered(netns) if netns else contextlib.nullcontext(), IPRoute() as ipr:
        addrs = [(m["index"], m.get("IFA_ADDRESS")) for m in ipr.get_addr(family=socket.AF_INET)]
        links = {link["index"]: link for link in ipr.get_links()}
    names = {i: link.get("IFLA_IFNAME") for i, link in links.items()}
    if by_addr:
        index = next((i for i, a in addrs if a == name_or_addr), None)
        if index is None:
            have = ", ".join(f"{a} ({names.get(i)})" for i, a in addrs) or "none"
            raise ValueError(
                f"no interface in {_where(netns)} has address {name_or_addr} (addresses: {have})"
            )
        address = name_or_addr
    else:
        index = next((i for i, n in names.items() if n == name_or_addr), None)
        if index is None:
            have = ", ".join(str(n) for n in names.values()) or "none"
            raise ValueError(f"no interface {name_or_addr!r} in {_where(netns)} (have: {have})")
        found = next((a for i, a in addrs if i == index), None)
        if found is None:
            raise ValueError(f"{name_or_addr} has no IPv4 address to send from")
        address = found
    link = links[index]
    return Interface(
        name=str(link.get("IFLA_IFNAME")),
        index=index,
        mac=parse_mac(link.get("IFLA_ADDRESS") or "00:00:00:00:00:00"),
        mtu=int(link.get("IFLA_MTU") or 1500),
        address=address,
        flags=int(link["flags"]),
        link_type=int(link["ifi_type"]),
    )


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch {batch!r} must be a positive integer")


def _sending_interface(name_or_addr: str, netns: str | None) -> Interface:
    """The interface to send from, or ``TransportUnavailable`` saying why it cannot be."""
    try:
        iface = find_interface(name_or_addr, netns)
    except (ValueError, OSError) as e:
        raise TransportUnavailable(f"AF_XDP: {e}") from e
    if iface.flags & IFF_LOOPBACK:
        raise TransportUnavailable(
            f"AF_XDP: {iface.name} is a loopback interface (the kernel UDP path serves it)"
        )
    if iface.link_type != ARPHRD_ETHER:
        raise TransportUnavailable(
            f"AF_XDP: {iface.name} is not an Ethernet interface (link type {iface.link_type}); "
            "the frames built here are Ethernet frames"
        )
    if not iface.flags & IFF_UP:
        raise TransportUnavailable(f"AF_XDP: {iface.name} is down")
    return iface


def _reserve_port(address: str, port: int, netns: str | None) -> socket.socket:
    """A UDP socket bound to ``address:port`` so no other socket on the host gets that port
    (replies and ICMP errors for our frames then belong to nobody else)."""
    try:
        sock = (
            socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM)
            if netns
            else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        )
    except OSError as e:
        raise TransportUnavailable(f"AF_XDP: cannot open a UDP socket: {e.strerror or e}") from e
    try:
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        raise TransportUnavailable(
            f"AF_XDP: cannot reserve UDP source port {port} on {address}: {e.strerror or e}"
        ) from e
    return sock


class XdpTransport:
    """Datagrams to multicast groups as raw frames through one AF_XDP socket."""

    def __init__(
        self,
        xsk: XskSocket,
        frames: UdpFrames,
        *,
        port_holder: socket.socket | None = None,
        notes: dict[str, str] | None = None,
        batch: int = 256,
        tx_times: bool = False,
    ) -> None:
        tx = xsk.tx
        if tx is None:
            raise ValueError("XdpTransport needs a socket with a TX ring")
        _check_batch(batch)
        umem = xsk.umem
        if umem.frame_count > tx.size:
            # Every frame that is not free must still have its descriptor in the TX ring.
            raise ValueError(f"{umem.frame_count} UMEM frames exceed the {tx.size}-slot TX ring")
        self.xsk = xsk
        self.umem = umem
        self.frames = frames
        self.name = f"xdp-{xsk.mode}"
        self._zero_copy = xsk.mode == "zerocopy"
        self._port_holder = port_holder
        self._notes = notes or {}
        self._tx = tx
        self._cq = xsk.completion
        self._memory = FrameMemory(umem.view, umem.frame_size)
        self._view = umem.view
        self._max_payload = frames.max_payload
        self._destinations = len(frames.destinations)
        self._batch = batch
        # A frame starts after the TX metadata, when there is any, in its slot.
        self._headroom = xsk.tx_metadata_len
        if frames.headroom != self._headroom:
            raise ValueError(
                f"frames start {frames.headroom} bytes into their slot, the socket's TX "
                f"metadata takes {self._headroom}"
            )
        self._options = XDP_TX_METADATA if self._headroom else 0
        self._frames = [a + self._headroom for a in umem.frame_addresses()]
        if self._headroom:
            request = checksum_request(UDP_OFFSET, UDP_CHECKSUM_OFFSET)
            for slot_start in umem.frame_addresses():
                umem.view[slot_start : slot_start + len(request)] = request
        # FIFO: a completed frame is reused only after every other free frame, so a sent
        # packet's bytes stay readable for drain_tx for ~frame_count packets.
        self._free: deque[int] = deque(self._frames)
        # TX times: (frame address, length, frame generation, ns right after the kick). AF_XDP
        # has no kernel TX timestamp; in copy mode the kick transmits before it returns.
        self._tx_log: deque[tuple[int, int, int, int]] | None = (
            deque(maxlen=umem.frame_count) if tx_times else None
        )
        self._generation = [0] * umem.frame_count  # bumped when a frame is filled again
        self._staged_addr: list[int] = []
        self._staged_len: list[int] = []
        self._staged_dest: list[int] = []
        self._shift = umem.frame_size.bit_length() - 1
        self._prod = tx.producer()  # our TX producer index (what the kernel has been given)
        self._cons = tx.consumer()  # the kernel's TX consumer index, as last read
        self._completed = self._cq.consumer()  # completions reaped (as a TX index)
        self._frame_mask = umem.frame_size - 1
        self._dropped: list[tuple[bytes, int]] = []
        self._closed = False
        self.completions = 0

    @classmethod
    def open(
        cls,
        ifname_or_addr: str,
        destinations: Sequence[tuple[str, int]],
        *,
        mode: Literal["auto", "zerocopy", "copy"] = "auto",
        netns: str | None = None,
        queue: int = 0,
        ttl: int = 1,
        src_port: int = 0,
        frames: int = 2048,
        frame_size: int = 2048,
        huge_pages: HugePagePolicy = "auto",
        need_wakeup: bool = True,
        batch: int = 256,
        max_datagram: int | None = None,
        tx_times: bool = False,
    ) -> XdpTransport:
        """Open the AF_XDP path on the interface named (or addressed) ``ifname_or_addr``.

        ``mode``: "zerocopy", "copy", or "auto" (zero-copy, then copy). ``src_port``: the UDP
        source port (0: an ephemeral one, reserved by a bound UDP socket). ``frames``: UMEM
        frames, also the TX and completion ring size (a power of two). Raises
        ``TransportUnavailable`` saying exactly why the path cannot be used here.
        ``max_datagram``: the largest datagram the caller will offer; refused up front when
        the interface's MTU cannot carry it unfragmented. ``batch``: datagrams staged before
        ``offer`` asks for a flush. ``tx_times``: note when each frame was handed to the kernel
        (for ``drain_tx``).
        """
        _check_batch(batch)
        if mode != "auto" and mode not in MODES:
            raise ValueError(f"AF_XDP mode {mode!r} must be auto, zerocopy or copy")
        iface = _sending_interface(ifname_or_addr, netns)
        with contextlib.ExitStack() as undo:  # on failure, undo what was set up, in reverse
            holder = _reserve_port(iface.address, src_port, netns)
            undo.callback(holder.close)
            try:
                umem = Umem.allocate(frames, frame_size, huge_pages=huge_pages)
            except (ValueError, UmemError) as e:
                raise TransportUnavailable(f"AF_XDP on {iface.name}: {e}") from e
            undo.callback(umem.close)
            xsk, notes = _bind_first(umem, iface.name, mode, queue, need_wakeup, netns)
            undo.callback(xsk.close)
            try:
                udp_frames = UdpFrames(
                    iface.mac,
                    iface.address,
                    holder.getsockname()[1],
                    destinations,
                    ttl=ttl,
                    mtu=iface.mtu,
                    frame_size=frame_size,
                    # With TX metadata the kernel (copy mode) finishes the UDP checksum.
                    headroom=xsk.tx_metadata_len,
                    udp_checksum="partial" if xsk.tx_metadata_len else "full",
                )
            except ValueError as e:
                raise TransportUnavailable(f"AF_XDP on {iface.name}: {e}") from e
            if max_datagram is not None and max_datagram > udp_frames.max_payload:
                # The kernel path would fragment such datagrams; raw frames cannot.
                raise TransportUnavailable(
                    f"AF_XDP on {iface.name}: datagrams of up to {max_datagram} bytes do not "
                    f"fit: {udp_frames.limit_reason} allows {udp_frames.max_payload} (raise "
                    "the MTU or send smaller packets)"
                )
            transport = cls(
                xsk, udp_frames, port_holder=holder, notes=notes, batch=batch, tx_times=tx_times
            )
            undo.pop_all()
        return transport

    # --- hot path ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Datagrams not known to be sent yet (staged, or in the ring; see the module doc)."""
        if self._closed:
            return 0
        done = self._completed if self._zero_copy else self._tx.consumer()
        return len(self._staged_addr) + ((self._prod - done) & M32)

    def offer(self, packet: bytes | memoryview, dest: int) -> bool:
        """Copy ``packet`` for destination ``dest`` into a free frame; False when no frame is
        free or a batch is staged (flush first). ``FrameTooLarge`` (a ``ValueError``) when it
        cannot fit in one frame; ``IndexError`` for an unknown destination."""
        free = self._free
        staged = self._staged_addr
        if not free or len(staged) >= self._batch:
            return False
        n = len(packet)
        if n > self._max_payload:
            raise self.frames.too_large(n)
        if not 0 <= dest < self._destinations:
            raise IndexError(f"destination {dest} not in 0..{self._destinations - 1}")
        addr = free.popleft()
        self._generation[addr >> self._shift] += 1
        # Headers are written for the whole batch at flush (xdp.frames.write_headers).
        start = addr + HEADER_LEN
        self._view[start : start + n] = packet
        if n & 1:
            self._view[start + n] = 0
        staged.append(addr)
        self._staged_len.append(n)
        self._staged_dest.append(dest)
        return True

    def flush(self) -> int:
        """Publish staged frames, kick, reap completions; returns frames sent by this call."""
        if self._closed:
            raise TransportError(f"{self.name}: closed")
        tx = self._tx
        staged = len(self._staged_addr)
        sent_addr: list[int] = []
        sent_len: list[int] = []
        if staged:
            if staged < VECTOR_FROM:
                self._write_few()
            else:
                self._write_many()
            self._prod = (self._prod + staged) & M32
            tx.set_producer(self._prod)
            # The batch's lists are handed over whole (fresh ones staged into next): their
            # frames' TX times are noted after the kick below, without copying them first.
            sent_addr, sent_len = self._staged_addr, self._staged_len
            self._staged_addr, self._staged_len = [], []
            self._staged_dest.clear()
        consumed, completed = self._cons, self.completions
        self._send()
        log = self._tx_log
        if sent_addr and log is not None:
            now, gen, shift = time.time_ns(), self._generation, self._shift
            log.extend(
                (a, n, gen[a >> shift], now) for a, n in zip(sent_addr, sent_len, strict=True)
            )
        self._reap()
        if self._zero_copy:
            return self.completions - completed
        return (self._cons - consumed) & M32

    def _write_few(self) -> None:
        """Headers and TX descriptors of the staged frames, one at a time."""
        write, memory, shift = self.frames.write_header, self._memory, self._shift
        desc, mask, prod = self._tx.qwords, self._tx.mask, self._prod
        options = self._options << 32
        for addr, n, dest in zip(
            self._staged_addr, self._staged_len, self._staged_dest, strict=True
        ):
            write(memory, addr >> shift, n, dest)
            i = (prod & mask) << 1
            desc[i] = addr
            desc[i + 1] = n + HEADER_LEN | options  # length, options in the high half
            prod += 1

    def _write_many(self) -> None:
        """Headers and TX descriptors of the staged frames, each step one numpy call."""
        tx = self._tx
        addrs = np.array(self._staged_addr, np.uint64)
        lengths = np.array(self._staged_len, np.uint64)
        slots = (addrs >> np.uint64(self._shift)).astype(np.intp)
        dests = np.array(self._staged_dest, np.intp)
        self.frames.write_headers(self._memory, slots, lengths, dests)
        lengths += HEADER_LEN
        done = 0
        for first, stop in tx.spans(self._prod, len(addrs)):
            ring = tx.entries[first:stop]
            ring["addr"] = addrs[done : done + stop - first]
            ring["len"] = lengths[done : done + stop - first]
            ring["options"] = self._options
            done += stop - first

    def _send(self) -> None:
        """Kick until the kernel has consumed every published descriptor or stops progressing."""
        tx = self._tx
        cons = tx.consumer()
        idle = 0
        while cons != self._prod and idle < _IDLE_KICKS:
            if self.xsk.need_wakeup and not tx.needs_wakeup():
                break  # zero-copy: the driver is already working through the ring
            try:
                took_all = self.xsk.kick()
            except OSError as e:
                self._cons = tx.consumer()
                raise self._failure(e) from e
            # EAGAIN may mean a full completion ring: make room before kicking again.
            reaped = 0 if took_all else self._reap()
            now = tx.consumer()
            idle = 0 if now != cons or reaped else idle + 1
            cons = now
        if (self._prod - cons) & M32 > tx.size:
            raise TransportError(
                f"{self.name}: ring error: TX consumer {cons} is past producer {self._prod}"
            )
        self._cons = cons

    def _reap(self) -> int:
        """Move completed frames back to the free list; returns how many."""
        cq = self._cq
        cons = self._completed
        n = (cq.producer() - cons) & M32
        if not n:
            return 0
        if n > cq.size:
            raise TransportError(
                f"{self.name}: ring error: completion ring claims {n} entries, holds {cq.size}"
            )
        if n < VECTOR_FROM:
            q, mask, size, free = cq.qwords, cq.mask, self.umem.size, self._free
            for i in range(cons, cons + n):
                addr = q[i & mask]
                if addr >= size or addr & self._frame_mask != self._headroom:
                    raise self._bad_completion()
                free.append(addr)
        else:
            for first, stop in cq.spans(cons, n):
                addrs = cq.entries[first:stop]
                if (
                    int(addrs.max()) >= self.umem.size
                    or ((addrs & self._frame_mask) != self._headroom).any()
                ):
                    raise self._bad_completion()
                self._free.extend(addrs.tolist())
        self._completed = (cons + n) & M32
        cq.set_consumer(self._completed)
        self.completions += n
        return n

    # --- failure ----------------------------------------------------------------------------

    def _bad_completion(self) -> TransportError:
        return TransportError(
            f"{self.name}: ring error: the completion ring returned an address that is no "
            "frame of this UMEM"
        )

    def _failure(self, e: OSError) -> TransportError:
        code = e.errno or 0
        ifname = self.xsk.ifname
        if code in (errno.ENXIO, errno.ENODEV):
            why = f"{ifname} is gone (the AF_XDP socket lost its device)"
        elif code == errno.ENETDOWN:
            why = f"{ifname} is down"
        elif code == errno.EBUSY:
            # The device dropped the frame it was given last: keep it for the next path.
            self._keep_dropped()
            why = f"{ifname} dropped a frame (link down or queue stopped)"
        else:
            why = f"kick failed: {e.strerror or e}"
        return TransportError(f"{self.name}: {why} [{errno_name(code)}]")

    def _keep_dropped(self) -> None:
        tx = self._tx
        slot = (tx.consumer() - 1) & tx.mask
        entry = tx.entries[slot]
        self._dropped.append(self._datagram(int(entry["addr"]), int(entry["len"])))

    def _datagram(self, addr: int, length: int) -> tuple[bytes, int]:
        frame = self.umem.view[addr : addr + length]
        return self.frames.payload_of(frame), self.frames.destination_of(frame)

    def drain_tx(self, on_packet: Callable[[memoryview, int], None], limit: int = 4096) -> int:
        """Hand up to ``limit`` sent packets (our UDP payload) with the time they were handed to
        the kernel to ``on_packet``, oldest first. A frame filled again since is skipped: its
        bytes are another packet now."""
        log = self._tx_log
        if not log:
            return 0
        gen, shift, view = self._generation, self._shift, self._view
        n = 0
        while log and n < limit:
            addr, length, g, ns = log.popleft()
            if gen[addr >> shift] != g:
                continue
            start = addr + HEADER_LEN
            on_packet(view[start : start + length], ns)
            n += 1
        return n

    def take_unsent(self) -> list[tuple[bytes, int]]:
        """What was given to this transport and is not known to be sent, oldest first.

        Afterwards the transport holds nothing (call ``close`` next).
        """
        if self._closed:
            return []
        tx = self._tx
        with contextlib.suppress(TransportError):  # broken ring: count nothing more as done
            self._reap()
        start = self._completed if self._zero_copy else tx.consumer()
        unsent = list(self._dropped)
        count = (self._prod - start) & M32
        if count <= tx.size:
            for first, stop in tx.spans(start, count):
                ring = tx.entries[first:stop]
                for addr, length in zip(ring["addr"].tolist(), ring["len"].tolist(), strict=True):
                    unsent.append(self._datagram(addr, length))
        else:
            unsent += self._out_in_ring_order()
        # Staged frames have no headers yet: their payload and destination are known here.
        for addr, n, dest in zip(
            self._staged_addr, self._staged_len, self._staged_dest, strict=True
        ):
            unsent.append((bytes(self._view[addr + HEADER_LEN : addr + HEADER_LEN + n]), dest))
        self._dropped.clear()
        self._staged_addr.clear()
        self._staged_len.clear()
        self._staged_dest.clear()
        # Nothing in the ring is ours to resend any more.
        self._prod = start
        return unsent

    def _out_in_ring_order(self) -> list[tuple[bytes, int]]:
        """Every published frame not back in the free list, oldest first, for when the ring's
        indexes make no sense: the latest descriptor naming each such frame, in ring order
        (the ring has a slot for every frame, so none of them was overwritten)."""
        tx = self._tx
        out = set(self._frames) - set(self._free) - set(self._staged_addr)
        slots = np.arange(self._prod - tx.size, self._prod) & tx.mask
        latest: list[tuple[int, int]] = []
        ring = tx.entries[slots]
        for addr, length in zip(
            reversed(ring["addr"].tolist()), reversed(ring["len"].tolist()), strict=True
        ):
            if addr in out:
                out.discard(addr)
                latest.append((addr, length))
        return [self._datagram(addr, length) for addr, length in reversed(latest)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._free = deque()  # offer() refuses from now on; flush() raises
        self.xsk.close()
        self._memory.release()  # its numpy views pin the UMEM mapping
        del self._view
        self.umem.close()
        if self._port_holder is not None:
            self._port_holder.close()

    def info(self) -> dict[str, object]:
        d: dict[str, object] = {
            "transport": self.name,
            "interface": self.xsk.ifname,
            "driver": self.xsk.driver,
            "queue": self.xsk.queue,
            "need_wakeup": self.xsk.need_wakeup,
            "tx_budget": self.xsk.tx_budget,
            "umem": self.umem.describe(),
            "source": f"{format_mac(self.frames.src_mac)} {self.frames.src_ip}:"
            f"{self.frames.src_port}",
            "max_payload": self.frames.max_payload,
            "udp_checksum": "finished by the kernel (TX metadata)"
            if self._headroom
            else "computed here",
            "completions": self.completions,
        }
        d.update(self._notes)
        if not self._closed:
            try:
                d["statistics"] = vars(self.xsk.statistics())
            except OSError as e:
                d["statistics"] = f"unreadable: {e.strerror or e}"
        return d


def _bind_first(
    umem: Umem,
    ifname: str,
    mode: Literal["auto", "zerocopy", "copy"],
    queue: int,
    need_wakeup: bool,
    netns: str | None,
) -> tuple[XskSocket, dict[str, str]]:
    """The first mode that binds (zero-copy before copy for "auto"), and why others did not."""
    tried: list[str] = []
    notes: dict[str, str] = {}
    modes: tuple[Mode, ...] = MODES if mode == "auto" else (mode,)
    for m in modes:
        try:
            xsk = XskSocket.open(
                umem,
                ifname,
                queue=queue,
                mode=m,
                need_wakeup=need_wakeup,
                tx_size=umem.frame_count,
                fill_size=1,
                completion_size=umem.frame_count,
                netns=netns,
                # Copy mode: the kernel finishes checksums itself; zero-copy would need the
                # driver to, which not every driver does (it would send them unfinished).
                tx_metadata=m == "copy",
            )
        except XskError as e:
            tried.append(f"{m}: {e.reason}")
            notes[f"{m}_unavailable"] = e.reason
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL) or m == modes[-1]:
                raise TransportUnavailable(
                    f"AF_XDP on {ifname} queue {queue}: {'; '.join(tried)}"
                ) from e
            continue
        except ValueError as e:
            raise TransportUnavailable(f"AF_XDP on {ifname}: {e}") from e
        return xsk, notes
    raise AssertionError("unreachable: the last mode raises")
