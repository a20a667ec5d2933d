"""AF_XDP sockets from pure Python: the socket, its rings, bind, kick, statistics.

An AF_XDP socket (XSK) exchanges frames with one queue of one interface through four
single-producer/single-consumer rings the kernel maps into this process: TX (descriptors we
produce), completion (frame addresses the kernel is done sending), fill (free frames we give
the kernel for RX) and RX (descriptors of received frames). The fill and completion rings
belong to the UMEM and are required even for TX only. Each ring is an array of entries plus
free-running 32-bit producer/consumer indexes at the offsets the kernel reports
(``XDP_MMAP_OFFSETS``); entries are seen as numpy arrays (slices of many) and as 64-bit
words (a few), indexes through a ``memoryview`` of 32-bit words (cheap scalar access).

Ordering: a producer writes entries, then the index; a consumer reads the index, then entries.
CPython performs these as separate C calls in program order and x86-64 keeps stores in order
(TSO), so no barrier is needed there; other architectures would need one, so ``open`` refuses
them (``XskError`` saying so).

Copy mode works on any driver (the kernel builds an skb per frame, in ``sendto``'s context);
zero-copy needs driver support (veth: EOPNOTSUPP). With ``need_wakeup`` the kernel says through
the ring flags when a ``sendto`` kick is needed; copy mode always needs one, and one kick sends
at most 32 frames unless ``XDP_MAX_TX_SKB_BUDGET`` raises that (recent kernels; ``open`` raises
it to the TX ring size when it can). A socket closed a moment ago frees its queue only after a
deferred release in the kernel, which ``open`` waits out.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from feeder.net.libc import function
from feeder.net.netns import entered
from xdp.umem import Umem

AF_XDP = 44
SOL_XDP = 283
# Socket options (linux/if_xdp.h).
XDP_MMAP_OFFSETS = 1
XDP_RX_RING = 2
XDP_TX_RING = 3
XDP_UMEM_REG = 4
XDP_UMEM_FILL_RING = 5
XDP_UMEM_COMPLETION_RING = 6
XDP_STATISTICS = 7
XDP_OPTIONS = 8
XDP_MAX_TX_SKB_BUDGET = 9
# sockaddr_xdp flags.
XDP_SHARED_UMEM = 1 << 0
XDP_COPY = 1 << 1
XDP_ZEROCOPY = 1 << 2
XDP_USE_NEED_WAKEUP = 1 << 3
XDP_OPTIONS_ZEROCOPY = 1 << 0
XDP_RING_NEED_WAKEUP = 1 << 0
# TX metadata (kernel >= 6.11): a struct xsk_tx_metadata in front of each frame asks the
# kernel (copy mode) or the driver (zero-copy, where supported) to fill in a checksum.
XDP_UMEM_TX_METADATA_LEN = 1 << 2  # xdp_umem_reg.flags: tx_metadata_len is meant
XDP_TX_METADATA = 1 << 1  # xdp_desc.options: this frame carries metadata
XDP_TXMD_FLAGS_CHECKSUM = 1 << 1  # xsk_tx_metadata.flags: request checksum offload
#: sizeof(struct xsk_tx_metadata) since launch times were added (24; it was 16 before).
TX_METADATA_LEN = 24
_TX_METADATA = struct.Struct("=QHH4xQ")  # flags, csum_start, csum_offset, launch_time
# mmap page offsets selecting the ring.
XDP_PGOFF_RX_RING = 0
XDP_PGOFF_TX_RING = 0x80000000
XDP_UMEM_PGOFF_FILL_RING = 0x100000000
XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000
#: Frames one kick sends unless XDP_MAX_TX_SKB_BUDGET raises it (kernel TX_BATCH_SIZE).
DEFAULT_TX_BUDGET = 32
#: How long bind waits out EBUSY from a socket that was just closed on the same queue.
BUSY_WAIT_S = 0.5
#: Largest ring accepted here (the kernel bounds rings by memory only).
MAX_RING = 1 << 16

#: struct xdp_desc.
DESC = np.dtype([("addr", "<u8"), ("len", "<u4"), ("options", "<u4")])
#: Fill/completion ring entries: frame addresses.
ADDR = np.dtype("<u8")

Mode = Literal["zerocopy", "copy"]
MODES: tuple[Mode, ...] = ("zerocopy", "copy")
_SUPPORTED_MACHINES = ("x86_64", "amd64")

_SOCKADDR_XDP = struct.Struct("=HHIII")
_OFFSETS = struct.Struct("=16Q")
_STATISTICS = struct.Struct("=6Q")
_bind = function("bind", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)


def errno_name(code: int) -> str:
    """``EOPNOTSUPP`` for 95 (Python's table names it ENOTSUP, the same number on Linux)."""
    if code == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(code, str(code))


class XskError(Exception):
    """An AF_XDP socket could not be set up: ``step`` failed with ``errno`` because..."""

    def __init__(self, step: str, code: int, why: str) -> None:
        #: ``EOPNOTSUPP (driver veth has no AF_XDP zero-copy support)``, or just the reason.
        self.reason = f"{errno_name(code)} ({why})" if code else why
        super().__init__(f"{step}: {self.reason}")
        self.step = step
        self.errno = code
        self.why = why


@dataclass(frozen=True)
class RingOffsets:
    producer: int
    consumer: int
    desc: int
    flags: int


@dataclass(frozen=True)
class MmapOffsets:
    """Where producer, consumer, flags and entries sit in each ring's mapping."""

    rx: RingOffsets
    tx: RingOffsets
    fill: RingOffsets
    completion: RingOffsets

    @classmethod
    def parse(cls, raw: bytes) -> MmapOffsets:
        v = _OFFSETS.unpack(raw[: _OFFSETS.size])
        return cls(*(RingOffsets(*v[i : i + 4]) for i in range(0, 16, 4)))


@dataclass(frozen=True)
class XskStatistics:
    """``XDP_STATISTICS``: what the kernel dropped or found wrong on this socket."""

    rx_dropped: int
    rx_invalid_descs: int
    tx_invalid_descs: int
    rx_ring_full: int
    rx_fill_ring_empty_descs: int
    tx_ring_empty_descs: int


class Ring:
    """One mapped ring: its entries and its producer/consumer/flags words.

    The side that produces writes entries then ``set_producer``; the consumer reads
    ``producer()``, the entries, then ``set_consumer``. Indexes run freely modulo 2**32.
    Entries are seen twice: ``entries`` (numpy, for slices of many) and ``qwords`` (64-bit
    words, for a few: entry ``i`` of a descriptor ring is ``qwords[2 * i]`` = address and
    ``qwords[2 * i + 1]`` = length | options << 32; of an address ring, ``qwords[i]``).
    """

    def __init__(
        self, fd: int, pgoff: int, offsets: RingOffsets, size: int, dtype: np.dtype[Any]
    ) -> None:
        self.size = size
        self.mask = size - 1
        length = offsets.desc + size * dtype.itemsize
        self._memory: mmap.mmap | None = mmap.mmap(
            fd,
            length,
            flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=pgoff,
        )
        self._words = memoryview(self._memory).cast("I")
        self._producer = offsets.producer // 4
        self._consumer = offsets.consumer // 4
        self._flags = offsets.flags // 4
        self.entries: np.ndarray = np.frombuffer(
            self._memory, dtype=dtype, count=size, offset=offsets.desc
        )
        self.qwords = memoryview(self._memory)[offsets.desc : length].cast("Q")

    def producer(self) -> int:
        return self._words[self._producer]

    def consumer(self) -> int:
        return self._words[self._consumer]

    def set_producer(self, value: int) -> None:
        self._words[self._producer] = value & 0xFFFFFFFF

    def set_consumer(self, value: int) -> None:
        self._words[self._consumer] = value & 0xFFFFFFFF

    def needs_wakeup(self) -> bool:
        return bool(self._words[self._flags] & XDP_RING_NEED_WAKEUP)

    def spans(self, start: int, count: int) -> Iterator[tuple[int, int]]:
        """``(first, stop)`` entry slices covering ``count`` entries from index ``start``
        (two when they wrap past the end of the array)."""
        first = start & self.mask
        stop = first + count
        if stop <= self.size:
            yield first, stop
        else:
            yield first, self.size
            yield 0, stop - self.size

    def close(self) -> None:
        memory, self._memory = self._memory, None
        if memory is None:
            return
        self._words.release()
        self.qwords.release()
        self.entries = np.empty(0, self.entries.dtype)
        with contextlib.suppress(BufferError):  # a leaked view keeps it until it goes
            memory.close()


def _check_ring_size(size: int, what: str, allow_zero: bool = False) -> None:
    if allow_zero and size == 0:
        return
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not 1 <= size <= MAX_RING
        or size & (size - 1)
    ):
        raise ValueError(f"{what} size {size!r} must be a power of two in 1..{MAX_RING}")


# --- what the bind needs to know about the device ---------------------------------------------

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x3


class _IfReqData(ctypes.Structure):
    _fields_ = [("ifr_name", ctypes.c_char * 16), ("ifr_data", ctypes.c_void_p)]


def interface_driver(ifname: str) -> str | None:
    """The driver behind ``ifname`` (ETHTOOL_GDRVINFO), in this thread's namespace; None if
    the device does not say."""
    info = ctypes.create_string_buffer(196)  # struct ethtool_drvinfo
    struct.pack_into("=I", info, 0, ETHTOOL_GDRVINFO)
    req = _IfReqData(ifname.encode()[:15], ctypes.addressof(info))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, req)
    except OSError:
        return None
    name = info.raw[4:36].split(b"\0", 1)[0].decode(errors="replace")
    return name or None


def _bind_reason(code: int, mode: Mode, ifname: str, queue: int, driver: str | None) -> str:
    drv = f"driver {driver}" if driver else f"the driver of {ifname}"
    if code == errno.EOPNOTSUPP and mode == "zerocopy":
        return f"{drv} has no AF_XDP zero-copy support"
    if code == errno.EOPNOTSUPP:
        return f"{drv} cannot run AF_XDP in copy mode"
    if code == errno.EBUSY:
        return (
            f"queue {queue} of {ifname} already has an AF_XDP socket bound (another feeder?), "
            "or the queue is being reconfigured"
        )
    if code == errno.EINVAL:
        return f"{ifname} has no queue {queue}, or the rings/flags were rejected"
    if code in (errno.ENODEV, errno.ENXIO):
        return f"{ifname} disappeared"
    if code in (errno.EPERM, errno.EACCES):
        return "permission denied (needs CAP_NET_RAW)"
    if code in (errno.ENOMEM, errno.ENOBUFS):
        return "the kernel could not allocate the queue's buffers"
    return os.strerror(code)


def _setup_reason(step: str, code: int, umem: Umem) -> str:
    if code == errno.EAFNOSUPPORT:
        return "the kernel has no AF_XDP sockets (build it with CONFIG_XDP_SOCKETS=y)"
    if code in (errno.EPERM, errno.EACCES):
        return "permission denied (AF_XDP needs CAP_NET_RAW; run as root or grant it)"
    if step == "register UMEM" and code in (errno.ENOBUFS, errno.ENOMEM, errno.EAGAIN):
        return (
            f"pinning the {umem.size >> 10} KiB UMEM exceeds RLIMIT_MEMLOCK (raise it: "
            "`ulimit -l`, LimitMEMLOCK= in the unit, hosttune's [memlock]; or grant CAP_IPC_LOCK)"
        )
    return os.strerror(code)


def checksum_request(csum_start: int, csum_offset: int) -> bytes:
    """The ``struct xsk_tx_metadata`` asking for the checksum whose sum starts ``csum_start``
    bytes into the frame to be stored ``csum_offset`` bytes after that (the field must hold
    the folded pseudo-header sum, as for CHECKSUM_PARTIAL)."""
    return _TX_METADATA.pack(XDP_TXMD_FLAGS_CHECKSUM, csum_start, csum_offset, 0)


def _register_umem(sock: socket.socket, umem: Umem, tx_metadata: bool) -> int:
    """XDP_UMEM_REG; with ``tx_metadata``, room for TX metadata in front of each frame when
    the kernel knows it. Returns the metadata length registered (0 or ``TX_METADATA_LEN``)."""
    if tx_metadata:
        reg = umem.registration(flags=XDP_UMEM_TX_METADATA_LEN, tx_metadata_len=TX_METADATA_LEN)
        try:
            sock.setsockopt(SOL_XDP, XDP_UMEM_REG, reg)
            return TX_METADATA_LEN
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: a kernel without TX metadata
                raise
    sock.setsockopt(SOL_XDP, XDP_UMEM_REG, umem.registration())
    return 0


def _bind_retrying_busy(fd: int, addr: bytes) -> int:
    """bind(); 0 or the errno. A socket closed a moment ago frees its queue asynchronously
    (the kernel defers the release), so EBUSY is retried for up to ``BUSY_WAIT_S``."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while _bind(fd, addr, len(addr)) != 0:
        code = ctypes.get_errno()
        if code != errno.EBUSY or time.monotonic() > deadline:
            return code
        time.sleep(0.005)
    return 0


# --- the socket --------------------------------------------------------------------------------


class XskSocket:
    """An AF_XDP socket bound to ``ifname`` queue ``queue``, with its rings mapped."""

    def __init__(
        self,
        sock: socket.socket,
        umem: Umem,
        ifname: str,
        ifindex: int,
        queue: int,
        mode: Mode,
        need_wakeup: bool,
        rings: dict[str, Ring],
        tx_budget: int,
        driver: str | None,
    ) -> None:
        self._sock = sock
        self.umem = umem
        self.ifname = ifname
        self.ifindex = ifindex
        self.queue = queue
        self.mode = mode
        self.need_wakeup = need_wakeup
        self.tx: Ring | None = rings.get("tx")
        self.rx: Ring | None = rings.get("rx")
        self.fill: Ring = rings["fill"]
        self.completion: Ring = rings["completion"]
        self.tx_budget = tx_budget
        self.driver = driver
        #: Bytes of TX metadata in front of each TX frame (0: none registered).
        self.tx_metadata_len = 0
        self.closed = False

    @classmethod
    def open(
        cls,
        umem: Umem,
        ifname: str,
        *,
        queue: int = 0,
        mode: Mode = "copy",
        need_wakeup: bool = True,
        tx_size: int = 2048,
        rx_size: int = 0,
        fill_size: int = 2048,
        completion_size: int = 2048,
        netns: str | None = None,
        tx_metadata: bool = False,
    ) -> XskSocket:
        """Create, register ``umem``, map the rings and bind; ``XskError`` saying which step
        failed and why. ``tx_size``/``rx_size`` 0 leave that ring out (at least one is needed).
        ``netns``: the named network namespace ``ifname`` lives in. ``tx_metadata``: reserve
        ``TX_METADATA_LEN`` bytes in front of each TX frame for ``checksum_request`` when the
        kernel supports it (``tx_metadata_len`` says whether it did)."""
        if mode not in MODES:
            raise ValueError(f"AF_XDP mode {mode!r} must be one of {', '.join(MODES)}")
        _check_ring_size(tx_size, "TX ring", allow_zero=True)
        _check_ring_size(rx_size, "RX ring", allow_zero=True)
        _check_ring_size(fill_size, "fill ring")
        _check_ring_size(completion_size, "completion ring")
        if not tx_size and not rx_size:
            raise ValueError("an AF_XDP socket needs a TX or an RX ring (both sizes are 0)")
        if isinstance(queue, bool) or not isinstance(queue, int) or queue < 0:
            raise ValueError(f"queue {queue!r} must be a non-negative integer")
        if platform.machine().lower() not in _SUPPORTED_MACHINES:
            raise XskError(
                "check the CPU",
                0,
                f"{platform.machine()}: the ring code relies on x86-64 store ordering",
            )
        with entered(netns) if netns else contextlib.nullcontext():
            try:
                ifindex = socket.if_nametoindex(ifname)
            except OSError as e:
                where = f"network namespace {netns!r}" if netns else "this network namespace"
                why = f"no interface {ifname!r} in {where}"
                raise XskError(f"find interface {ifname}", e.errno or 0, why) from None
            driver = interface_driver(ifname)
            try:
                sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
            except OSError as e:
                code = e.errno or 0
                raise XskError(
                    "open AF_XDP socket", code, _setup_reason("socket", code, umem)
                ) from None
        rings: dict[str, Ring] = {}
        try:
            fd = sock.fileno()
            step = "register UMEM"
            try:
                metadata_len = _register_umem(sock, umem, tx_metadata)
                step = "size the rings"
                sock.setsockopt(SOL_XDP, XDP_UMEM_FILL_RING, fill_size)
                sock.setsockopt(SOL_XDP, XDP_UMEM_COMPLETION_RING, completion_size)
                if tx_size:
                    sock.setsockopt(SOL_XDP, XDP_TX_RING, tx_size)
                if rx_size:
                    sock.setsockopt(SOL_XDP, XDP_RX_RING, rx_size)
                step = "read ring offsets"
                off = MmapOffsets.parse(sock.getsockopt(SOL_XDP, XDP_MMAP_OFFSETS, _OFFSETS.size))
                step = "map the rings"
                rings["fill"] = Ring(fd, XDP_UMEM_PGOFF_FILL_RING, off.fill, fill_size, ADDR)
                rings["completion"] = Ring(
                    fd, XDP_UMEM_PGOFF_COMPLETION_RING, off.completion, completion_size, ADDR
                )
                if tx_size:
                    rings["tx"] = Ring(fd, XDP_PGOFF_TX_RING, off.tx, tx_size, DESC)
                if rx_size:
                    rings["rx"] = Ring(fd, XDP_PGOFF_RX_RING, off.rx, rx_size, DESC)
            except OSError as e:
                code = e.errno or 0
                raise XskError(step, code, _setup_reason(step, code, umem)) from None
            budget = DEFAULT_TX_BUDGET
            if tx_size > DEFAULT_TX_BUDGET:
                # One kick for a whole ring of frames; older kernels lack the option.
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_XDP, XDP_MAX_TX_SKB_BUDGET, tx_size)
                    budget = tx_size
            flags = (XDP_ZEROCOPY if mode == "zerocopy" else XDP_COPY) | (
                XDP_USE_NEED_WAKEUP if need_wakeup else 0
            )
            addr = _SOCKADDR_XDP.pack(AF_XDP, flags, ifindex, queue, 0)
            code = _bind_retrying_busy(fd, addr)
            if code:
                raise XskError(
                    f"bind to {ifname} queue {queue} in {mode} mode",
                    code,
                    _bind_reason(code, mode, ifname, queue, driver),
                )
            opts = struct.unpack("=I", sock.getsockopt(SOL_XDP, XDP_OPTIONS, 4))[0]
            actual: Mode = "zerocopy" if opts & XDP_OPTIONS_ZEROCOPY else "copy"
            if actual != mode:
                why = f"asked for {mode} mode, the kernel chose {actual}"
                raise XskError(f"bind to {ifname} queue {queue}", 0, why)
        except BaseException:
            for ring in rings.values():
                ring.close()
            sock.close()
            raise
        xsk = cls(sock, umem, ifname, ifindex, queue, mode, need_wakeup, rings, budget, driver)
        xsk.tx_metadata_len = metadata_len
        return xsk

    def fileno(self) -> int:
        return self._sock.fileno()

    # --- TX ------------------------------------------------------------------------------------

    def kick(self) -> bool:
        """Ask the kernel to send what the TX ring holds (``sendto`` with MSG_DONTWAIT).

        False when it could not take everything now (EAGAIN: budget used up or completion ring
        full; ENOBUFS: no memory): reap completions and kick again. Other errors raise
        ``OSError`` (ENXIO/ENODEV: the interface went away; ENETDOWN: it is down; EBUSY: the
        device dropped the last frame).
        """
        try:
            self._sock.send(b"", socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            if e.errno == errno.ENOBUFS:
                return False
            raise
        return True

    # --- RX ------------------------------------------------------------------------------------

    def wake_rx(self) -> None:
        """Let the kernel fill the RX ring when it asked for a wakeup (``recvfrom``)."""
        if not self.need_wakeup or self.fill.needs_wakeup():
            with contextlib.suppress(BlockingIOError, InterruptedError):
                self._sock.recv(0, socket.MSG_DONTWAIT)

    def refill(self, addresses: Sequence[int]) -> int:
        """Give free frames to the kernel for RX; returns how many fit in the fill ring."""
        fill = self.fill
        prod = fill.producer()
        room = fill.size - ((prod - fill.consumer()) & 0xFFFFFFFF)
        n = min(room, len(addresses))
        done = 0
        for first, stop in fill.spans(prod, n):
            fill.entries[first:stop] = addresses[done : done + stop - first]
            done += stop - first
        fill.set_producer(prod + n)
        return n

    def receive(self, limit: int = 64) -> list[tuple[int, int]]:
        """``(address, length)`` of up to ``limit`` received frames; their entries are released
        (the frames stay ours until ``refill`` hands them back)."""
        rx = self.rx
        if rx is None:
            raise ValueError("this socket was opened without an RX ring (rx_size=0)")
        cons = rx.consumer()
        n = min(limit, (rx.producer() - cons) & 0xFFFFFFFF)
        out: list[tuple[int, int]] = []
        for first, stop in rx.spans(cons, n):
            chunk = rx.entries[first:stop]
            out += zip(chunk["addr"].tolist(), chunk["len"].tolist(), strict=True)
        rx.set_consumer(cons + n)
        return out

    # --- state -----------------------------------------------------------------------------------

    def statistics(self) -> XskStatistics:
        return XskStatistics(
            *_STATISTICS.unpack(self._sock.getsockopt(SOL_XDP, XDP_STATISTICS, _STATISTICS.size))
        )

    def describe(self) -> str:
        return f"AF_XDP {self.mode} on {self.ifname} (ifindex {self.ifindex}) queue {self.queue}"

    def close(self) -> None:
        """Unmap the rings and close the socket (idempotent). The UMEM is the caller's."""
        if self.closed:
            return
        self.closed = True
        for ring in (self.tx, self.rx, self.fill, self.completion):
            if ring is not None:
                ring.close()
        self._sock.close()
