"""IPv4 multicast sockets: validated setup of senders and receivers, and buffer read-back.

Socket buffers are where a feed silently loses data, so the size the kernel actually granted is
read back and reported as a ``BufferReport`` next to every socket, with the fix when the request
was capped. Linux doubles a requested SO_RCVBUF/SO_SNDBUF (the extra half pays for bookkeeping)
and caps the request at net.core.rmem_max/wmem_max, so ``granted`` is normally ``2 * requested``
and anything less means the request was capped. The ``*BUFFORCE`` variants ignore the cap but
need CAP_NET_ADMIN. Inside a child network namespace those sysctls are read-only mirrors of the
host's: the fix is always applied on the host.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from feeder.net import validate
from feeder.net.netns import socket_in

# SO_*BUFFORCE from asm-generic/socket.h (not exported by Python's socket module).
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
#: Largest request we pass on: the kernel doubles it into an int.
BUFFER_MAX = 1 << 30


class InterfaceAddressError(ValueError):
    """No interface in the socket's network namespace has the given address."""


@dataclass(frozen=True)
class BufferReport:
    """What a socket buffer request turned into."""

    option: str  # "SO_RCVBUF" or "SO_SNDBUF"
    requested: int | None  # bytes asked for (None: left at the kernel default)
    granted: int  # getsockopt read-back (Linux: twice the effective request)
    capped: bool  # granted < 2 * requested: the sysctl cap cut the request
    forced: bool  # granted via SO_*BUFFORCE (cap bypassed)
    sysctl: str  # the cap: net.core.rmem_max or net.core.wmem_max
    limit: int | None  # the cap's value, when readable
    fix: str  # how to lift the cap; "" when not capped

    def __str__(self) -> str:
        asked = "default" if self.requested is None else f"requested {self.requested}"
        text = f"{self.option}: {asked}, granted {self.granted}"
        if self.forced:
            text += f" (forced past {self.sysctl})"
        return f"{text}; {self.fix}" if self.capped else text


class Opened(NamedTuple):
    """A configured socket and the read-back of its buffer size."""

    sock: socket.socket
    buffer: BufferReport


SysctlReader = Callable[[str], int | None]


def read_sysctl(name: str, root: Path = Path("/proc/sys")) -> int | None:
    """An integer sysctl (``net.core.rmem_max``), or None when it cannot be read."""
    try:
        return int((root / name.replace(".", "/")).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _validate_buffer(size: int | None, what: str) -> None:
    if size is not None:
        validate.int_in(size, 1, BUFFER_MAX, f"{what} (bytes)")


def request_buffer(
    sock: socket.socket,
    kind: Literal["rcv", "snd"],
    requested: int | None,
    force: bool,
    read: SysctlReader = read_sysctl,
) -> BufferReport:
    """Request a buffer size (forced if asked and permitted) and report the read-back."""
    option, force_option, sysctl = (
        (socket.SO_RCVBUF, SO_RCVBUFFORCE, "net.core.rmem_max")
        if kind == "rcv"
        else (socket.SO_SNDBUF, SO_SNDBUFFORCE, "net.core.wmem_max")
    )
    name = "SO_RCVBUF" if kind == "rcv" else "SO_SNDBUF"
    forced = False
    if requested is not None:
        if force:
            try:
                sock.setsockopt(socket.SOL_SOCKET, force_option, requested)
                forced = True
            except PermissionError:
                pass  # no CAP_NET_ADMIN: fall back to the capped request, reported below
        if not forced:
            sock.setsockopt(socket.SOL_SOCKET, option, requested)
    granted = sock.getsockopt(socket.SOL_SOCKET, option)
    limit = read(sysctl)
    capped = requested is not None and granted < 2 * requested
    fix = ""
    if capped:
        shown = "unreadable" if limit is None else str(limit)
        fix = (
            f"{sysctl} is {shown}, which caps {name} below the request; raise it: "
            f"`hosttune apply` (the feeder profile raises {sysctl}) or "
            f"`sysctl -w {sysctl}={requested}` on the host; or, as root, request forced "
            f"buffers ({name}FORCE)"
        )
    return BufferReport(name, requested, granted, capped, forced, sysctl, limit, fix)


def _new_socket(netns: str | None) -> socket.socket:
    if netns is None:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    return socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)


def _no_such_address(addr: str, netns: str | None, exc: OSError) -> InterfaceAddressError:
    where = "this network namespace" if netns is None else f"network namespace {netns!r}"
    return InterfaceAddressError(
        f"no interface in {where} has address {addr} ({exc.strerror}); use the address of "
        "the interface that should carry the feed"
    )


def open_sender(
    iface_addr: str,
    *,
    ttl: int = 1,
    loop: bool = False,
    sndbuf: int | None = None,
    force_buffer: bool = False,
    blocking: bool = True,
    netns: str | None = None,
    read: SysctlReader = read_sysctl,
) -> Opened:
    """A UDP socket sending multicast out of the interface that has ``iface_addr``.

    ``ttl``: hop limit (1 keeps it on the link; note TTL 0 still crosses a veth). ``loop``:
    deliver copies to receivers on this host. ``sndbuf``: requested SO_SNDBUF bytes
    (``force_buffer``: use SO_SNDBUFFORCE when permitted). ``netns``: create it in that named
    network namespace. Raises ``ValueError`` (``InterfaceAddressError`` for an address no local
    interface has) on bad input; the socket is closed on any failure.
    """
    iface_addr = validate.iface_addr(iface_addr)
    validate.int_in(ttl, 0, 255, "multicast TTL")
    _validate_buffer(sndbuf, "sndbuf")
    sock = _new_socket(netns)
    try:
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface_addr))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                raise _no_such_address(iface_addr, netns, exc) from None
            raise
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))
        report = request_buffer(sock, "snd", sndbuf, force_buffer, read)
        sock.setblocking(blocking)
    except BaseException:
        sock.close()
        raise
    return Opened(sock, report)


def open_receiver(
    group: str,
    port: int,
    iface_addr: str,
    *,
    rcvbuf: int | None = None,
    force_buffer: bool = False,
    blocking: bool = True,
    netns: str | None = None,
    read: SysctlReader = read_sysctl,
) -> Opened:
    """A UDP socket bound to ``group:port`` and joined to ``group`` on ``iface_addr``'s interface.

    Binding the group address (not 0.0.0.0) keeps datagrams for other groups on the same port
    out. ``rcvbuf``: requested SO_RCVBUF bytes (``force_buffer``: SO_RCVBUFFORCE when permitted,
    e.g. as root). Errors as for ``open_sender``.
    """
    group = validate.group(group)
    validate.port(port)
    iface_addr = validate.iface_addr(iface_addr)
    _validate_buffer(rcvbuf, "rcvbuf")
    sock = _new_socket(netns)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Size the buffer before joining so no datagram arrives into the default one.
        report = request_buffer(sock, "rcv", rcvbuf, force_buffer, read)
        sock.bind((group, port))
        membership = socket.inet_aton(group) + socket.inet_aton(iface_addr)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
                raise _no_such_address(iface_addr, netns, exc) from None
            raise
        sock.setblocking(blocking)
    except BaseException:
        sock.close()
        raise
    return Opened(sock, report)
