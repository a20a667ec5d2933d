"""Entering named network namespaces (``/var/run/netns/NAME``) from this process.

Network-namespace membership belongs to a *thread*, and a socket stays in the namespace it was
created in for its whole life. So a process can own sockets in several namespaces at once: step
the current thread into the namespace, create the socket, step back (``entered``/``socket_in``).

Child processes are moved before they run their program: either with the argv prefix from
``exec_argv`` (``python -m feeder.net.nsexec NAME -- PROGRAM ...``, safe in threaded parents) or
with ``preexec_in(NAME)`` as a ``subprocess`` ``preexec_fn``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from feeder.net.libc import function, last_os_error

#: Where ``ip netns`` and pyroute2 bind-mount named namespaces.
NETNS_DIR = Path("/var/run/netns")
#: The calling thread's own namespace (``/proc/self`` would name the main thread's).
THREAD_NETNS = Path("/proc/thread-self/ns/net")
#: ``CLONE_NEWNET`` from linux/sched.h: restricts setns(2) to network namespaces.
CLONE_NEWNET = 0x40000000

_setns_call = function("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_unshare = function("unshare", ctypes.c_int, ctypes.c_int)
_ioctl = function("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)

P = ParamSpec("P")
T = TypeVar("T")


def netns_path(name: str) -> Path:
    """The bind-mount path of namespace ``name``; rejects names that are not a plain file name."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid network namespace name {name!r}: must be a plain file name")
    return NETNS_DIR / name


def open_netns(name: str) -> int:
    """An ``O_RDONLY`` fd of namespace ``name``; a clear ``FileNotFoundError`` when absent."""
    path = netns_path(name)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"network namespace {name!r} does not exist ({path} is missing)",
            str(path),
        ) from None


def _setns(fd: int, what: str) -> None:
    if _setns_call(fd, CLONE_NEWNET) != 0:
        raise last_os_error(f"setns({what})")


def move_current_thread(name: str) -> None:
    """Move the calling thread into ``name`` for good (for child processes about to exec)."""
    fd = open_netns(name)
    try:
        _setns(fd, name)
    finally:
        os.close(fd)


@contextmanager
def _switched(switch: Callable[[], None], what: str) -> Iterator[None]:
    """Run ``switch`` (which moves this thread), the body, then move the thread back."""
    original = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        switch()
        try:
            yield
        finally:
            if _setns_call(original, CLONE_NEWNET) != 0:
                # Carrying on would silently create later sockets in the wrong namespace.
                raise RuntimeError(
                    f"could not return this thread from {what}: {last_os_error('setns')}"
                )
    finally:
        os.close(original)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the *current thread* inside namespace ``name``.

    The thread's original namespace is restored on exit, also when the body raises. Other
    threads are unaffected, but threads started inside inherit ``name``. Do not ``await``
    inside: other coroutines would run in ``name``.
    """
    target = open_netns(name)
    try:
        with _switched(lambda: _setns(target, name), f"network namespace {name!r}"):
            yield
    finally:
        os.close(target)


@contextmanager
def private_netns() -> Iterator[None]:
    """Run the body with the current thread in a new anonymous namespace, then restore it.

    The namespace disappears once nothing (thread, socket) references it: nothing to clean up.
    """

    def unshare() -> None:
        if _unshare(CLONE_NEWNET) != 0:
            raise last_os_error("unshare(CLONE_NEWNET)")

    with _switched(unshare, "a private network namespace"):
        yield


def call_in(name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn`` with the current thread inside namespace ``name``; return its result."""
    with entered(name):
        return fn(*args, **kwargs)


def socket_in(
    name: str,
    family: int = socket.AF_INET,
    type: int = socket.SOCK_DGRAM,
    proto: int = 0,
) -> socket.socket:
    """A new socket living in namespace ``name`` (it stays there after the thread steps back)."""
    with entered(name):
        return socket.socket(family, type, proto)


def preexec_in(name: str) -> Callable[[], None]:
    """A ``subprocess`` ``preexec_fn`` moving the child into ``name`` before it execs.

    ``preexec_fn`` is unsafe in threaded parents (see the subprocess docs); prefer ``exec_argv``.
    The namespace path is checked now so a typo fails in the parent with a clear error.
    """
    os.close(open_netns(name))

    def move() -> None:
        move_current_thread(name)

    return move


def exec_argv(name: str, argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """``argv`` prefixed to run inside namespace ``name`` via ``python -m feeder.net.nsexec``."""
    netns_path(name)
    if not argv:
        raise ValueError("exec_argv needs a program to run")
    return [python, "-m", "feeder.net.nsexec", name, "--", *argv]


def netns_inode(name: str) -> int:
    """Inode number identifying namespace ``name``."""
    return os.stat(netns_path(name)).st_ino


def thread_netns_inode() -> int:
    """Inode number of the current thread's network namespace."""
    return os.stat(THREAD_NETNS).st_ino


# SIOCGSKNS from linux/sockios.h: ioctl returning an fd of the socket's network namespace.
SIOCGSKNS = 0x894C


def socket_netns_inode(sock: socket.socket) -> int:
    """Inode number of the network namespace ``sock`` belongs to (``SIOCGSKNS``)."""
    nsfd = _ioctl(sock.fileno(), SIOCGSKNS, 0)
    if nsfd < 0:
        raise last_os_error("ioctl(SIOCGSKNS)")
    try:
        return os.fstat(nsfd).st_ino
    finally:
        os.close(nsfd)


__all__ = [
    "CLONE_NEWNET",
    "NETNS_DIR",
    "call_in",
    "entered",
    "exec_argv",
    "move_current_thread",
    "netns_inode",
    "netns_path",
    "open_netns",
    "preexec_in",
    "private_netns",
    "socket_in",
    "socket_netns_inode",
    "thread_netns_inode",
]
