"""SO_TIMESTAMPING: kernel software timestamps of received and sent datagrams.

RX: with ``SOF_TIMESTAMPING_RX_SOFTWARE`` every datagram carries an ``SCM_TIMESTAMPING`` control
message whose first timespec is the CLOCK_REALTIME time the kernel received it.
TX: with ``SOF_TIMESTAMPING_TX_SOFTWARE | OPT_ID`` the kernel queues, on the socket's error queue,
one record per datagram handed to the driver: an ``SCM_TIMESTAMPING`` message (time) and an
``IP_RECVERR`` ``sock_extended_err`` (origin ``SO_EE_ORIGIN_TIMESTAMPING``) whose ``ee_data`` is
the datagram's OPT_ID counter: 0 for the first datagram sent after enabling, then +1 each.
``OPT_TSONLY`` makes records carry no copy of the payload.

No kernel headers are installed here: constant values are transcribed from the linux uapi
headers named next to them and checked by the tests on the running kernel.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterable
from typing import NamedTuple

# asm-generic/socket.h: SO_TIMESTAMPING_OLD. On 64-bit its timespecs are 64-bit, the same layout
# as SO_TIMESTAMPING_NEW (65). The control message type equals the option.
SO_TIMESTAMPING = 37
SCM_TIMESTAMPING = SO_TIMESTAMPING

# linux/net_tstamp.h: enum SOF_TIMESTAMPING_*.
SOF_TIMESTAMPING_TX_HARDWARE = 1 << 0
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1  # record a timestamp when the driver takes the datagram
SOF_TIMESTAMPING_RX_HARDWARE = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3  # record a timestamp when the stack receives it
SOF_TIMESTAMPING_SOFTWARE = 1 << 4  # report software timestamps (in ts[0])
SOF_TIMESTAMPING_SYS_HARDWARE = 1 << 5
SOF_TIMESTAMPING_RAW_HARDWARE = 1 << 6  # report hardware timestamps (in ts[2])
SOF_TIMESTAMPING_OPT_ID = 1 << 7  # tag TX records with a per-socket datagram counter
SOF_TIMESTAMPING_TX_SCHED = 1 << 8  # record a timestamp when entering the qdisc
SOF_TIMESTAMPING_TX_ACK = 1 << 9
SOF_TIMESTAMPING_OPT_CMSG = 1 << 10
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11  # TX records carry no payload copy

# linux/errqueue.h: sock_extended_err.ee_origin and ee_info values for timestamps.
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0  # driver took the datagram
SCM_TSTAMP_SCHED = 1  # entered the packet scheduler
SCM_TSTAMP_ACK = 2

# linux/in.h: IP_RECVERR is also the cmsg type carrying sock_extended_err on IPv4 sockets.
IP_RECVERR = 11
# linux/socket.h
MSG_ERRQUEUE = 0x2000

RX_SOFTWARE = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
TX_SOFTWARE = (
    SOF_TIMESTAMPING_TX_SOFTWARE
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)

# struct cmsghdr {size_t cmsg_len; int cmsg_level; int cmsg_type;}, payload aligned to size_t.
CMSGHDR = struct.Struct("@Nii")
CMSG_ALIGN = struct.calcsize("@N")
# struct scm_timestamping {struct timespec ts[3];}: ts[0] software, ts[2] raw hardware.
SCM_TIMESTAMPING_STRUCT = struct.Struct("@qqqqqq")
# A control buffer that starts with SCM_TIMESTAMPING: its header and ts[0].
_FIRST_TS = struct.Struct("@Niiqq")
SOL_SOCKET = int(socket.SOL_SOCKET)
# struct sock_extended_err {u32 errno; u8 origin, type, code, pad; u32 info; u32 data;}
SOCK_EXTENDED_ERR = struct.Struct("@IBBBBII")
#: Control buffer room for one SCM_TIMESTAMPING message (header + 3 timespecs).
RX_CONTROL_SIZE = CMSGHDR.size + SCM_TIMESTAMPING_STRUCT.size
#: Room for a TX record: the timestamp plus sock_extended_err and its offender sockaddr_in.
TX_CONTROL_SIZE = 2 * CMSGHDR.size + SCM_TIMESTAMPING_STRUCT.size + SOCK_EXTENDED_ERR.size + 16


class TxTimestamp(NamedTuple):
    """One TX record: the datagram's OPT_ID counter, its timestamp and which point it marks."""

    id: int
    ns: int
    kind: int  # SCM_TSTAMP_SND or SCM_TSTAMP_SCHED


def flags(sock: socket.socket) -> int:
    """The socket's current SO_TIMESTAMPING flags."""
    return sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING)


def enable(sock: socket.socket, wanted: int) -> int:
    """Add ``wanted`` to the socket's SO_TIMESTAMPING flags (the option replaces, so merge)."""
    merged = flags(sock) | wanted
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, merged)
    return merged


def enable_rx_software(sock: socket.socket) -> int:
    """Stamp every received datagram with the kernel's CLOCK_REALTIME receive time.

    If no socket on the host had RX timestamps on, the kernel switches them on a moment later
    (asynchronously); ``await_rx_stamping`` waits for that.
    """
    return enable(sock, RX_SOFTWARE)


def await_rx_stamping(timeout: float = 2.0) -> bool:
    """Wait until the kernel stamps received datagrams; False if it did not within ``timeout``.

    The first request for RX software timestamps on a host flips a kernel-wide switch through
    deferred work (``net_enable_timestamp``); datagrams received before it flips carry no
    timestamp. This sends loopback probes, in the current thread's network namespace (whose
    ``lo`` must be up), until one arrives stamped. The switch stays on while any socket keeps
    RX timestamps enabled.
    """
    deadline = time.monotonic() + timeout
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        enable_rx_software(rx)
        while time.monotonic() < deadline:
            tx.sendto(b"probe", rx.getsockname())
            if select.select([rx], [], [], 0.05)[0]:
                _data, ancdata, _flags, _addr = rx.recvmsg(16, socket.CMSG_SPACE(RX_CONTROL_SIZE))
                if timestamp_from_ancdata(ancdata) is not None:
                    return True
            time.sleep(0.001)
    return False


def enable_tx_software(sock: socket.socket, *, sched: bool = False) -> int:
    """Queue a TX timestamp record with OPT_ID for every datagram sent from now on.

    The OPT_ID counter restarts at 0 only if OPT_ID was not already on. ``sched`` also records
    when each datagram enters the packet scheduler (a second record, kind SCM_TSTAMP_SCHED).
    """
    return enable(sock, TX_SOFTWARE | (SOF_TIMESTAMPING_TX_SCHED if sched else 0))


def _timespec0_ns(data: bytes | memoryview, offset: int = 0) -> int | None:
    sec, nsec = SCM_TIMESTAMPING_STRUCT.unpack_from(data, offset)[:2]
    return sec * 1_000_000_000 + nsec if sec or nsec else None


def rx_timestamp_ns(control: bytes | bytearray | memoryview, length: int) -> int | None:
    """ts[0] of the SCM_TIMESTAMPING message in a raw control buffer, or None if absent."""
    if length >= _FIRST_TS.size:
        # The common case, in one unpack: the first (usually only) message is the timestamp.
        cmsg_len, level, kind, sec, nsec = _FIRST_TS.unpack_from(control)
        ok = kind == SCM_TIMESTAMPING and level == SOL_SOCKET
        if ok and _FIRST_TS.size <= cmsg_len <= length:
            return sec * 1_000_000_000 + nsec if sec or nsec else None
    offset = 0
    while offset + CMSGHDR.size <= length:
        cmsg_len, level, kind = CMSGHDR.unpack_from(control, offset)
        if cmsg_len < CMSGHDR.size or offset + cmsg_len > length:
            return None  # truncated or corrupt: no trustworthy timestamp
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING:
            if cmsg_len - CMSGHDR.size < SCM_TIMESTAMPING_STRUCT.size:
                return None
            return _timespec0_ns(memoryview(control), offset + CMSGHDR.size)
        offset += (cmsg_len + CMSG_ALIGN - 1) & ~(CMSG_ALIGN - 1)
    return None


def timestamp_from_ancdata(ancdata: Iterable[tuple[int, int, bytes]]) -> int | None:
    """ts[0] of an SCM_TIMESTAMPING item of Python's ``recvmsg`` ancillary data, or None."""
    for level, kind, data in ancdata:
        if (
            level == socket.SOL_SOCKET
            and kind == SCM_TIMESTAMPING
            and len(data) >= SCM_TIMESTAMPING_STRUCT.size
        ):
            return _timespec0_ns(data)
    return None


def tx_record(ancdata: Iterable[tuple[int, int, bytes]]) -> TxTimestamp | None:
    """Parse one error-queue message's ancillary data; None if it is not a TX timestamp."""
    ns: int | None = None
    ident: int | None = None
    kind = SCM_TSTAMP_SND
    for level, ctype, data in ancdata:
        if level == socket.SOL_SOCKET and ctype == SCM_TIMESTAMPING:
            if len(data) >= SCM_TIMESTAMPING_STRUCT.size:
                ns = _timespec0_ns(data)
        elif (
            level == socket.IPPROTO_IP
            and ctype == IP_RECVERR
            and len(data) >= SOCK_EXTENDED_ERR.size
        ):
            _errno, origin, _t, _c, _p, info, ee_data = SOCK_EXTENDED_ERR.unpack_from(data)
            if origin == SO_EE_ORIGIN_TIMESTAMPING:
                ident, kind = ee_data, info
    if ns is None or ident is None:
        return None
    return TxTimestamp(ident, ns, kind)


def drain_tx_timestamps(sock: socket.socket, limit: int = 1024) -> list[TxTimestamp]:
    """Read up to ``limit`` TX records from the error queue without blocking, oldest first.

    Other error-queue messages (e.g. ICMP errors with IP_RECVERR) are consumed and skipped.
    """
    out: list[TxTimestamp] = []
    for _ in range(limit):
        try:
            _data, ancdata, _flags, _addr = sock.recvmsg(
                0, TX_CONTROL_SIZE * 2, MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except BlockingIOError:
            break
        record = tx_record(ancdata)
        if record is not None:
            out.append(record)
    return out
