"""NicKnob: every row on fake NICs, plan -> apply -> check -> revert through the journal, and the
real state of this VM and of a veth in a private namespace."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hosttune import engine
from hosttune.change import Change
from hosttune.host import Host, HostError
from hosttune.journal import Journal
from hosttune.knobs.nic import NicKnob, SetHwTstamp, SetRings
from hosttune.nicprobe import (
    HARDWARE_TIMESTAMPING,
    HWTSTAMP_FILTER_ALL,
    HWTSTAMP_FILTER_NONE,
    HWTSTAMP_FILTER_PTP_V2_EVENT,
    HWTSTAMP_TX_OFF,
    HWTSTAMP_TX_ON,
    SOF_TIMESTAMPING_RX_SOFTWARE,
    SOF_TIMESTAMPING_SOFTWARE,
    SOFTWARE_TIMESTAMPING,
    Coalesce,
    HwTstampConfig,
    IoctlNicProbe,
    NicUnsupported,
    Rings,
    TsInfo,
)
from hosttune.profile import Profile, load_profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import FakeNic, fake_host, profile
from tests.privilege import require_root

SOFTWARE_ONLY = TsInfo(
    so_timestamping=SOFTWARE_TIMESTAMPING, phc_index=-1, tx_types=0, rx_filters=0
)
PTP_NIC = TsInfo(
    so_timestamping=HARDWARE_TIMESTAMPING | SOFTWARE_TIMESTAMPING,
    phc_index=0,
    tx_types=(1 << HWTSTAMP_TX_OFF) | (1 << HWTSTAMP_TX_ON),
    rx_filters=(1 << HWTSTAMP_FILTER_NONE) | (1 << HWTSTAMP_FILTER_ALL),
)
HW_OFF = HwTstampConfig(flags=0, tx_type=HWTSTAMP_TX_OFF, rx_filter=HWTSTAMP_FILTER_NONE)
HW_ON = HwTstampConfig(flags=0, tx_type=HWTSTAMP_TX_ON, rx_filter=HWTSTAMP_FILTER_ALL)
QUIET = Coalesce(rx_usecs=0, rx_max_frames=1, tx_usecs=0, use_adaptive_rx=False)


def nic_profile(**nic: object) -> Profile:
    return profile(nic={"interfaces": ["eth0"], "rx_ring": "max", **nic})


def ptp_nic(**overrides: Any) -> FakeNic:
    """A PTP-capable eth0 with hardware timestamping off and half-size rings."""
    fields: dict[str, Any] = {
        "ts": {"eth0": PTP_NIC},
        "hwtstamp": {"eth0": HW_OFF},
        "rings": {"eth0": Rings(rx=512, rx_max=4096, tx=512, tx_max=4096)},
        "coalesce": {"eth0": QUIET},
    }
    fields.update(overrides)
    return FakeNic(**fields)


def rows_by_id(tmp_path: Path, nic: FakeNic, prof: Profile) -> dict[str, CheckResult]:
    rows = NicKnob().check(fake_host(tmp_path, {}, nic=nic), prof)
    by_id = {r.id: r for r in rows}
    assert len(by_id) == len(rows), "row ids must be unique"
    return by_id


# --- interfaces -----------------------------------------------------------------------------


def test_no_interfaces_in_profile_is_one_skip(tmp_path: Path) -> None:
    rows = NicKnob().check(fake_host(tmp_path, {}), profile(nic={"interfaces": []}))
    assert [(r.id, r.status) for r in rows] == [("nic", Status.SKIP)]
    assert "no interfaces" in rows[0].observed


def test_auto_means_the_default_route_interface(tmp_path: Path) -> None:
    nic = ptp_nic(names=["lo", "eth0", "eth1"], default_iface="eth1", ts={"eth1": SOFTWARE_ONLY})
    rows = rows_by_id(tmp_path, nic, profile(nic={"interfaces": ["auto"]}))
    assert rows["nic.eth1.exists"].status is Status.PASS
    assert rows["nic.eth1.timestamping.capability"].status is Status.PASS
    assert not any(i.startswith("nic.eth0") for i in rows)


def test_auto_and_the_same_name_are_checked_once(tmp_path: Path) -> None:
    rows = NicKnob().check(
        fake_host(tmp_path, {}, nic=ptp_nic()), profile(nic={"interfaces": ["auto", "eth0"]})
    )
    assert [r.id for r in rows].count("nic.eth0.exists") == 1


def test_auto_without_default_route_is_a_skip_row(tmp_path: Path) -> None:
    nic = ptp_nic(default_iface=None)
    rows = NicKnob().check(fake_host(tmp_path, {}, nic=nic), profile(nic={"interfaces": ["auto"]}))
    assert [(r.id, r.status) for r in rows] == [("nic.auto", Status.SKIP)]
    assert "no IPv4 default route" in rows[0].observed


def test_absent_interface_fails_listing_the_present_ones(tmp_path: Path) -> None:
    rows = NicKnob().check(
        fake_host(tmp_path, {}, nic=ptp_nic()), profile(nic={"interfaces": ["ens9", "eth0"]})
    )
    absent = rows[0]
    assert (absent.id, absent.status) == ("nic.ens9.exists", Status.FAIL)
    assert absent.observed == "no interface ens9 (this host has: lo, eth0)"
    assert "[nic] interfaces" in absent.fix
    # Nothing else is probed for the absent interface; eth0 still gets its rows.
    assert not any(r.id.startswith("nic.ens9.") and r is not absent for r in rows)
    assert "nic.eth0.coalesce" in {r.id for r in rows}


class UnlistableNic(FakeNic):
    def interfaces(self) -> list[str]:
        raise NicUnsupported("cannot list network interfaces: Operation not permitted")


def test_unlistable_interfaces_skip_the_exists_row_but_probe_the_rest(tmp_path: Path) -> None:
    base = ptp_nic()
    nic = UnlistableNic(
        ts=base.ts, hwtstamp=base.hwtstamp, rings=base.rings, coalesce=base.coalesce
    )
    rows = rows_by_id(tmp_path, nic, nic_profile())
    assert rows["nic.eth0.exists"].status is Status.SKIP
    assert "cannot list" in rows["nic.eth0.exists"].observed
    assert rows["nic.eth0.rings"].status is Status.FAIL


# --- timestamping capability ----------------------------------------------------------------


def test_software_capability_passes_on_a_software_nic(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(ts={"eth0": SOFTWARE_ONLY}), nic_profile())[
        "nic.eth0.timestamping.capability"
    ]
    assert row.status is Status.PASS
    assert row.observed == "tx_software, rx_software, software; no PTP clock"
    assert row.expected == "tx_software, rx_software, software"


def test_software_capability_fails_without_tx_timestamps(tmp_path: Path) -> None:
    rx_only = TsInfo(SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE, -1, 0, 0)
    row = rows_by_id(tmp_path, ptp_nic(ts={"eth0": rx_only}), nic_profile())[
        "nic.eth0.timestamping.capability"
    ]
    assert row.status is Status.FAIL
    assert row.observed == "rx_software, software; no PTP clock"
    assert "lacks tx_software" in row.fix


def test_hardware_capability_passes_with_ptp_clock(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(), nic_profile(timestamping="hardware"))[
        "nic.eth0.timestamping.capability"
    ]
    assert row.status is Status.PASS
    assert row.observed.endswith("; PTP hardware clock /dev/ptp0")
    assert "tx_hardware" in row.observed and "raw_hardware" in row.observed


def test_hardware_capability_fails_on_software_nic(tmp_path: Path) -> None:
    row = rows_by_id(
        tmp_path, ptp_nic(ts={"eth0": SOFTWARE_ONLY}), nic_profile(timestamping="hardware")
    )["nic.eth0.timestamping.capability"]
    assert row.status is Status.FAIL
    assert "lacks tx_hardware, rx_hardware, raw_hardware, a PTP hardware clock" in row.fix
    assert 'timestamping = "software"' in row.fix


def test_hardware_capability_needs_the_clock_too(tmp_path: Path) -> None:
    no_clock = TsInfo(PTP_NIC.so_timestamping, -1, PTP_NIC.tx_types, PTP_NIC.rx_filters)
    row = rows_by_id(
        tmp_path, ptp_nic(ts={"eth0": no_clock}), nic_profile(timestamping="hardware")
    )["nic.eth0.timestamping.capability"]
    assert row.status is Status.FAIL
    assert "lacks a PTP hardware clock" in row.fix


def test_no_timestamping_required_passes_anything(tmp_path: Path) -> None:
    nothing = TsInfo(0, -1, 0, 0)
    row = rows_by_id(tmp_path, ptp_nic(ts={"eth0": nothing}), nic_profile(timestamping="none"))[
        "nic.eth0.timestamping.capability"
    ]
    assert (row.status, row.observed) == (Status.PASS, "none; no PTP clock")


def test_unqueryable_timestamping_is_a_skip(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(ts={}), nic_profile())["nic.eth0.timestamping.capability"]
    assert row.status is Status.SKIP
    assert "not supported by the driver" in row.observed


# --- timestamping configuration -------------------------------------------------------------


def test_hardware_config_on_passes(tmp_path: Path) -> None:
    row = rows_by_id(
        tmp_path, ptp_nic(hwtstamp={"eth0": HW_ON}), nic_profile(timestamping="hardware")
    )["nic.eth0.timestamping.config"]
    assert (row.status, row.observed, row.expected) == (
        Status.PASS,
        "tx on, rx filter all",
        "tx on, rx filter all",
    )


def test_hardware_config_off_fails_and_apply_fixes_it(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(), nic_profile(timestamping="hardware"))[
        "nic.eth0.timestamping.config"
    ]
    assert (row.status, row.observed) == (Status.FAIL, "tx off, rx filter none")
    assert row.fix.startswith("hosttune apply")


def test_hardware_config_unsupported_fails_when_hardware_is_required(tmp_path: Path) -> None:
    rows = rows_by_id(tmp_path, ptp_nic(hwtstamp={}), nic_profile(timestamping="hardware"))
    row = rows["nic.eth0.timestamping.config"]
    assert row.status is Status.FAIL
    assert "no hardware timestamping setting" in row.observed
    assert "SIOCSHWTSTAMP" in row.fix


def test_hardware_config_unsupported_is_a_skip_for_software_mode(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(hwtstamp={}), nic_profile(timestamping="software"))[
        "nic.eth0.timestamping.config"
    ]
    assert row.status is Status.SKIP
    assert row.expected == 'not checked ([nic] timestamping = "software")'


def test_software_mode_reports_the_hardware_setting_without_judging(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(), nic_profile(timestamping="software"))[
        "nic.eth0.timestamping.config"
    ]
    assert (row.status, row.observed) == (Status.PASS, "tx off, rx filter none")


def test_nic_that_cannot_timestamp_everything_gets_no_apply_hint(tmp_path: Path) -> None:
    ptp_only = TsInfo(
        PTP_NIC.so_timestamping, 0, PTP_NIC.tx_types, 1 << HWTSTAMP_FILTER_PTP_V2_EVENT
    )
    nic = ptp_nic(ts={"eth0": ptp_only})
    prof = nic_profile(timestamping="hardware")
    row = rows_by_id(tmp_path, nic, prof)["nic.eth0.timestamping.config"]
    assert row.status is Status.FAIL
    assert "rx filters: ptp_v2_event" in row.fix and "hosttune apply" not in row.fix
    assert not [
        c
        for c in NicKnob().plan(fake_host(tmp_path, {}, nic=nic), prof)
        if isinstance(c, SetHwTstamp)
    ]


# --- rings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rx_ring", "rx", "status"),
    [
        ("max", 4096, Status.PASS),
        ("max", 512, Status.FAIL),
        (1024, 1024, Status.PASS),
        (1024, 2048, Status.PASS),
        (1024, 512, Status.FAIL),
    ],
)
def test_ring_size(tmp_path: Path, rx_ring: object, rx: int, status: Status) -> None:
    nic = ptp_nic(rings={"eth0": Rings(rx=rx, rx_max=4096, tx=256, tx_max=4096)})
    row = rows_by_id(tmp_path, nic, nic_profile(rx_ring=rx_ring))["nic.eth0.rings"]
    assert row.status is status
    assert row.observed == f"RX {rx} of max 4096 (TX 256 of max 4096)"
    target = 4096 if rx_ring == "max" else rx_ring
    assert row.fix == (
        "" if status is Status.PASS else f"hosttune apply, or: ethtool -G eth0 rx {target}"
    )


def test_ring_request_beyond_the_maximum(tmp_path: Path) -> None:
    nic = ptp_nic()
    prof = nic_profile(rx_ring=8192)
    row = rows_by_id(tmp_path, nic, prof)["nic.eth0.rings"]
    assert row.status is Status.FAIL
    assert row.fix == "eth0's RX ring holds at most 4096: lower [nic] rx_ring"
    assert NicKnob().plan(fake_host(tmp_path, {}, nic=nic), prof) == []


def test_rings_unsupported_or_unreported_are_skips(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(rings={}), nic_profile())["nic.eth0.rings"]
    assert row.status is Status.SKIP
    assert row.observed.startswith("driver does not report ring sizes")
    zeros = ptp_nic(rings={"eth0": Rings(0, 0, 0, 0)})
    assert rows_by_id(tmp_path, zeros, nic_profile())["nic.eth0.rings"].status is Status.SKIP


def test_rings_not_checked_when_profile_omits_rx_ring(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {}, nic=ptp_nic())
    prof = profile(nic={"interfaces": ["eth0"]})
    assert prof.nic.rx_ring is None
    assert all(r.id != "nic.eth0.rings" for r in NicKnob().check(host, prof))
    assert NicKnob().plan(host, prof) == []


# --- coalescing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("co", "usecs_max", "status"),
    [
        (QUIET, None, Status.PASS),
        (QUIET, 0, Status.PASS),
        (Coalesce(8, 1, 0, False), 10, Status.PASS),
        (Coalesce(50, 1, 0, False), 10, Status.FAIL),
        (Coalesce(50, 1, 0, False), None, Status.PASS),
        (Coalesce(0, 1, 0, True), None, Status.FAIL),
    ],
)
def test_coalescing(tmp_path: Path, co: Coalesce, usecs_max: int | None, status: Status) -> None:
    extra = {} if usecs_max is None else {"rx_usecs_max": usecs_max}
    row = rows_by_id(tmp_path, ptp_nic(coalesce={"eth0": co}), nic_profile(**extra))[
        "nic.eth0.coalesce"
    ]
    assert row.status is status
    adaptive = "on" if co.use_adaptive_rx else "off"
    assert (
        row.observed
        == f"adaptive RX {adaptive}, rx-usecs {co.rx_usecs}, rx-frames {co.rx_max_frames}"
    )
    if status is Status.FAIL:
        want = co.rx_usecs if usecs_max is None else usecs_max
        assert row.fix == f"ethtool -C eth0 adaptive-rx off rx-usecs {want}"


def test_coalescing_unsupported_is_a_skip(tmp_path: Path) -> None:
    row = rows_by_id(tmp_path, ptp_nic(coalesce={}), nic_profile(rx_usecs_max=0))[
        "nic.eth0.coalesce"
    ]
    assert row.status is Status.SKIP
    assert row.expected == "adaptive RX off, rx-usecs <= 0"


# --- plan, apply, revert --------------------------------------------------------------------


def test_compliant_host_plans_nothing(tmp_path: Path) -> None:
    nic = ptp_nic(hwtstamp={"eth0": HW_ON}, rings={"eth0": Rings(4096, 4096, 512, 4096)})
    host = fake_host(tmp_path, {}, nic=nic)
    prof = nic_profile(timestamping="hardware", rx_ring="max")
    assert NicKnob().plan(host, prof) == []
    assert all(r.status is Status.PASS for r in NicKnob().check(host, prof))


def test_software_mode_never_touches_hardware_timestamping(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {}, nic=ptp_nic())
    assert [type(c) for c in NicKnob().plan(host, nic_profile(timestamping="software"))] == [
        SetRings
    ]


def test_apply_then_revert_through_the_journal(tmp_path: Path) -> None:
    nic = ptp_nic()
    host = fake_host(tmp_path, {}, nic=nic)
    prof = nic_profile(timestamping="hardware", rx_ring="max")
    knob = NicKnob()
    steps = engine.plan(host, prof, [knob])
    assert [c for _, c in steps] == [
        SetHwTstamp.between("eth0", HW_OFF, HW_ON),
        SetRings(ifname="eth0", old_rx=512, old_tx=512, new_rx=4096, new_tx=512),
    ]
    journal = Journal(host)
    report = engine.apply(host, journal, steps)
    assert not report.failed and len(report.applied) == 2
    assert nic.hwtstamp["eth0"] == HW_ON
    assert nic.rings["eth0"] == Rings(rx=4096, rx_max=4096, tx=512, tx_max=4096)
    assert all(r.status is Status.PASS for r in knob.check(host, prof))
    assert knob.plan(host, prof) == []

    reverted = engine.revert(host, journal, [knob])
    assert not reverted.failed and len(reverted.reverted) == 2
    assert nic.hwtstamp["eth0"] == HW_OFF
    assert nic.rings["eth0"] == Rings(rx=512, rx_max=4096, tx=512, tx_max=4096)
    assert journal.entries() == []


def test_changes_survive_the_json_journal_and_describe_themselves() -> None:
    hw = SetHwTstamp.between("eth0", HwTstampConfig(1, 0, 12), HW_ON)
    rings = SetRings(ifname="eth0", old_rx=512, old_tx=256, new_rx=4096, new_tx=256)
    for change in (hw, rings):
        assert Change.from_json(json.loads(json.dumps(change.to_json()))) == change
        assert change.runtime and not change.needs_reboot()
    assert hw.describe() == (
        "hardware timestamping on eth0: tx off, rx filter ptp_v2_event, flags 0x1 -> "
        "tx on, rx filter all"
    )
    assert rings.describe() == "ring sizes on eth0: rx 512 -> 4096, tx 256 -> 256"


def test_driver_refusal_is_a_host_error(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {}, nic=ptp_nic(hwtstamp={}, rings={}))
    for change in (
        SetHwTstamp.between("eth0", HW_OFF, HW_ON),
        SetRings(ifname="eth0", old_rx=1, old_tx=1, new_rx=2, new_tx=2),
    ):
        with pytest.raises(HostError, match="not supported"):
            change.do(host)
        with pytest.raises(HostError, match="not supported"):
            change.undo(host)


# --- real host ------------------------------------------------------------------------------


def test_this_vm_reports_its_true_state() -> None:
    """Read only: the rows for the default-route NIC match what the probe itself says."""
    probe = IoctlNicProbe()
    ifname = probe.default_route_interface()
    rows = {r.id: r for r in NicKnob().check(Host(), load_profile())}
    if ifname is None:
        assert [r.status for r in rows.values()] == [Status.SKIP]
        return
    assert rows[f"nic.{ifname}.exists"].status is Status.PASS
    ts = probe.ts_info(ifname)
    sw_ok = ts.so_timestamping & SOFTWARE_TIMESTAMPING == SOFTWARE_TIMESTAMPING
    cap = rows[f"nic.{ifname}.timestamping.capability"]
    assert cap.status is (Status.PASS if sw_ok else Status.FAIL)
    try:
        rings: Rings | None = probe.get_rings(ifname)
    except NicUnsupported:
        rings = None
    ring_row = rows[f"nic.{ifname}.rings"]
    if rings is None or rings.rx_max == 0:
        assert ring_row.status is Status.SKIP
    else:
        assert ring_row.status is (Status.PASS if rings.rx >= rings.rx_max else Status.FAIL)
        assert ring_row.observed.startswith(f"RX {rings.rx} of max {rings.rx_max}")


CHECK_IN_NETNS = """
import json, sys
from hosttune.host import Host
from hosttune.knobs.nic import NicKnob
from hosttune.profile import parse_profile
prof = parse_profile(json.loads(sys.argv[1]), "test")
print(json.dumps([r.to_json() for r in NicKnob().check(Host(), prof)]))
print(json.dumps([c.to_json() for c in NicKnob().plan(Host(), prof)]))
"""


@pytest.fixture
def veth_netns(unique_prefix: str) -> Iterator[tuple[str, str]]:
    require_root("creates a network namespace with a veth pair")
    ns, veth = unique_prefix, unique_prefix + "a"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", veth, "type", "veth", "peer", "name", veth + "p"],
            check=True,
        )
        yield ns, veth
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_hardware_profile_on_a_real_veth(veth_netns: tuple[str, str]) -> None:
    ns, veth = veth_netns
    doc = {"nic": {"interfaces": [veth], "timestamping": "hardware", "rx_ring": "max"}}
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CHECK_IN_NETNS, json.dumps(doc)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    rows = {r["id"]: r for r in json.loads(out[0])}
    assert {i: r["status"] for i, r in rows.items()} == {
        f"nic.{veth}.exists": "pass",
        f"nic.{veth}.timestamping.capability": "fail",
        f"nic.{veth}.timestamping.config": "fail",
        f"nic.{veth}.rings": "skip",
        f"nic.{veth}.coalesce": "skip",
    }
    assert rows[f"nic.{veth}.timestamping.capability"]["observed"] == (
        "tx_software, rx_software, software; no PTP clock"
    )
    assert "EOPNOTSUPP" in rows[f"nic.{veth}.timestamping.config"]["observed"]
    assert json.loads(out[1]) == []  # nothing apply could do on a veth
