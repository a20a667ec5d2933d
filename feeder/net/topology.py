"""Two "hosts" on one machine: two network namespaces joined by a veth pair.

``TwoHostTopology.build(prefix)`` creates namespaces ``PREFIX-a`` and ``PREFIX-b`` (bind-mounted
under /var/run/netns by pyroute2), a veth pair whose ends ``PREFIX-a``/``PREFIX-b`` are created
directly inside them (nothing ever appears in the host namespace), one address each on a small
subnet, ``lo`` and the veth up, a 224.0.0.0/4 route via the veth, and rp_filter off.

Teardown: ``close()`` (idempotent) removes both namespaces, which destroys the veth pair. It runs
when the ``with`` block exits, also on exceptions; on SIGINT (KeyboardInterrupt); on SIGTERM and
SIGHUP, whose default action would kill the process without cleanup, because while a topology is
open those signals are turned into ``SystemExit`` (only when their handler was the default and
we are in the main thread; an application's own handlers are left alone); and at interpreter
exit via ``atexit`` for topologies never closed. After SIGKILL or a crash, ``cleanup_stale``
removes the leftovers. Sockets still open in a namespace keep it alive, invisibly, until they
are closed.

``topology_support()`` says whether this process can build a topology at all, with a reason
when not, so a demo can fall back to loopback and say why.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import ipaddress
import os
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import NamedTuple, Self

from pyroute2 import IPRoute, netns

from feeder.net import netns as ns

#: Linux interface names hold at most 15 characters (IFNAMSIZ 16 with the NUL).
IFNAME_MAX = 15
#: Suffixes naming the two sides; the namespace and the veth end of a side share one name.
SIDES = ("a", "b")
PREFIX_MAX = IFNAME_MAX - len("-a")
DEFAULT_SUBNET = "10.199.0.0/30"
MULTICAST_NET = "224.0.0.0/4"
#: ifindex requested for side a's veth end (side b's gets the next free one, 2).
VETH_A_INDEX = 10
#: Seconds the fresh link may take to pass its first datagram in each direction.
READY_TIMEOUT = 5.0
_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*\Z")


class TopologyError(RuntimeError):
    """The topology could not be built (the message says which step failed and why)."""


@dataclass(frozen=True)
class Host:
    """One side of the topology: a namespace, its veth end and that end's address."""

    netns: str
    ifname: str
    address: str
    prefixlen: int

    def socket(
        self,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_DGRAM,
        proto: int = 0,
    ) -> socket.socket:
        """A socket living in this host's namespace."""
        return ns.socket_in(self.netns, family, type, proto)

    def entered(self) -> contextlib.AbstractContextManager[None]:
        """Context manager running its body with the current thread in this namespace."""
        return ns.entered(self.netns)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that the child process runs in this namespace."""
        return ns.exec_argv(self.netns, argv)


def validate_prefix(prefix: str) -> str:
    """``prefix`` if it can name our namespaces and links, else a ``ValueError`` saying why."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ValueError(
            f"topology prefix {prefix!r} must be letters, digits or '_' (starting with a "
            "letter or digit)"
        )
    if len(prefix) > PREFIX_MAX:
        raise ValueError(
            f"topology prefix {prefix!r} is {len(prefix)} characters; at most {PREFIX_MAX} fit "
            f"in an interface name ({IFNAME_MAX} characters) with the '-a'/'-b' suffix"
        )
    return prefix


def side_names(prefix: str) -> tuple[str, str]:
    """The namespace (and veth) names of both sides for ``prefix``."""
    validate_prefix(prefix)
    return f"{prefix}-{SIDES[0]}", f"{prefix}-{SIDES[1]}"


def _host_addresses(subnet: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address, int]:
    try:
        net = ipaddress.IPv4Network(subnet)
    except ValueError as exc:
        raise ValueError(f"topology subnet {subnet!r} is not an IPv4 network: {exc}") from None
    hosts = list(net.hosts()) if net.prefixlen <= 30 else []
    if len(hosts) < 2:
        raise ValueError(f"topology subnet {subnet} needs two host addresses (use /30 or wider)")
    return hosts[0], hosts[1], net.prefixlen


class _SignalGuard:
    """Turns SIGTERM/SIGHUP (and SIGINT if at its default) into ``SystemExit`` while in use.

    Reference-counted, because handlers are process-wide and topologies may nest. Handlers can
    only be changed from the main thread: topologies built elsewhere are not guarded.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self._users = 0
        self._installed: list[signal.Signals] = []

    @staticmethod
    def _raise_exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    @staticmethod
    def _in_main_thread() -> bool:
        return threading.current_thread() is threading.main_thread()

    def acquire(self) -> bool:
        """Count one more user (installing the handlers); False off the main thread."""
        if not self._in_main_thread():
            return False
        self._users += 1
        if self._users == 1:
            for sig in self.SIGNALS:
                if signal.getsignal(sig) in (signal.SIG_DFL, self._raise_exit):
                    signal.signal(sig, self._raise_exit)
                    self._installed.append(sig)
        return True

    def release(self) -> None:
        """One user fewer; the last one restores the default handlers (main thread only)."""
        self._users = max(0, self._users - 1)
        if self._users or not self._in_main_thread():
            return
        for sig in self._installed:
            if signal.getsignal(sig) == self._raise_exit:
                signal.signal(sig, signal.SIG_DFL)
        self._installed.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold these signals back (this thread) so teardown is not cut short by a second one."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


_SIGNALS = _SignalGuard()


@dataclass
class TwoHostTopology:
    """Namespaces ``a`` and ``b`` joined by a veth pair; ``close()`` tears everything down."""

    prefix: str
    a: Host
    b: Host
    guard_signals: bool = True
    _created: list[str] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)
    _guarded: bool = field(default=False, repr=False)

    @classmethod
    def build(
        cls, prefix: str, *, subnet: str = DEFAULT_SUBNET, guard_signals: bool = True
    ) -> Self:
        """Create the topology; on any failure everything created so far is removed."""
        name_a, name_b = side_names(prefix)
        addr_a, addr_b, plen = _host_addresses(subnet)
        for name in (name_a, name_b):
            if ns.netns_path(name).exists():
                raise FileExistsError(
                    errno.EEXIST,
                    f"network namespace {name!r} already exists: another topology uses prefix "
                    f"{prefix!r}, or a crashed run left it (cleanup_stale({prefix!r}) removes it)",
                    str(ns.netns_path(name)),
                )
        topo = cls(
            prefix,
            Host(name_a, name_a, str(addr_a), plen),
            Host(name_b, name_b, str(addr_b), plen),
            guard_signals,
        )
        topo._guarded = guard_signals and _SIGNALS.acquire()
        atexit.register(topo.close)
        try:
            topo._create()
        except BaseException:
            topo.close()
            raise
        return topo

    @property
    def hosts(self) -> tuple[Host, Host]:
        return self.a, self.b

    @property
    def closed(self) -> bool:
        return self._closed

    def _create(self) -> None:
        for host in self.hosts:
            _step(f"create namespace {host.netns}", netns.create, host.netns)
            self._created.append(host.netns)
        peer_fd = ns.open_netns(self.b.netns)
        try:
            with self.a.entered(), IPRoute() as ipr:
                _step(
                    f"create veth {self.a.ifname}<->{self.b.ifname}",
                    ipr.link,
                    "add",
                    ifname=self.a.ifname,
                    # Both ends would get ifindex 2 in fresh namespaces; with equal indexes the
                    # kernel treats their carrier-up as non-urgent and delays it by up to 1 s.
                    index=VETH_A_INDEX,
                    kind="veth",
                    peer={"ifname": self.b.ifname, "net_ns_fd": peer_fd},
                )
        finally:
            os.close(peer_fd)
        for host in self.hosts:
            with host.entered():
                _configure_host(host)
        # Links are up, but the kernel finishes bringing them up asynchronously; until then
        # datagrams are dropped silently. Only a datagram that got through proves readiness.
        _probe_path(self.a, self.b, READY_TIMEOUT)
        _probe_path(self.b, self.a, READY_TIMEOUT)

    def close(self) -> None:
        """Remove both namespaces (and with them the veth pair). Safe to call repeatedly."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors: list[str] = []
        with _SIGNALS.deferred():
            for name in reversed(self._created):
                try:
                    netns.remove(name)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    errors.append(f"{name}: {exc}")
            if self._guarded:
                _SIGNALS.release()
        if errors:
            raise TopologyError("could not remove network namespaces: " + "; ".join(errors))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _step(what: str, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Run one build step, naming it in the error if it fails."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # OSError, or pyroute2's NetlinkError (not an OSError)
        raise TopologyError(f"{what}: {exc}") from exc


def _write_sysctl(name: str, value: str) -> None:
    """Write a sysctl of the *current thread's* namespace (/proc/sys/net follows the opener)."""
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value)


def _configure_host(host: Host) -> None:
    """Inside ``host``'s namespace: address, links up, multicast route, rp_filter off."""
    with IPRoute() as ipr:
        (lo,) = ipr.link_lookup(ifname="lo")
        (idx,) = ipr.link_lookup(ifname=host.ifname)
        where = f"in namespace {host.netns}"
        _step(f"set lo up {where}", ipr.link, "set", index=lo, state="up")
        _step(
            f"add {host.address}/{host.prefixlen} to {host.ifname} {where}",
            ipr.addr,
            "add",
            index=idx,
            address=host.address,
            prefixlen=host.prefixlen,
        )
        _step(f"set {host.ifname} up {where}", ipr.link, "set", index=idx, state="up")
        _step(
            f"route {MULTICAST_NET} via {host.ifname} {where}",
            ipr.route,
            "add",
            dst=MULTICAST_NET,
            oif=idx,
        )
    # The effective rp_filter is max(all, interface): relax both.
    for conf in ("all", "default", host.ifname):
        _step(
            f"rp_filter=0 on {conf} {where}", _write_sysctl, f"net.ipv4.conf.{conf}.rp_filter", "0"
        )


def _probe_path(src: Host, dst: Host, timeout: float) -> None:
    """Send UDP probes from ``src`` to ``dst`` until one arrives, or raise ``TopologyError``."""
    token = os.urandom(8)
    deadline = time.monotonic() + timeout
    last_error = "no probe arrived"
    with dst.socket() as rx, src.socket() as tx:
        rx.bind((dst.address, 0))
        while time.monotonic() < deadline:
            try:
                tx.sendto(token, rx.getsockname())
            except OSError as exc:
                last_error = str(exc)
            while select.select([rx], [], [], 0.01)[0]:
                if rx.recv(64) == token:
                    return
    raise TopologyError(
        f"link {src.ifname} -> {dst.ifname} passed no datagram within {timeout} s ({last_error})"
    )


def list_stale(prefix: str) -> list[str]:
    """Namespaces under /var/run/netns that look like topologies built with ``prefix``."""
    if not prefix or "/" in prefix:
        raise ValueError(f"stale-cleanup prefix {prefix!r} must be a non-empty name prefix")
    try:
        names = os.listdir(ns.NETNS_DIR)
    except FileNotFoundError:
        return []
    suffixes = tuple(f"-{side}" for side in SIDES)
    return sorted(n for n in names if n.startswith(prefix) and n.endswith(suffixes))


def cleanup_stale(prefix: str) -> list[str]:
    """Remove leftovers of crashed runs (namespaces ``PREFIX*-a``/``-b``); return their names.

    Only namespaces are removed: the veth ends live inside them and go with them.
    """
    removed = []
    for name in list_stale(prefix):
        with contextlib.suppress(FileNotFoundError):
            netns.remove(name)
            removed.append(name)
    return removed


class Support(NamedTuple):
    """Whether a topology can be built here; ``reason`` explains a ``False``."""

    ok: bool
    reason: str


# Capability bits from linux/capability.h.
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def _effective_caps(status_path: str = "/proc/self/status") -> int:
    with open(status_path) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def _probe_veth() -> None:
    """Create a veth pair in a throwaway namespace (gone when the probe ends)."""
    with ns.private_netns(), IPRoute() as ipr:
        ipr.link("add", ifname="probe0", kind="veth", peer="probe1")


def topology_support(status_path: str = "/proc/self/status") -> Support:
    """Check root-equivalent capabilities, netns support and veth by a real, traceless probe.

    The probe runs in a short-lived thread inside a private namespace that vanishes with it.
    """
    if not os.path.exists(ns.THREAD_NETNS):
        return Support(False, "this kernel has no network namespaces (/proc/thread-self/ns/net)")
    try:
        caps = _effective_caps(status_path)
    except OSError as exc:
        return Support(False, f"cannot read this process's capabilities: {exc}")
    missing = [
        n
        for n, bit in (("CAP_SYS_ADMIN", CAP_SYS_ADMIN), ("CAP_NET_ADMIN", CAP_NET_ADMIN))
        if not caps >> bit & 1
    ]
    if missing:
        return Support(False, f"needs root ({', '.join(missing)} missing)")
    failure: list[str] = []

    def probe() -> None:
        try:
            _probe_veth()
        except Exception as exc:
            failure.append(str(exc))

    thread = threading.Thread(target=probe, name="netns-probe")
    thread.start()
    thread.join()
    if failure:
        return Support(False, f"cannot create a namespace with a veth pair: {failure[0]}")
    return Support(True, "root, network namespaces and veth available")
