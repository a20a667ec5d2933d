"""IrqKnob on fake /proc/irq trees and irqbalance configs, and on this host (read only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hosttune import cpulist
from hosttune.change import SetValue, WriteFile
from hosttune.host import Host
from hosttune.knobs.irq import DEFAULT_AFFINITY, IrqKnob, environment, with_banned
from hosttune.profile import Profile, load_profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile
from tests.hosttune.knob_roundtrip import roundtrip

KNOB = IrqKnob()
ONLINE = "/sys/devices/system/cpu/online"
# 4 CPUs, 2-3 isolated. IRQ 0 (timer) is already fine, 24 spans all CPUs, 25 sits only on an
# isolated CPU, 26 is pinned to 0 and 2 (a NIC queue whose housekeeping half must be kept).
IRQS = {
    ONLINE: "0-3\n",
    "/proc/irq/0/smp_affinity_list": "0\n",
    "/proc/irq/24/smp_affinity_list": "0-3\n",
    "/proc/irq/25/smp_affinity_list": "3\n",
    "/proc/irq/26/smp_affinity_list": "0,2\n",
    DEFAULT_AFFINITY: "f\n",
}
DEBIAN_DEFAULT = """\
# irqbalance is a daemon process that distributes interrupts across
# CPUs on SMP systems.
#
# Set to 'yes' to run irqbalance once and exit.
#IRQBALANCE_ONESHOT=
#
# IRQBALANCE_BANNED_CPULIST
#    A list of CPUs to be excluded from IRQ balancing.
#IRQBALANCE_BANNED_CPULIST=
#
#IRQBALANCE_ARGS=
"""


def iso(cpus: str = "2-3", **irq: object) -> Profile:
    return profile(cpu={"isolated": cpus}, irq=dict(irq))


def rows(host: Host, cpus: str = "2-3", **irq: object) -> dict[str, CheckResult]:
    return {r.id: r for r in KNOB.check(host, iso(cpus, **irq))}


def planned_paths(host: Host, prof: Profile) -> list[str]:
    return [c.path for c in KNOB.plan(host, prof) if isinstance(c, SetValue | WriteFile)]


def with_irqbalance(tmp_path: Path, files: dict[str, str]) -> Host:
    host = fake_host(tmp_path, {**IRQS, "/usr/sbin/irqbalance": "#!/bin/sh\n", **files})
    os.chmod(tmp_path / "usr/sbin/irqbalance", 0o755)
    return host


# --- affinity ----------------------------------------------------------------------------------


def test_offending_irqs_are_counted_and_listed(tmp_path: Path) -> None:
    host = fake_host(tmp_path, IRQS)
    row = rows(host)["irq.affinity"]
    assert row.status is Status.FAIL
    assert row.observed == (
        "3 of 4 IRQs may run on isolated CPUs 2-3: 24,25,26; "
        "default for new IRQs f (cpu 0-3): includes isolated CPUs"
    )
    assert row.expected == "no IRQ allowed on isolated CPUs 2-3 (housekeeping CPUs 0-1 take them)"
    assert "hosttune apply" in row.fix and "EIO" in row.fix


def test_plan_moves_each_irq_to_housekeeping_keeping_its_pinning(tmp_path: Path) -> None:
    host = fake_host(tmp_path, IRQS)
    changes = KNOB.plan(host, iso())
    assert changes == [
        SetValue("/proc/irq/24/smp_affinity_list", old="0-3", new="0-1"),
        SetValue("/proc/irq/25/smp_affinity_list", old="3", new="0-1"),
        SetValue("/proc/irq/26/smp_affinity_list", old="0,2", new="0"),
        SetValue(DEFAULT_AFFINITY, old="f", new="3"),
    ]


def test_apply_then_revert(tmp_path: Path) -> None:
    host = fake_host(tmp_path, IRQS)
    applied = {r.id: r for r in roundtrip(KNOB, host, iso())}
    row = applied["irq.affinity"]
    assert row.status is Status.PASS
    assert (
        row.observed
        == "none of 4 IRQs may run on isolated CPUs 2-3; default for new IRQs 3 (cpu 0-1): ok"
    )


def test_compliant_host_passes(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {
            ONLINE: "0-3\n",
            "/proc/irq/1/smp_affinity_list": "0-1\n",
            "/proc/irq/9/smp_affinity_list": "1\n",
            DEFAULT_AFFINITY: "00000000,00000003\n",
        },
    )
    assert rows(host)["irq.affinity"].status is Status.PASS
    assert KNOB.plan(host, iso()) == []


def test_auto_isolation_on_two_cpus(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {ONLINE: "0-1\n", "/proc/irq/24/smp_affinity_list": "0-1\n"})
    row = rows(host, cpus="auto")["irq.affinity"]
    assert row.observed.startswith("1 of 1 IRQs may run on isolated CPUs 1: 24")


@pytest.mark.parametrize(
    ("online", "isolated", "why"),
    [
        ("0-3", "", "the profile isolates no CPUs"),
        ("0", "auto", "single-CPU host"),
        ("0-3", "0-3", "isolates every online CPU"),
        ("0-1", "4-7", "none of the profile's isolated CPUs (4-7) is online"),
        ("0-3,junk", "auto", "cannot tell which CPUs are online"),
    ],
)
def test_nothing_to_keep_off_is_a_skip(
    tmp_path: Path, online: str, isolated: str, why: str
) -> None:
    host = with_irqbalance(tmp_path, {ONLINE: f"{online}\n"})
    r = rows(host, cpus=isolated)
    for rid in ("irq.affinity", "irq.irqbalance"):
        assert r[rid].status is Status.SKIP
        assert why in r[rid].observed
    assert KNOB.plan(host, iso(isolated)) == []


def test_profile_allowing_irqs_on_isolated_cpus(tmp_path: Path) -> None:
    host = fake_host(tmp_path, IRQS)
    row = rows(host, keep_off_isolated=False)["irq.affinity"]
    assert row.status is Status.SKIP and "keep_off_isolated" in row.observed
    assert KNOB.plan(host, iso(keep_off_isolated=False)) == []


def test_missing_proc_irq_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {ONLINE: "0-3\n"})
    row = rows(host)["irq.affinity"]
    assert row.status is Status.SKIP and row.observed == "host exposes no /proc/irq"


def test_garbled_affinity_is_reported_and_left_alone(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {**IRQS, "/proc/irq/30/smp_affinity_list": "zz\n", DEFAULT_AFFINITY: "not-hex\n"},
    )
    row = rows(host)["irq.affinity"]
    assert "unreadable affinity for IRQ 30" in row.observed
    assert "unreadable /proc/irq/default_smp_affinity: 'not-hex'" in row.observed
    paths = planned_paths(host, iso())
    assert "/proc/irq/30/smp_affinity_list" not in paths and DEFAULT_AFFINITY not in paths


def test_long_lists_are_shortened(tmp_path: Path) -> None:
    files = {ONLINE: "0-3\n"}
    files.update({f"/proc/irq/{n}/smp_affinity_list": "0-3\n" for n in range(100, 130)})
    row = rows(fake_host(tmp_path, files))["irq.affinity"]
    assert row.observed.startswith("30 of 30 IRQs may run on isolated CPUs 2-3: 100,101,")
    assert "119,... and 10 more" in row.observed


# --- irqbalance --------------------------------------------------------------------------------


def test_irqbalance_not_installed(tmp_path: Path) -> None:
    row = rows(fake_host(tmp_path, IRQS))["irq.irqbalance"]
    assert row.status is Status.SKIP
    assert row.observed == "irqbalance not installed: affinity stays as set"


def test_debian_default_file_fails_and_apply_adds_the_list(tmp_path: Path) -> None:
    host = with_irqbalance(tmp_path, {"/etc/default/irqbalance": DEBIAN_DEFAULT})
    row = rows(host)["irq.irqbalance"]
    assert row.status is Status.FAIL
    assert row.observed.startswith("no banned CPUs set in /etc/default/irqbalance")
    assert "IRQBALANCE_BANNED_CPULIST=2-3" in row.fix and "systemctl restart irqbalance" in row.fix
    applied = {r.id: r for r in roundtrip(KNOB, host, iso())}
    assert applied["irq.irqbalance"].status is Status.PASS


def test_written_file_keeps_every_other_line(tmp_path: Path) -> None:
    host = with_irqbalance(tmp_path, {"/etc/default/irqbalance": DEBIAN_DEFAULT})
    (change,) = [c for c in KNOB.plan(host, iso()) if isinstance(c, WriteFile)]
    assert change.old == DEBIAN_DEFAULT
    assert change.new == DEBIAN_DEFAULT + "IRQBALANCE_BANNED_CPULIST=2-3\n"


def test_existing_list_is_replaced_in_place(tmp_path: Path) -> None:
    text = (
        "IRQBALANCE_ONESHOT=no\n"
        'export IRQBALANCE_BANNED_CPULIST="3"\n'
        'IRQBALANCE_ARGS="--policyscript=/x"\n'
    )
    assert with_banned(text, frozenset({2, 3})) == (
        'IRQBALANCE_ONESHOT=no\nIRQBALANCE_BANNED_CPULIST=2-3\nIRQBALANCE_ARGS="--policyscript=/x"\n'
    )


def test_covering_list_passes(tmp_path: Path) -> None:
    host = with_irqbalance(
        tmp_path, {"/etc/default/irqbalance": "IRQBALANCE_BANNED_CPULIST='1-3'  # rt\n"}
    )
    row = rows(host)["irq.irqbalance"]
    assert row.status is Status.PASS
    assert row.observed == "IRQBALANCE_BANNED_CPULIST=1-3 in /etc/default/irqbalance"


def test_legacy_mask_takes_precedence(tmp_path: Path) -> None:
    covering = with_irqbalance(
        tmp_path / "a", {"/etc/default/irqbalance": "IRQBALANCE_BANNED_CPUS=0000000c\n"}
    )
    row = rows(covering)["irq.irqbalance"]
    assert row.status is Status.PASS
    assert (
        row.observed
        == "legacy IRQBALANCE_BANNED_CPUS=0000000c (cpu 2-3) in /etc/default/irqbalance"
    )
    text = "IRQBALANCE_BANNED_CPULIST=2-3\nIRQBALANCE_BANNED_CPUS=4\n"
    overriding = with_irqbalance(tmp_path / "b", {"/etc/default/irqbalance": text})
    row = rows(overriding)["irq.irqbalance"]
    assert row.status is Status.FAIL
    assert "which irqbalance prefers over IRQBALANCE_BANNED_CPULIST=2-3" in row.observed
    applied = {r.id: r for r in roundtrip(KNOB, overriding, iso())}
    assert applied["irq.irqbalance"].status is Status.PASS


def test_legacy_line_is_commented_out_not_deleted() -> None:
    new = with_banned("IRQBALANCE_BANNED_CPUS=4\n", frozenset({2, 3}))
    assert new == (
        "# disabled by hosttune (IRQBALANCE_BANNED_CPULIST replaces it): IRQBALANCE_BANNED_CPUS=4\n"
        "IRQBALANCE_BANNED_CPULIST=2-3\n"
    )
    assert environment(new) == {"IRQBALANCE_BANNED_CPULIST": "2-3"}


def test_sysconfig_is_used_on_red_hat_layouts(tmp_path: Path) -> None:
    host = with_irqbalance(tmp_path, {"/etc/sysconfig/irqbalance": "IRQBALANCE_ARGS=\n"})
    row = rows(host)["irq.irqbalance"]
    assert "/etc/sysconfig/irqbalance" in row.fix
    (change,) = [c for c in KNOB.plan(host, iso()) if isinstance(c, WriteFile)]
    assert change.path == "/etc/sysconfig/irqbalance"


def test_missing_config_is_created_and_removed_on_revert(tmp_path: Path) -> None:
    host = with_irqbalance(tmp_path, {})
    row = rows(host)["irq.irqbalance"]
    assert row.status is Status.FAIL and "(absent)" in row.observed
    roundtrip(KNOB, host, iso())
    assert not (tmp_path / "etc/default/irqbalance").exists()


def test_kernel_isolation_alone_satisfies_irqbalance(tmp_path: Path) -> None:
    host = with_irqbalance(
        tmp_path,
        {
            "/etc/default/irqbalance": DEBIAN_DEFAULT,
            "/sys/devices/system/cpu/isolated": "2\n",
            "/sys/devices/system/cpu/nohz_full": "3\n",
        },
    )
    row = rows(host)["irq.irqbalance"]
    assert row.status is Status.PASS
    assert "bans only kernel-isolated and nohz_full CPUs (2-3)" in row.observed


def test_kernel_without_nohz_full_prints_null(tmp_path: Path) -> None:
    host = with_irqbalance(
        tmp_path,
        {
            "/sys/devices/system/cpu/isolated": "2-3\n",
            "/sys/devices/system/cpu/nohz_full": "(null)\n",
        },
    )
    assert rows(host)["irq.irqbalance"].status is Status.PASS


def test_unparseable_list_and_unreadable_config(tmp_path: Path) -> None:
    host = with_irqbalance(
        tmp_path / "a", {"/etc/default/irqbalance": "IRQBALANCE_BANNED_CPULIST=two\n"}
    )
    row = rows(host)["irq.irqbalance"]
    assert row.status is Status.FAIL and "unparseable IRQBALANCE_BANNED_CPULIST=two" in row.observed
    host = with_irqbalance(tmp_path / "b", {})
    (tmp_path / "b/etc/default/irqbalance").mkdir(parents=True)
    row = rows(host)["irq.irqbalance"]
    assert row.status is Status.SKIP and "cannot read the irqbalance config" in row.observed
    assert planned_paths(host, iso()) == [
        p for p in planned_paths(host, iso()) if p.startswith("/proc/")
    ]


def test_profile_not_asking_for_irqbalance(tmp_path: Path) -> None:
    host = with_irqbalance(tmp_path, {})
    assert rows(host, irqbalance_banned=False)["irq.irqbalance"].status is Status.SKIP


def test_environment_parsing() -> None:
    text = "# A=1\nA=2\n  export B='x y'\nC=3 # comment\nD=\nE= # nothing\nnot an assignment\nA=4\n"
    assert environment(text) == {"A": "4", "B": "x y", "C": "3", "D": "", "E": ""}


# --- this host ---------------------------------------------------------------------------------


def test_this_host_read_only() -> None:
    host = Host()
    r = {row.id: row for row in KNOB.check(host, load_profile())}
    online = cpulist.parse(Path(ONLINE).read_text())
    if len(online) < 2:
        assert r["irq.affinity"].status is Status.SKIP
        return
    isolated = set(sorted(online)[1:])
    bad = 0
    for p in Path("/proc/irq").glob("[0-9]*/smp_affinity_list"):
        if cpulist.parse(p.read_text()) & isolated:
            bad += 1
    if bad:
        assert r["irq.affinity"].status is Status.FAIL
        assert r["irq.affinity"].observed.startswith(f"{bad} of ")
    if host.which("irqbalance") is None:
        assert r["irq.irqbalance"].observed == "irqbalance not installed: affinity stays as set"
