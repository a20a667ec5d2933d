"""Kernel packet-drop tracing: how many packets the kernel dropped, per drop reason, during a run.

Every packet the kernel drops passes through the ``skb:kfree_skb`` tracepoint with a drop
reason (``enum skb_drop_reason``: ``SOCKET_RCVBUFF`` is a full UDP receive queue, ``NO_SOCKET``
a datagram for a port nobody listens on, ...). ``DropTracer`` attaches a small program to the
raw tracepoint (BPF_RAW_TRACEPOINT_OPEN; kprobes and fentry are not needed) that adds one to a
per-CPU counter for the drop's reason.

Scope:

* ``DropTracer()`` counts *every* drop on the host, in every network namespace, any protocol.
* ``DropTracer(sockets=[sock, ...])`` counts only drops whose receiving socket (the
  tracepoint's ``rx_sk``, Linux 6.11+) is one of those sockets, matched by socket cookie. That
  covers drops at the socket (receive queue full, socket filter, closing); drops earlier in the
  stack (no route, bad checksum, backlog full, no listening socket) have no socket and are not
  counted in this mode.

Programs are loaded through bcc when it can compile here, else from assembly (``xdp.loader``).
The kernel-specific facts (argument positions, ``struct sock`` offsets, reason names) come from
the kernel's BTF. Without BTF only host-wide counting works: it assumes the argument order of
Linux 5.17+ (skb, location, reason) and takes reason names from the tracepoint's format file
in tracefs (mounted read-only on a private directory for the read when not mounted).

Example::

    with DropTracer(sockets=[rx_sock]) as tracer:
        run_the_feed()
        print(tracer.snapshot())   # {"SOCKET_RCVBUFF": 1234}
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from xdp import bpf, mounts, programs
from xdp.btf import Btf, BtfError, vmlinux
from xdp.loader import Program, Use, load
from xdp.maps import Map, u64

TRACEPOINT: Final = "kfree_skb"
#: Prefix of the enumerator names in ``enum skb_drop_reason`` (dropped from reported names).
REASON_PREFIX: Final = "SKB_DROP_REASON_"
#: Where tracefs is usually mounted, newest convention first.
TRACEFS_MOUNTS: Final = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
FORMAT_FILE: Final = "events/skb/kfree_skb/format"
#: getsockopt(SOL_SOCKET, SO_COOKIE): a socket's unique, never-reused 64-bit id.
SO_COOKIE: Final = 57
#: Distinct reasons the counters map can hold (the kernel has ~130 core ones).
MAX_REASONS: Final = 1024
MAX_SOCKETS: Final = 256

_REASON_RE = re.compile(r'\{\s*(\d+)\s*,\s*"([A-Za-z0-9_]+)"\s*\}')


class TracingError(RuntimeError):
    """Drop tracing cannot work here (the message says what is missing)."""


# --- kernel facts ---


@dataclass(frozen=True)
class KfreeSkbLayout:
    """Where the raw ``kfree_skb`` tracepoint puts what the drop counter reads."""

    reason_arg: int  # index of ``enum skb_drop_reason reason`` in ctx->args
    sock_arg: int | None  # index of ``struct sock *rx_sk`` (None before Linux 6.11)
    cookie_offset: int  # offsetof(struct sock, __sk_common.skc_cookie)


#: The layout assumed without BTF: TP_PROTO(skb, location, reason) since Linux 5.17.
ASSUMED_LAYOUT: Final = KfreeSkbLayout(reason_arg=2, sock_arg=None, cookie_offset=0)


def kfree_skb_layout(btf: Btf) -> KfreeSkbLayout:
    """Read the tracepoint's argument positions and the socket cookie offset from BTF."""
    args = [ctype for _name, ctype in btf.tracepoint_args(TRACEPOINT)]
    try:
        reason_arg = args.index("enum skb_drop_reason")
    except ValueError:
        raise TracingError(
            f"this kernel's {TRACEPOINT} tracepoint has no drop reason (Linux 5.17+ needed); "
            f"its arguments are {args}"
        ) from None
    sock_arg = args.index("struct sock *") if "struct sock *" in args else None
    return KfreeSkbLayout(reason_arg, sock_arg, btf.member_offset("sock", "__sk_common.skc_cookie"))


def reasons_from_btf(btf: Btf) -> dict[int, str]:
    """Drop reason value -> name (``SOCKET_RCVBUFF``) from ``enum skb_drop_reason``."""
    return {
        value: name.removeprefix(REASON_PREFIX)
        for value, name in btf.enum("skb_drop_reason").items()
    }


def reasons_from_format(text: str) -> dict[int, str]:
    """Drop reason value -> name from the ``__print_symbolic`` list of the tracepoint format."""
    _, found, symbolic = text.partition("__print_symbolic(REC->reason")
    if not found:
        raise TracingError("the kfree_skb format file names no drop reasons")
    return {int(value): name for value, name in _REASON_RE.findall(symbolic)}


def read_format_file(mounted: Iterable[Path] = TRACEFS_MOUNTS) -> str:
    """The kfree_skb format file: from a mounted tracefs, else a private read-only mount."""
    for base in mounted:
        path = base / FORMAT_FILE
        if path.exists():
            return path.read_text()
    # Not mounted: mount tracefs read-only on a temporary directory just for this read.
    with tempfile.TemporaryDirectory(prefix="mdt-tracefs-") as where:
        mounts.mount("tracefs", where, "tracefs", mounts.MS_RDONLY)
        try:
            return (Path(where) / FORMAT_FILE).read_text()
        finally:
            mounts.umount(where)


def reason_names(
    btf: Callable[[], Btf] = vmlinux, format_text: Callable[[], str] = read_format_file
) -> dict[int, str]:
    """Drop reason names of this kernel: from BTF, else from tracefs."""
    try:
        return reasons_from_btf(btf())
    except BtfError:
        return reasons_from_format(format_text())


def socket_cookie(sock: socket.socket) -> int:
    """The kernel's cookie of ``sock`` (SO_COOKIE; assigned on first request, never reused)."""
    return int(struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0])


# --- the tracer ---


class DropTracer:
    """Counts kernel packet drops per reason from ``start()`` until ``stop()``.

    ``sockets``: None counts all drops on the host; an iterable (possibly empty, see
    ``add_socket``) counts only drops at those sockets. ``use`` picks the loader as in
    ``xdp.loader.load``.
    """

    def __init__(
        self,
        sockets: Iterable[socket.socket] | None = None,
        *,
        use: Use = "auto",
        btf: Callable[[], Btf] = vmlinux,
        format_text: Callable[[], str] = read_format_file,
    ) -> None:
        self._filtered = sockets is not None
        self._pending = list(sockets or ())
        self._use: Use = use
        self._btf = btf
        self._format_text = format_text
        self._counts: Map | None = None
        self._sockets: Map | None = None
        self._program: Program | None = None
        self._link_fd: int | None = None
        self._names: dict[int, str] = {}
        self._final: dict[int, int] | None = None

    @property
    def running(self) -> bool:
        return self._link_fd is not None

    @property
    def program(self) -> Program:
        """The loaded program (``via``/``why`` say how it was loaded); only while running."""
        if self._program is None:
            raise TracingError("the drop tracer is not running")
        return self._program

    def start(self) -> Self:
        """Create the maps, load the program and attach it to the tracepoint (counts from 0)."""
        if self.running:
            return self
        self._final = None
        layout = self._kernel_facts()
        try:
            self._start(layout)
        except BaseException:
            self.stop()
            raise
        return self

    def _kernel_facts(self) -> KfreeSkbLayout:
        """The tracepoint layout, and reason names into ``self._names``."""
        try:
            btf = self._btf()
            layout = kfree_skb_layout(btf)
            self._names = reasons_from_btf(btf)
            return layout
        except BtfError as exc:
            if self._filtered:
                raise TracingError(
                    f"counting drops per socket needs the kernel's BTF: {exc}"
                ) from None
            missing = str(exc)
        try:
            self._names = reasons_from_format(self._format_text())
        except OSError as exc:
            raise TracingError(
                f"no kernel BTF ({missing}) and no readable tracefs format file ({exc})"
            ) from None
        return ASSUMED_LAYOUT

    def _start(self, layout: KfreeSkbLayout) -> None:
        self._counts = Map.create(bpf.MapType.PERCPU_HASH, 4, 8, MAX_REASONS, name="drop_counts")
        socket_filter = None
        if self._filtered:
            if layout.sock_arg is None:
                raise TracingError(
                    f"this kernel's {TRACEPOINT} tracepoint does not say which socket dropped "
                    "the packet (rx_sk, Linux 6.11+): use DropTracer() to count all drops"
                )
            self._sockets = Map.create(bpf.MapType.HASH, 8, 1, MAX_SOCKETS, name="drop_socks")
            for sock in self._pending:
                self.add_socket(sock)
            socket_filter = programs.SocketFilter(
                self._sockets.fd, layout.sock_arg, layout.cookie_offset
            )
        spec = programs.drop_counter(
            self._counts.fd, reason_arg=layout.reason_arg, socket_filter=socket_filter
        )
        self._program = load(spec, use=self._use)
        self._link_fd = bpf.raw_tracepoint_open(TRACEPOINT, self._program.fd)

    def add_socket(self, sock: socket.socket) -> None:
        """Also count drops at ``sock`` (only for a tracer created with ``sockets``)."""
        if not self._filtered:
            raise TracingError("this tracer counts all drops; it has no socket filter")
        if self._sockets is None:
            self._pending.append(sock)
        else:
            self._sockets.update(u64(socket_cookie(sock)), b"\x01")

    def _read(self) -> dict[int, int]:
        """Reason value -> drops, summed over CPUs (live while running, final after stop)."""
        if self._counts is None:
            if self._final is None:
                raise TracingError("the drop tracer was never started")
            return self._final
        counts: dict[int, int] = {}
        for key in self._counts:
            total = self._counts.sum_percpu(key)
            if total:
                counts[struct.unpack("=I", key)[0]] = total
        return counts

    def snapshot(self) -> dict[str, int]:
        """Drops per reason name (only reasons seen), largest first; final counts after stop."""
        named = {self._names.get(r, f"REASON_{r}"): n for r, n in self._read().items()}
        return dict(sorted(named.items(), key=lambda item: (-item[1], item[0])))

    def count(self, reason: str) -> int:
        """Drops for one reason name (e.g. ``"SOCKET_RCVBUFF"``)."""
        counts = self._read()
        for value, name in self._names.items():
            if name == reason:
                return counts.get(value, 0)
        raise ValueError(f"this kernel has no drop reason named {reason!r}")

    def stop(self) -> None:
        """Detach and free everything (idempotent); ``snapshot()`` keeps the final counts."""
        link, self._link_fd = self._link_fd, None
        if link is not None:
            with contextlib.suppress(OSError):
                os.close(link)
        if self._counts is not None and not self._counts.closed:
            with contextlib.suppress(OSError):
                self._final = self._read()
        for resource in (self._program, self._counts, self._sockets):
            if resource is not None:
                resource.close()
        self._program = self._counts = self._sockets = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = [
    "ASSUMED_LAYOUT",
    "TRACEPOINT",
    "DropTracer",
    "KfreeSkbLayout",
    "TracingError",
    "kfree_skb_layout",
    "read_format_file",
    "reason_names",
    "reasons_from_btf",
    "reasons_from_format",
    "socket_cookie",
]
