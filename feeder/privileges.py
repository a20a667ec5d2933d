"""Least privilege for ``feeder run``: keep the capabilities its send path needs, drop the rest.

Which capabilities each part of a run needs (``needs``):

=====================  =========================================================================
kernel UDP             none: multicast sends need no privilege. (SO_SNDBUFFORCE would need
                       CAP_NET_ADMIN; the feeder asks for a normal buffer instead and reports
                       when ``net.core.wmem_max`` caps it.)
AF_XDP (``xdp``)       CAP_NET_RAW (the AF_XDP socket), CAP_NET_ADMIN (binding a NIC queue,
                       attaching XDP), CAP_BPF (maps and programs), CAP_IPC_LOCK (UMEM pages
                       past RLIMIT_MEMLOCK). ``auto`` keeps them when held, as optional: without
                       them AF_XDP is skipped and kernel UDP is used. ``auto`` on loopback never
                       tries AF_XDP, so it keeps none.
self-tuning            CAP_IPC_LOCK (optional): mlockall of current and future pages.
``netns``              CAP_SYS_ADMIN: setns into the configured network namespace.
ports below 1024       CAP_NET_BIND_SERVICE for the metrics or re-request port.
=====================  =========================================================================

``drop(needs)`` runs at start, before any thread, socket or event loop exists, because
capabilities belong to each thread and threads inherit them only when created:

1. the bounding set loses every capability not kept (this takes CAP_SETPCAP, which root has;
   a process started without it keeps its bounding set, and the report says so);
2. the ambient set is cleared, so a program the feeder might run inherits nothing;
3. effective and permitted become exactly the kept set (``capset``), inheritable empty;
4. ``no_new_privs`` is set: no exec can ever gain privileges again (setuid, file caps).

Kept means needed and held: a needed capability the process lacks is reported as missing, and
the step that needs it fails later with its own message (e.g. AF_XDP falls back or refuses).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from feeder.config import FeederConfig

# linux/capability.h, in number order.
CAP_NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)  # fmt: skip
CAP_SETPCAP = CAP_NAMES.index("setpcap")
CAP_NET_BIND_SERVICE = CAP_NAMES.index("net_bind_service")
CAP_NET_ADMIN = CAP_NAMES.index("net_admin")
CAP_NET_RAW = CAP_NAMES.index("net_raw")
CAP_IPC_LOCK = CAP_NAMES.index("ipc_lock")
CAP_SYS_ADMIN = CAP_NAMES.index("sys_admin")
CAP_BPF = CAP_NAMES.index("bpf")

# prctl(2) options.
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522  # 64-bit sets as two 32-bit halves


class PrivilegeError(RuntimeError):
    """The capabilities could not be dropped as asked (the run must not go on)."""


def cap_name(cap: int) -> str:
    return f"cap_{CAP_NAMES[cap]}" if cap < len(CAP_NAMES) else f"cap_{cap}"


def names(mask: int) -> list[str]:
    return [cap_name(c) for c in range(mask.bit_length()) if mask >> c & 1]


def mask_of(caps: Sequence[int]) -> int:
    out = 0
    for c in caps:
        out |= 1 << c
    return out


# --- what a run needs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    cap: int
    why: str
    required: bool  # False: a fast path or a tuning step is skipped without it


def send_path_needs(send_path: str, loopback: bool, split_lines: bool = False) -> list[Need]:
    """Capabilities for sending: none for kernel UDP, four for AF_XDP (see the module doc).

    AF_XDP is tried for ``xdp``, and for ``auto`` off loopback, unless A/B lines leave on two
    interfaces (kernel UDP then), as ``feeder.runtime.app.send_candidates`` decides.
    """
    xdp = send_path == "xdp" or (send_path == "auto" and not loopback)
    if not xdp or split_lines:
        return []
    required = send_path == "xdp"  # auto falls back to kernel UDP without them
    return [
        Need(CAP_NET_RAW, "AF_XDP socket", required),
        Need(CAP_NET_ADMIN, "AF_XDP: bind a NIC queue, attach XDP", required),
        Need(CAP_BPF, "AF_XDP: BPF maps and programs", required),
        Need(CAP_IPC_LOCK, "AF_XDP: UMEM pages beyond RLIMIT_MEMLOCK", False),
    ]


def needs(cfg: FeederConfig) -> list[Need]:
    """Every capability ``feeder run`` with ``cfg`` can use, and why."""
    split = cfg.interface_b not in (None, cfg.interface)
    out = send_path_needs(cfg.send_path, cfg.interface.startswith("127."), split)
    if cfg.xdp_unavailable is not None:  # the fault matrix's "AF_XDP unavailable": never tried
        out = []
    if cfg.self_tune and all(n.cap != CAP_IPC_LOCK for n in out):
        out.append(Need(CAP_IPC_LOCK, "self-tuning: mlockall beyond RLIMIT_MEMLOCK", False))
    if cfg.netns is not None:
        out.append(Need(CAP_SYS_ADMIN, f"setns into network namespace {cfg.netns}", True))
    recovery = cfg.recovery_port if cfg.recovery_address is not None else 0
    low = [p for p in (cfg.metrics_port, recovery) if 0 < p < 1024]
    if low:
        out.append(Need(CAP_NET_BIND_SERVICE, f"listen on port {low[0]} (< 1024)", True))
    return out


# --- the kernel interface ----------------------------------------------------------------------


@dataclass(frozen=True)
class CapSets:
    effective: int
    permitted: int
    inheritable: int


class Kernel(Protocol):
    """What ``drop`` needs from the kernel (``LinuxCapabilities``; fakes in tests)."""

    def last_cap(self) -> int: ...
    def threads(self) -> int: ...
    def get(self) -> CapSets: ...
    def set(self, sets: CapSets) -> None: ...
    def bounding(self) -> int: ...
    def drop_bounding(self, cap: int) -> None: ...
    def clear_ambient(self) -> None: ...
    def ambient(self) -> int: ...
    def set_no_new_privs(self) -> None: ...
    def no_new_privs(self) -> bool: ...


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class LinuxCapabilities:
    """capget/capset and prctl through libc, for the calling thread."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

    def _check(self, rc: int, what: str) -> int:
        if rc < 0:
            err = ctypes.get_errno()
            raise PrivilegeError(f"{what}: {os.strerror(err)}")
        return rc

    def _prctl(self, option: int, arg: int = 0, arg3: int = 0, what: str = "prctl") -> int:
        return self._check(self._libc.prctl(option, arg, arg3, 0, 0), what)

    def last_cap(self) -> int:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())

    def threads(self) -> int:
        return len(os.listdir("/proc/self/task"))

    def get(self) -> CapSets:
        header = _Header(_CAPABILITY_VERSION_3, 0)
        data = (_Data * 2)()
        self._check(self._libc.capget(ctypes.byref(header), data), "capget")
        return CapSets(
            data[0].effective | data[1].effective << 32,
            data[0].permitted | data[1].permitted << 32,
            data[0].inheritable | data[1].inheritable << 32,
        )

    def set(self, sets: CapSets) -> None:
        header = _Header(_CAPABILITY_VERSION_3, 0)
        data = (_Data * 2)()
        for i in (0, 1):
            shift, low = 32 * i, 0xFFFF_FFFF
            data[i].effective = sets.effective >> shift & low
            data[i].permitted = sets.permitted >> shift & low
            data[i].inheritable = sets.inheritable >> shift & low
        self._check(self._libc.capset(ctypes.byref(header), data), "capset")

    def bounding(self) -> int:
        last = self.last_cap()
        return mask_of([c for c in range(last + 1) if self._prctl(PR_CAPBSET_READ, c)])

    def drop_bounding(self, cap: int) -> None:
        self._prctl(PR_CAPBSET_DROP, cap, what=f"dropping {cap_name(cap)} from the bounding set")

    def clear_ambient(self) -> None:
        self._prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, what="clearing the ambient set")

    def ambient(self) -> int:
        last = self.last_cap()
        return mask_of([c for c in range(last + 1) if self._prctl(PR_CAP_AMBIENT, 1, c)])

    def set_no_new_privs(self) -> None:
        self._prctl(PR_SET_NO_NEW_PRIVS, 1, what="setting no_new_privs")

    def no_new_privs(self) -> bool:
        return bool(self._prctl(PR_GET_NO_NEW_PRIVS))


# --- dropping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Privileges:
    """What ``drop`` did, for the start-up message and the run report."""

    uid: int
    needs: tuple[Need, ...]
    held_before: int  # permitted set at start
    kept: int
    bounding: int  # the bounding set after the drop
    bounding_reduced: bool
    no_new_privs: bool

    @property
    def dropped(self) -> int:
        return self.held_before & ~self.kept

    @property
    def missing(self) -> list[Need]:
        return [n for n in self.needs if not self.held_before >> n.cap & 1]

    def as_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "kept": names(self.kept),
            "dropped": names(self.dropped),
            "needs": [
                {
                    "cap": cap_name(n.cap),
                    "why": n.why,
                    "required": n.required,
                    "held": bool(self.kept >> n.cap & 1),
                }
                for n in self.needs
            ],
            "bounding_set": names(self.bounding),
            "bounding_reduced": self.bounding_reduced,
            "no_new_privs": self.no_new_privs,
        }

    def summary(self) -> str:
        kept = ", ".join(names(self.kept)) or "none"
        lines = [
            f"privileges: uid {self.uid}; kept {kept}; dropped {len(names(self.dropped))} other "
            f"capabilities; bounding set {'reduced' if self.bounding_reduced else 'unchanged'}"
            f"; no_new_privs {'on' if self.no_new_privs else 'off'}"
        ]
        for n in self.missing:
            kind = "needed" if n.required else "useful"
            lines.append(
                f"privileges: {cap_name(n.cap)} is {kind} ({n.why}) but not held: run as root, "
                f"or grant it (systemd AmbientCapabilities=, setpriv --ambient-caps +"
                f"{CAP_NAMES[n.cap]})"
            )
        if not self.bounding_reduced:
            lines.append(
                "privileges: the bounding set is left as it was (no CAP_SETPCAP to shrink it); "
                "no_new_privs still stops any exec from gaining capabilities"
            )
        return "\n".join(lines)


def drop(needs: Sequence[Need], kernel: Kernel | None = None) -> Privileges:
    """Keep exactly the capabilities in ``needs`` that this process holds; drop all others."""
    k = kernel if kernel is not None else LinuxCapabilities()
    threads = k.threads()
    if threads > 1:
        raise PrivilegeError(
            f"{threads} threads are running: capabilities belong to each thread, so they must "
            "be dropped before any thread starts"
        )
    before = k.get()
    keep = mask_of([n.cap for n in needs]) & before.permitted
    reduced = False
    if before.permitted >> CAP_SETPCAP & 1:
        # PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set, for just this step.
        k.set(CapSets(before.effective | 1 << CAP_SETPCAP, before.permitted, before.inheritable))
        bounding = k.bounding()
        for cap in range(k.last_cap() + 1):
            if bounding >> cap & 1 and not keep >> cap & 1:
                k.drop_bounding(cap)
        reduced = True
    k.clear_ambient()
    k.set(CapSets(keep, keep, 0))
    k.set_no_new_privs()
    after = k.get()
    if after.effective != keep or after.permitted != keep or k.ambient():
        raise PrivilegeError(
            f"capabilities are {names(after.permitted)} after dropping to {names(keep)}"
        )
    return Privileges(
        uid=os.geteuid(),
        needs=tuple(needs),
        held_before=before.permitted,
        kept=keep,
        bounding=k.bounding(),
        bounding_reduced=reduced,
        no_new_privs=k.no_new_privs(),
    )


def drop_for(cfg: FeederConfig, kernel: Kernel | None = None) -> Privileges:
    """``drop(needs(cfg))``: what ``feeder run`` calls first."""
    return drop(needs(cfg), kernel)
