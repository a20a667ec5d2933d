"""XdpKnob: the AF_XDP mode rows from a fake probe (pass/warn/fail, auto, skips), then real
probes on a veth: copy only, a busy queue, and no CAP_NET_RAW."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from feeder.net.topology import TwoHostTopology
from hosttune.host import Host
from hosttune.knobs.xdp import ModeProbe, XdpKnob, probe_modes
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import FakeNic, fake_host, profile
from xdp.umem import Umem
from xdp.xsk import XskSocket

NO_ZC = "EOPNOTSUPP (driver veth has no AF_XDP zero-copy support)"


def nic_profile(*interfaces: str, af_xdp: bool = True) -> Profile:
    return profile(nic={"interfaces": list(interfaces)}, bpf={"af_xdp": af_xdp})


class LiveHost(Host):
    """A Host over a fake tree that claims to be the running system (``is_live``)."""

    @property
    def is_live(self) -> bool:
        return True


def live(tmp_path: Path, nic: FakeNic | None = None) -> Host:
    fake = fake_host(tmp_path, {}, nic)
    return LiveHost(root=fake.root, nic=fake.nic, euid=0, allow_commands=False)


def fixed(probes: dict[str, ModeProbe]) -> XdpKnob:
    return XdpKnob(probe=lambda ifname: probes[ifname])


def test_pass_warn_fail_from_the_probe(tmp_path: Path) -> None:
    knob = fixed(
        {
            "ens1": ModeProbe(None, None),
            "veth0": ModeProbe(NO_ZC, None),
            "eth9": ModeProbe("ENODEV (eth9 disappeared)", "ENODEV (eth9 disappeared)"),
        }
    )
    rows = knob.check(live(tmp_path), nic_profile("ens1", "veth0", "eth9"))
    by_id = {r.id: r for r in rows}
    assert list(by_id) == ["xdp.ens1.mode", "xdp.veth0.mode", "xdp.eth9.mode"]
    assert by_id["xdp.ens1.mode"].status is Status.PASS
    assert by_id["xdp.ens1.mode"].observed == "zero-copy works (copy mode too)"
    warn = by_id["xdp.veth0.mode"]
    assert warn.status is Status.WARN
    assert warn.observed == f"copy mode works; zero-copy: {NO_ZC}"
    assert "zero-copy" in warn.fix and "copy mode works meanwhile" in warn.fix
    fail = by_id["xdp.eth9.mode"]
    assert fail.status is Status.FAIL
    assert fail.observed == "neither mode works: ENODEV (eth9 disappeared)"
    assert "kernel UDP" in fail.fix


def test_fix_names_the_cause(tmp_path: Path) -> None:
    denied = "EPERM (permission denied (AF_XDP needs CAP_NET_RAW; run as root or grant it))"
    busy = "EBUSY (queue 0 of x already has an AF_XDP socket bound (another feeder?))"
    knob = fixed(
        {
            "a": ModeProbe(denied, denied, denied=True),
            "b": ModeProbe(busy, busy, busy=True),
            "c": ModeProbe("EINVAL (x)", "ENOMEM (y)"),
        }
    )
    a, b, c = knob.check(live(tmp_path), nic_profile("a", "b", "c"))
    assert all(r.status is Status.FAIL for r in (a, b, c))
    assert "CAP_NET_RAW" in a.fix
    assert "held by another AF_XDP socket" in b.fix
    assert c.observed == "neither mode works; zero-copy: EINVAL (x); copy: ENOMEM (y)"


def test_auto_means_the_default_route_interface(tmp_path: Path) -> None:
    seen: list[str] = []

    def probe(ifname: str) -> ModeProbe:
        seen.append(ifname)
        return ModeProbe(None, None)

    host = live(tmp_path, FakeNic(default_iface="eth0"))
    rows = XdpKnob(probe).check(host, nic_profile("auto", "eth0"))
    assert [r.id for r in rows] == ["xdp.eth0.mode"] and seen == ["eth0"]  # probed once
    nowhere = live(tmp_path, FakeNic(default_iface=None))
    (row,) = XdpKnob(probe).check(nowhere, nic_profile("auto"))
    assert row.id == "xdp.auto" and row.status is Status.SKIP
    assert "no IPv4 default route" in row.observed


def test_skips_off_the_live_host_and_when_unused(tmp_path: Path) -> None:
    def never(ifname: str) -> ModeProbe:
        raise AssertionError("must not probe")

    (row,) = XdpKnob(never).check(fake_host(tmp_path, {}), nic_profile("eth0"))
    assert row.status is Status.SKIP and "not the running host" in row.observed
    (row,) = XdpKnob(never).check(live(tmp_path), nic_profile("eth0", af_xdp=False))
    assert row.status is Status.SKIP and "af_xdp = false" in row.observed
    (row,) = XdpKnob(never).check(live(tmp_path), nic_profile())
    assert row.status is Status.SKIP and "no interfaces" in row.observed


# --- real probes on a veth -------------------------------------------------------------------


def check_in(topo: TwoHostTopology) -> CheckResult:
    with topo.a.entered():
        (row,) = XdpKnob().check(Host(), nic_profile(topo.a.ifname))
    return row


def test_veth_gets_copy_mode_only(topo: TwoHostTopology) -> None:
    row = check_in(topo)
    assert row.id == f"xdp.{topo.a.ifname}.mode"
    assert row.status is Status.WARN
    assert row.observed == f"copy mode works; zero-copy: {NO_ZC}"


def test_busy_queue_is_reported(topo: TwoHostTopology) -> None:
    umem = Umem.allocate(64, 2048, huge_pages="never")
    holder = XskSocket.open(umem, topo.a.ifname, tx_size=64, netns=topo.a.netns)
    try:
        row = check_in(topo)
    finally:
        holder.close()
        umem.close()
    assert row.status is Status.FAIL
    assert row.observed.startswith(f"neither mode works: EBUSY (queue 0 of {topo.a.ifname}")
    assert "held by another AF_XDP socket" in row.fix


PROBE_SCRIPT = """
import json, sys
from hosttune.knobs.xdp import probe_modes
p = probe_modes(sys.argv[1])
print(json.dumps({"zerocopy": p.zerocopy, "copy": p.copy, "denied": p.denied}))
"""


def test_without_cap_net_raw_the_probe_is_denied(topo: TwoHostTopology) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    script = [sys.executable, "-c", PROBE_SCRIPT, topo.a.ifname]
    argv = topo.a.argv([setpriv, "--bounding-set=-net_raw", "--", *script])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["denied"] is True
    assert found["copy"].startswith("EPERM (permission denied (AF_XDP needs CAP_NET_RAW")
    # In this process, which holds the capability, the same interface probes fine.
    with topo.a.entered():
        assert probe_modes(topo.a.ifname) == ModeProbe(NO_ZC, None)
