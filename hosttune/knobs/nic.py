"""NIC settings for low latency: timestamping, RX ring size, interrupt coalescing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hosttune.change import Change
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.nicprobe import (
    HARDWARE_TIMESTAMPING,
    HWTSTAMP_FILTER_ALL,
    HWTSTAMP_TX_ON,
    SOF_TIMESTAMPING_NAMES,
    SOFTWARE_TIMESTAMPING,
    HwTstampConfig,
    NicUnsupported,
    Rings,
    TsInfo,
    describe_hwtstamp,
    describe_rx_filters,
    describe_timestamping,
    describe_tx_types,
    flag_names,
)
from hosttune.profile import NicSection, Profile
from hosttune.result import CheckResult, Status, skip

WANTED_HWTSTAMP = HwTstampConfig(flags=0, tx_type=HWTSTAMP_TX_ON, rx_filter=HWTSTAMP_FILTER_ALL)


@dataclass(frozen=True)
class SetHwTstamp(Change):
    """Configure hardware timestamping (SIOCSHWTSTAMP); undo restores the old configuration."""

    kind: ClassVar[str] = "nic-hwtstamp"
    runtime: ClassVar[bool] = True
    ifname: str
    old_flags: int
    old_tx_type: int
    old_rx_filter: int
    new_flags: int
    new_tx_type: int
    new_rx_filter: int

    @staticmethod
    def between(ifname: str, old: HwTstampConfig, new: HwTstampConfig) -> SetHwTstamp:
        return SetHwTstamp(
            ifname=ifname,
            old_flags=old.flags,
            old_tx_type=old.tx_type,
            old_rx_filter=old.rx_filter,
            new_flags=new.flags,
            new_tx_type=new.tx_type,
            new_rx_filter=new.rx_filter,
        )

    @property
    def old(self) -> HwTstampConfig:
        return HwTstampConfig(self.old_flags, self.old_tx_type, self.old_rx_filter)

    @property
    def new(self) -> HwTstampConfig:
        return HwTstampConfig(self.new_flags, self.new_tx_type, self.new_rx_filter)

    def do(self, host: Host) -> None:
        self._set(host, self.new)

    def undo(self, host: Host) -> None:
        self._set(host, self.old)

    def _set(self, host: Host, cfg: HwTstampConfig) -> None:
        try:
            host.nic.set_hwtstamp(self.ifname, cfg)
        except NicUnsupported as e:
            raise HostError(str(e)) from e

    def describe(self) -> str:
        return (
            f"hardware timestamping on {self.ifname}: {describe_hwtstamp(self.old)} -> "
            f"{describe_hwtstamp(self.new)}"
        )


@dataclass(frozen=True)
class SetRings(Change):
    """Resize the RX/TX rings (ETHTOOL_SRINGPARAM); undo restores the old sizes."""

    kind: ClassVar[str] = "nic-rings"
    runtime: ClassVar[bool] = True
    ifname: str
    old_rx: int
    old_tx: int
    new_rx: int
    new_tx: int

    def do(self, host: Host) -> None:
        self._set(host, self.new_rx, self.new_tx)

    def undo(self, host: Host) -> None:
        self._set(host, self.old_rx, self.old_tx)

    def _set(self, host: Host, rx: int, tx: int) -> None:
        try:
            host.nic.set_rings(self.ifname, rx, tx)
        except NicUnsupported as e:
            raise HostError(str(e)) from e

    def describe(self) -> str:
        return (
            f"ring sizes on {self.ifname}: rx {self.old_rx} -> {self.new_rx}, "
            f"tx {self.old_tx} -> {self.new_tx}"
        )


def _missing(have: int, need: int) -> str:
    return ", ".join(flag_names(need & ~have, SOF_TIMESTAMPING_NAMES))


def _capabilities(ts: TsInfo) -> str:
    clock = f"PTP hardware clock /dev/ptp{ts.phc_index}" if ts.phc_index >= 0 else "no PTP clock"
    return f"{describe_timestamping(ts.so_timestamping)}; {clock}"


def _can_hw_all(ts: TsInfo) -> bool:
    """The NIC accepts tx_type ON and rx_filter ALL (the configuration hosttune asks for)."""
    return bool(ts.tx_types & (1 << HWTSTAMP_TX_ON)) and bool(
        ts.rx_filters & (1 << HWTSTAMP_FILTER_ALL)
    )


def _ring_target(rx_ring: str, rings: Rings) -> int:
    return rings.rx_max if rx_ring == "max" else int(rx_ring)


class NicKnob(Knob):
    """Timestamping, RX ring size and interrupt coalescing of the feeder's NICs (``[nic]``).

    For every interface listed (``"auto"`` = the interface of the IPv4 default route):

    - ``nic.<if>.exists``: the interface is there (else the row lists the ones that are).
    - ``nic.<if>.timestamping.capability``: ``hardware`` needs TX/RX/raw hardware timestamps
      and a PTP hardware clock; ``software`` needs TX/RX software timestamps (``ethtool -T``).
    - ``nic.<if>.timestamping.config``: in hardware mode the NIC must be set to timestamp every
      packet (SIOCGHWTSTAMP shows tx on, rx filter all). ``apply`` sets it (SIOCSHWTSTAMP).
    - ``nic.<if>.rings``: the RX ring is at its maximum, or at least ``rx_ring`` descriptors,
      so a burst does not overflow it. ``apply`` resizes it (TX is left as it is).
    - ``nic.<if>.coalesce``: adaptive RX coalescing is off and, when ``rx_usecs_max`` is set,
      the NIC waits at most that many µs before raising an RX interrupt. Reported only: fix
      with ``ethtool -C``.

    Example::

        [nic]
        interfaces = ["auto"]      # or ["ens1f0"]
        timestamping = "hardware"  # "software" on NICs without PTP, or "none"
        rx_ring = "max"            # or a number of descriptors; omit to not check
        rx_usecs_max = 0           # omit to check only that adaptive RX is off

    Drivers keep these settings only until the interface is reset or the host reboots, so run
    ``hosttune apply`` at boot. Resizing rings briefly takes the link down on many NICs. A PTP
    daemon (ptp4l) sets hardware timestamping itself while it runs; ``revert`` restores what was
    set before ``apply``, so revert before starting ptp4l, not after.
    """

    id = "nic"
    title = "network interface"
    privilege = "root (CAP_NET_ADMIN for SIOCSHWTSTAMP and ETHTOOL_SRINGPARAM)"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        nic = profile.nic
        if not nic.interfaces:
            return [skip("nic", "NIC settings", "no interfaces listed in [nic] interfaces")]
        names, rows = self._resolve(host, nic)
        try:
            present: list[str] | None = host.nic.interfaces()
            listing_error = ""
        except NicUnsupported as e:
            present, listing_error = None, str(e)
        for ifname in names:
            p = f"nic.{ifname}"
            exists_title = f"interface {ifname}"
            if present is None:
                rows.append(skip(f"{p}.exists", exists_title, listing_error, "present"))
            elif ifname not in present:
                rows.append(
                    CheckResult(
                        id=f"{p}.exists",
                        title=exists_title,
                        status=Status.FAIL,
                        observed=f"no interface {ifname} (this host has: "
                        f"{', '.join(present) or 'none'})",
                        expected="present",
                        fix="name an existing interface in [nic] interfaces, or create/rename "
                        f"the interface {ifname}",
                    )
                )
                continue
            else:
                rows.append(
                    CheckResult(f"{p}.exists", exists_title, Status.PASS, "present", "present")
                )
            rows.append(self._ts_capability(host, ifname, nic.timestamping))
            rows.append(self._ts_config(host, ifname, nic.timestamping))
            if nic.rx_ring is not None:
                rows.append(self._rings(host, ifname, nic.rx_ring))
            rows.append(self._coalesce(host, ifname, nic.rx_usecs_max))
        return rows

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        nic = profile.nic
        changes: list[Change] = []
        names, _ = self._resolve(host, nic)
        for ifname in names:
            if nic.timestamping == "hardware":
                changes += self._plan_hwtstamp(host, ifname)
            if nic.rx_ring is not None:
                changes += self._plan_rings(host, ifname, nic.rx_ring)
        return changes

    # --- interfaces -----------------------------------------------------------------------

    @staticmethod
    def _resolve(host: Host, nic: NicSection) -> tuple[list[str], list[CheckResult]]:
        """Profile names with "auto" replaced by the default-route interface, without repeats,
        and a skip row when "auto" names nothing."""
        names: list[str] = []
        rows: list[CheckResult] = []
        for name in nic.interfaces:
            if name == "auto":
                found = host.nic.default_route_interface()
                if found is None:
                    rows.append(
                        skip(
                            "nic.auto",
                            "default-route interface",
                            'no IPv4 default route, so interfaces = ["auto"] names no interface',
                            "an interface with the default route",
                        )
                    )
                    continue
                name = found
            if name not in names:
                names.append(name)
        return names, rows

    # --- timestamping ---------------------------------------------------------------------

    @staticmethod
    def _ts_capability(host: Host, ifname: str, mode: str) -> CheckResult:
        rid, title = f"nic.{ifname}.timestamping.capability", f"{ifname} timestamping capability"
        need = {"hardware": HARDWARE_TIMESTAMPING, "software": SOFTWARE_TIMESTAMPING}.get(mode, 0)
        expected = {
            "hardware": f"{describe_timestamping(need)} and a PTP hardware clock",
            "software": describe_timestamping(need),
        }.get(mode, 'nothing ([nic] timestamping = "none")')
        try:
            ts = host.nic.ts_info(ifname)
        except NicUnsupported as e:
            return skip(rid, title, f"cannot query timestamping: {e}", expected)
        missing = _missing(ts.so_timestamping, need)
        if mode == "hardware" and ts.phc_index < 0:
            missing = ", ".join(filter(None, [missing, "a PTP hardware clock"]))
        if not missing:
            return CheckResult(rid, title, Status.PASS, _capabilities(ts), expected)
        if mode == "hardware":
            fix = (
                f"{ifname} cannot timestamp in hardware (lacks {missing}): use a PTP-capable NIC "
                "(`ethtool -T` lists hardware-transmit, hardware-receive, hardware-raw-clock and "
                'a PTP Hardware Clock) or set [nic] timestamping = "software"'
            )
        else:
            fix = (
                f"the {ifname} driver lacks {missing}: use an interface whose `ethtool -T` lists "
                "software-transmit, software-receive and software-system-clock, or set [nic] "
                'timestamping = "none"'
            )
        return CheckResult(rid, title, Status.FAIL, _capabilities(ts), expected, fix)

    @staticmethod
    def _ts_config(host: Host, ifname: str, mode: str) -> CheckResult:
        rid, title = f"nic.{ifname}.timestamping.config", f"{ifname} hardware timestamping setting"
        hardware = mode == "hardware"
        expected = (
            describe_hwtstamp(WANTED_HWTSTAMP)
            if hardware
            else f'not checked ([nic] timestamping = "{mode}")'
        )
        try:
            cfg = host.nic.get_hwtstamp(ifname)
        except NicUnsupported as e:
            if not hardware:
                return skip(
                    rid, title, f"no hardware timestamping setting to report: {e}", expected
                )
            return CheckResult(
                rid,
                title,
                Status.FAIL,
                f"the driver has no hardware timestamping setting: {e}",
                expected,
                "use a NIC whose driver supports SIOCSHWTSTAMP, or set [nic] timestamping = "
                '"software"',
            )
        if not hardware or cfg == WANTED_HWTSTAMP:
            return CheckResult(rid, title, Status.PASS, describe_hwtstamp(cfg), expected)
        fix = f"hosttune apply (SIOCSHWTSTAMP on {ifname}: tx on, rx filter all)"
        try:
            ts = host.nic.ts_info(ifname)
            if not _can_hw_all(ts):
                fix = (
                    f"{ifname} cannot timestamp all packets (tx types: "
                    f"{describe_tx_types(ts.tx_types)}; rx filters: "
                    f"{describe_rx_filters(ts.rx_filters)}): use a NIC that can, or set [nic] "
                    'timestamping = "software"'
                )
        except NicUnsupported:
            pass  # the capability row reports why; keep the apply hint
        return CheckResult(rid, title, Status.FAIL, describe_hwtstamp(cfg), expected, fix)

    @staticmethod
    def _plan_hwtstamp(host: Host, ifname: str) -> list[Change]:
        try:
            ts = host.nic.ts_info(ifname)
            cfg = host.nic.get_hwtstamp(ifname)
        except NicUnsupported:
            return []  # nothing that can be set here; check says why
        if cfg == WANTED_HWTSTAMP or not _can_hw_all(ts):
            return []
        return [SetHwTstamp.between(ifname, cfg, WANTED_HWTSTAMP)]

    # --- rings and coalescing -------------------------------------------------------------

    @staticmethod
    def _rings(host: Host, ifname: str, rx_ring: str) -> CheckResult:
        rid, title = f"nic.{ifname}.rings", f"{ifname} RX ring size"
        expected = "RX ring at its maximum" if rx_ring == "max" else f"RX ring >= {rx_ring}"
        try:
            rings = host.nic.get_rings(ifname)
        except NicUnsupported as e:
            return skip(rid, title, f"driver does not report ring sizes ({e})", expected)
        if rings.rx_max == 0:
            return skip(rid, title, "driver reports no RX ring maximum", expected)
        target = _ring_target(rx_ring, rings)
        observed = f"RX {rings.rx} of max {rings.rx_max} (TX {rings.tx} of max {rings.tx_max})"
        if rx_ring == "max":
            expected = f"RX ring at its maximum ({rings.rx_max})"
        if rings.rx >= target:
            return CheckResult(rid, title, Status.PASS, observed, expected)
        if target > rings.rx_max:
            fix = f"{ifname}'s RX ring holds at most {rings.rx_max}: lower [nic] rx_ring"
        else:
            fix = f"hosttune apply, or: ethtool -G {ifname} rx {target}"
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix)

    @staticmethod
    def _plan_rings(host: Host, ifname: str, rx_ring: str) -> list[Change]:
        try:
            rings = host.nic.get_rings(ifname)
        except NicUnsupported:
            return []
        target = _ring_target(rx_ring, rings)
        if rings.rx >= target or target > rings.rx_max:
            return []
        return [
            SetRings(
                ifname=ifname, old_rx=rings.rx, old_tx=rings.tx, new_rx=target, new_tx=rings.tx
            )
        ]

    @staticmethod
    def _coalesce(host: Host, ifname: str, rx_usecs_max: int | None) -> CheckResult:
        rid, title = f"nic.{ifname}.coalesce", f"{ifname} RX interrupt coalescing"
        expected = "adaptive RX off" + (
            "" if rx_usecs_max is None else f", rx-usecs <= {rx_usecs_max}"
        )
        try:
            co = host.nic.get_coalesce(ifname)
        except NicUnsupported as e:
            return skip(rid, title, f"driver does not report interrupt coalescing ({e})", expected)
        observed = (
            f"adaptive RX {'on' if co.use_adaptive_rx else 'off'}, rx-usecs {co.rx_usecs}, "
            f"rx-frames {co.rx_max_frames}"
        )
        too_slow = rx_usecs_max is not None and co.rx_usecs > rx_usecs_max
        if not co.use_adaptive_rx and not too_slow:
            return CheckResult(rid, title, Status.PASS, observed, expected)
        usecs = co.rx_usecs if rx_usecs_max is None else min(co.rx_usecs, rx_usecs_max)
        fix = f"ethtool -C {ifname} adaptive-rx off rx-usecs {usecs}"
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix)
