"""Can this host run the AF_XDP send path: kernel options, BPF JIT, capabilities, BTF."""

from __future__ import annotations

import errno
import gzip
import os
import socket
import zlib
from collections.abc import Callable

from hosttune.change import Change, SetValue
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

AF_XDP = 44
JIT_ENABLE = "/proc/sys/net/core/bpf_jit_enable"
UNPRIVILEGED_BPF = "/proc/sys/kernel/unprivileged_bpf_disabled"
BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
REQUIRED_CONFIG = ("CONFIG_BPF_SYSCALL", "CONFIG_XDP_SOCKETS", "CONFIG_BPF_JIT")

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_BPF = 39
CAP_NAMES = {
    CAP_NET_ADMIN: "cap_net_admin",
    CAP_NET_RAW: "cap_net_raw",
    CAP_SYS_ADMIN: "cap_sys_admin",
    CAP_BPF: "cap_bpf",
}

_UNPRIVILEGED_BPF_MEANING = {
    "0": "unprivileged BPF allowed",
    "1": "unprivileged BPF disabled (until reboot)",
    "2": "unprivileged BPF disabled (root may re-enable it)",
}

_SOCKET_ERRORS = {
    errno.EAFNOSUPPORT: "the kernel has no AF_XDP sockets (built without CONFIG_XDP_SOCKETS)",
    errno.EPERM: "permission denied (needs CAP_NET_RAW)",
    errno.EACCES: "permission denied (needs CAP_NET_RAW)",
}


def open_af_xdp_socket() -> None:
    """Open and close an AF_XDP socket; raises OSError saying why the kernel refused."""
    socket.socket(AF_XDP, socket.SOCK_RAW, 0).close()


def parse_kernel_config(text: str) -> dict[str, str]:
    """``CONFIG_X=y`` lines to ``{"CONFIG_X": "y"}``; ``# CONFIG_X is not set`` gives ``"n"``."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            options[key] = value.strip('"')
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[2:].split()[0]] = "n"
    return options


def read_kernel_config(host: Host) -> tuple[dict[str, str], str]:
    """The running kernel's build options and the file they came from.

    Tries /proc/config.gz, then /boot/config-<release>; raises HostError saying why neither
    could be used.
    """
    problems = []
    try:
        text = gzip.decompress(host.read_bytes("/proc/config.gz")).decode("utf-8", "replace")
        options = parse_kernel_config(text)
        if options:
            return options, "/proc/config.gz"
        problems.append("/proc/config.gz holds no CONFIG_ lines")
    except HostError as e:
        problems.append(str(e))
    except (OSError, EOFError, zlib.error) as e:
        problems.append(f"/proc/config.gz is not valid gzip ({e})")
    try:
        release = host.read("/proc/sys/kernel/osrelease").strip()
    except HostError as e:
        problems.append(f"kernel release unknown: {e}")
        raise HostError("; ".join(problems)) from e
    path = f"/boot/config-{release}"
    try:
        options = parse_kernel_config(host.read(path))
    except HostError as e:
        problems.append(str(e))
        raise HostError("; ".join(problems)) from e
    if not options:
        problems.append(f"{path} holds no CONFIG_ lines")
        raise HostError("; ".join(problems))
    return options, path


def parse_cap_eff(status: str) -> int | None:
    """The effective capability mask from /proc/<pid>/status text; None when absent/garbled."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def _has(mask: int, cap: int) -> bool:
    return bool(mask & (1 << cap))


class BpfKnob(Knob):
    """What the AF_XDP send path needs from the kernel and from its process (``[bpf]``).

    - ``bpf.kernel_config``: the kernel was built with CONFIG_BPF_SYSCALL, CONFIG_XDP_SOCKETS
      and CONFIG_BPF_JIT (read from /proc/config.gz or /boot/config-<release>).
    - ``bpf.jit``: the BPF JIT is on (``net.core.bpf_jit_enable = 1``); ``apply`` turns it on.
    - ``bpf.privileges``: this process holds CAP_NET_ADMIN (attach XDP), CAP_NET_RAW (open
      AF_XDP sockets) and CAP_BPF or CAP_SYS_ADMIN (load programs, create maps). Run the check
      as the feeder's user to check the feeder; ``unprivileged_bpf_disabled`` is shown too.
    - ``bpf.af_xdp_socket``: on the running host, an AF_XDP socket really opens.
    - ``bpf.btf``: /sys/kernel/btf/vmlinux exists; only bcc and CO-RE tools need it, so its
      absence is a warning.

    Example::

        [bpf]
        af_xdp = true     # false: the feeder sends with plain UDP sockets; nothing to check
    """

    id = "bpf"
    title = "BPF / AF_XDP"

    def __init__(self, open_xdp_socket: Callable[[], None] = open_af_xdp_socket) -> None:
        self.open_xdp_socket = open_xdp_socket

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        if not profile.bpf.af_xdp:
            return [skip("bpf", "BPF / AF_XDP", "[bpf] af_xdp = false: AF_XDP is not used")]
        return [
            self._kernel_config(host),
            self._jit(host),
            self._privileges(host),
            self._af_xdp_socket(host),
            self._btf(host),
        ]

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        if not profile.bpf.af_xdp:
            return []
        current = host.read_opt(JIT_ENABLE)
        if current is None or current.strip() not in ("0", "2"):
            return []
        # The old value is kept byte for byte so revert restores exactly what was there.
        return [SetValue(path=JIT_ENABLE, old=current, new="1")]

    @staticmethod
    def _kernel_config(host: Host) -> CheckResult:
        rid, title = "bpf.kernel_config", "kernel built with BPF and AF_XDP"
        expected = ", ".join(f"{k}=y" for k in REQUIRED_CONFIG)
        try:
            options, source = read_kernel_config(host)
        except HostError as e:
            return skip(rid, title, f"no readable kernel config: {e}", expected)
        values = {k: options.get(k, "absent") for k in REQUIRED_CONFIG}
        observed = ", ".join(f"{k}={v}" for k, v in values.items()) + f" (from {source})"
        missing = [k for k, v in values.items() if v not in ("y", "m")]
        if not missing:
            return CheckResult(rid, title, Status.PASS, observed, expected)
        fix = "boot a kernel built with " + ", ".join(f"{k}=y" for k in missing)
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix, reboot=True)

    @staticmethod
    def _jit(host: Host) -> CheckResult:
        rid, title = "bpf.jit", "BPF JIT compiler"
        expected = "1 (BPF programs compiled to native code)"
        try:
            value = host.read(JIT_ENABLE).strip()
        except HostError as e:
            return skip(rid, title, f"kernel exposes no BPF JIT switch: {e}", expected)
        fix = (
            "hosttune apply, or: sysctl -w net.core.bpf_jit_enable=1 (persist it with "
            '"net.core.bpf_jit_enable" = 1 in [sysctl])'
        )
        if value == "1":
            return CheckResult(rid, title, Status.PASS, "1 (on)", expected)
        if value == "0":
            return CheckResult(rid, title, Status.FAIL, "0 (programs interpreted)", expected, fix)
        if value == "2":
            observed = "2 (on, but every program is dumped to the kernel log)"
            return CheckResult(rid, title, Status.WARN, observed, expected, fix)
        return skip(rid, title, f"unexpected value {value[:40]!r} in {JIT_ENABLE}", expected)

    @staticmethod
    def _privileges(host: Host) -> CheckResult:
        rid, title = "bpf.privileges", "capabilities for BPF and AF_XDP"
        expected = "cap_net_admin, cap_net_raw and cap_bpf (or cap_sys_admin)"
        try:
            cap_eff = parse_cap_eff(host.read("/proc/self/status"))
        except HostError as e:
            return skip(rid, title, f"cannot read this process's capabilities: {e}", expected)
        if cap_eff is None:
            return skip(rid, title, "no readable CapEff line in /proc/self/status", expected)
        held = [name for cap, name in sorted(CAP_NAMES.items()) if _has(cap_eff, cap)]
        missing = [CAP_NAMES[c] for c in (CAP_NET_ADMIN, CAP_NET_RAW) if not _has(cap_eff, c)]
        if not (_has(cap_eff, CAP_BPF) or _has(cap_eff, CAP_SYS_ADMIN)):
            missing.append("cap_bpf (or cap_sys_admin)")
        unpriv = host.read_opt(UNPRIVILEGED_BPF)
        unpriv_text = (
            "unprivileged_bpf_disabled not exposed"
            if unpriv is None
            else _UNPRIVILEGED_BPF_MEANING.get(
                unpriv.strip(), f"unprivileged_bpf_disabled = {unpriv.strip()[:20]!r}"
            )
        )
        observed = (
            f"this process (CapEff {cap_eff:#x}) holds {', '.join(held) or 'none of them'}; "
            f"{unpriv_text}"
        )
        if not missing:
            return CheckResult(rid, title, Status.PASS, observed, expected)
        fix = (
            f"missing {', '.join(missing)}: run the feeder as root, or grant them in its systemd "
            "unit (AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_NET_RAW)"
        )
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix)

    def _af_xdp_socket(self, host: Host) -> CheckResult:
        rid, title = "bpf.af_xdp_socket", "AF_XDP socket"
        expected = "socket(AF_XDP, SOCK_RAW, 0) opens"
        if not host.is_live:
            return skip(
                rid, title, "not the running host: sockets can only be tried on /", expected
            )
        try:
            self.open_xdp_socket()
        except OSError as e:
            code = e.errno or 0
            why = _SOCKET_ERRORS.get(code) or os.strerror(code)
            observed = f"socket(AF_XDP) failed: {why} ({errno.errorcode.get(code, code)})"
            fix = (
                "boot a kernel with CONFIG_XDP_SOCKETS=y"
                if code == errno.EAFNOSUPPORT
                else "run as root or with CAP_NET_RAW"
            )
            return CheckResult(
                rid, title, Status.FAIL, observed, expected, fix, code == errno.EAFNOSUPPORT
            )
        return CheckResult(rid, title, Status.PASS, "opened and closed an AF_XDP socket", expected)

    @staticmethod
    def _btf(host: Host) -> CheckResult:
        rid, title = "bpf.btf", "kernel BTF type information"
        expected = f"{BTF_VMLINUX} present (needed by bcc and CO-RE tools only)"
        if host.exists(BTF_VMLINUX):
            return CheckResult(rid, title, Status.PASS, "present", expected)
        return CheckResult(
            rid,
            title,
            Status.WARN,
            f"{BTF_VMLINUX} absent: bcc/CO-RE tracing tools cannot run; AF_XDP works without it",
            expected,
            "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (only for bcc/CO-RE tools)",
            reboot=True,
        )
