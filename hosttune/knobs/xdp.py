"""Which AF_XDP mode works on each feeder NIC, found by binding a real AF_XDP socket."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from hosttune.host import Host
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

#: The queue the feeder binds (its default), and so the one probed.
PROBE_QUEUE = 0


@dataclass(frozen=True)
class ModeProbe:
    """What binding an AF_XDP socket said, per mode: None when it worked, else why not."""

    zerocopy: str | None
    copy: str | None
    busy: bool = False  # the queue already had an AF_XDP socket
    denied: bool = False  # no permission to open one


def probe_modes(ifname: str, queue: int = PROBE_QUEUE) -> ModeProbe:
    """Bind a throwaway AF_XDP socket (128 KiB UMEM, no traffic) to ``queue`` of ``ifname`` in
    zero-copy mode, then in copy mode, in this thread's network namespace."""
    from xdp.umem import Umem, UmemError
    from xdp.xsk import MODES, XskError, XskSocket

    try:
        umem = Umem.allocate(64, 2048, huge_pages="never")
    except UmemError as e:
        return ModeProbe(str(e), str(e))
    reasons: dict[str, str | None] = {}
    busy = denied = False
    try:
        for mode in MODES:
            try:
                XskSocket.open(
                    umem, ifname, queue=queue, mode=mode, tx_size=64, completion_size=64
                ).close()
            except XskError as e:
                reasons[mode] = e.reason
                busy |= e.errno == errno.EBUSY
                denied |= e.errno in (errno.EPERM, errno.EACCES)
            else:
                reasons[mode] = None
    finally:
        umem.close()
    return ModeProbe(reasons["zerocopy"], reasons["copy"], busy, denied)


class XdpKnob(Knob):
    """Which AF_XDP mode the feeder will get on each NIC (``[nic] interfaces``, ``[bpf]``).

    - ``xdp.<if>.mode``: on the running host, binds a throwaway AF_XDP socket to queue 0 of
      the interface in zero-copy mode, then in copy mode, and reports which works and why the
      other does not, e.g. "copy mode works; zero-copy: EOPNOTSUPP (driver veth has no AF_XDP
      zero-copy support)". ``pass``: zero-copy works (the NIC reads frames straight from the
      feeder's memory). ``warn``: only copy mode (the kernel copies each frame: slower, still
      kernel-bypass on the send path). ``fail``: neither; the feeder falls back to kernel UDP.

    Skipped off the running host and with ``[bpf] af_xdp = false``. The probe needs
    CAP_NET_RAW (run the check as the feeder's user to check the feeder); it sends nothing and
    attaches no program, but queue 0 must be free: with a feeder running on it the row says
    the queue is busy. Some drivers restart the queue when zero-copy is enabled, which can
    drop a few packets on it: run the check before traffic, not during.
    """

    id = "xdp"
    title = "AF_XDP mode"
    privilege = "nothing is changed; the probe needs CAP_NET_RAW"

    def __init__(self, probe: Callable[[str], ModeProbe] = probe_modes) -> None:
        self.probe = probe

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        if not profile.bpf.af_xdp:
            return [skip("xdp", self.title, "[bpf] af_xdp = false: AF_XDP is not used")]
        names, rows = self._interfaces(host, profile)
        if not names and not rows:
            return [skip("xdp", self.title, "no interfaces listed in [nic] interfaces")]
        for ifname in names:
            rows.append(self._mode(host, ifname))
        return rows

    @staticmethod
    def _interfaces(host: Host, profile: Profile) -> tuple[list[str], list[CheckResult]]:
        names: list[str] = []
        rows: list[CheckResult] = []
        for name in profile.nic.interfaces:
            if name == "auto":
                found = host.nic.default_route_interface()
                if found is None:
                    why = 'no IPv4 default route, so interfaces = ["auto"] names no interface'
                    rows.append(skip("xdp.auto", "AF_XDP mode of the default-route NIC", why))
                    continue
                name = found
            if name not in names:
                names.append(name)
        return names, rows

    def _mode(self, host: Host, ifname: str) -> CheckResult:
        rid, title = f"xdp.{ifname}.mode", f"AF_XDP mode on {ifname}"
        expected = f"zero-copy binds on queue {PROBE_QUEUE} (copy mode at least)"
        if not host.is_live:
            return skip(
                rid, title, "not the running host: sockets can only be tried on /", expected
            )
        try:
            found = self.probe(ifname)
        except ImportError as e:
            return skip(rid, title, f"AF_XDP support cannot be loaded: {e}", expected)
        if found.zerocopy is None:
            copy = "copy mode too" if found.copy is None else f"copy mode: {found.copy}"
            return CheckResult(rid, title, Status.PASS, f"zero-copy works ({copy})", expected)
        if found.copy is None:
            observed = f"copy mode works; zero-copy: {found.zerocopy}"
            fix = (
                f"for zero-copy, send from a NIC whose driver supports AF_XDP zero-copy (e.g. "
                f"ice, i40e, ixgbe, igc, mlx5_core) instead of {ifname}; copy mode works meanwhile"
            )
            return CheckResult(rid, title, Status.WARN, observed, expected, fix)
        if found.zerocopy == found.copy:
            observed = f"neither mode works: {found.copy}"
        else:
            observed = f"neither mode works; zero-copy: {found.zerocopy}; copy: {found.copy}"
        if found.denied:
            fix = "run the feeder (and this check) as root or with CAP_NET_RAW"
        elif found.busy:
            fix = (
                f"queue {PROBE_QUEUE} of {ifname} is held by another AF_XDP socket: stop it "
                "(a running feeder?) and check again"
            )
        else:
            fix = (
                "fix the cause above; until then the feeder sends with kernel UDP "
                "([bpf] af_xdp = false stops checking)"
            )
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix)
