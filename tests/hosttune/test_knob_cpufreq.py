"""CpufreqKnob on fake sysfs trees (governors, cpuidle states, intel_idle) and on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosttune.change import SetValue
from hosttune.host import Host
from hosttune.knobs.cpufreq import (
    INTEL_MAX_CSTATE,
    CpufreqKnob,
    by_value,
    governor_path,
    intel_max_cstate,
    read_idle_states,
)
from hosttune.profile import load_profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile
from tests.hosttune.knob_roundtrip import roundtrip

CPU = "/sys/devices/system/cpu"
KNOB = CpufreqKnob()
# A typical Intel server: POLL, C1, C1E, C6 with their exit latencies in µs.
STATES = (("POLL", 0), ("C1", 2), ("C1E", 10), ("C6", 133))


def cpufreq(governors: list[str], offered: str = "performance powersave") -> dict[str, str]:
    files = {f"{CPU}/online": f"0-{len(governors) - 1}\n"}
    for cpu, gov in enumerate(governors):
        base = f"{CPU}/cpu{cpu}/cpufreq"
        files[f"{base}/scaling_governor"] = f"{gov}\n"
        files[f"{base}/scaling_available_governors"] = (
            f"{offered} \n"  # the kernel's trailing blank
        )
        files[f"{base}/scaling_driver"] = "intel_pstate\n"
    return files


def cpuidle(
    cpus: int, disabled: frozenset[str] = frozenset(), intel: str | None = "9"
) -> dict[str, str]:
    files = {f"{CPU}/cpuidle/current_driver": "intel_idle\n"}
    if intel is not None:
        files[INTEL_MAX_CSTATE] = f"{intel}\n"
    for cpu in range(cpus):
        for k, (name, latency) in enumerate(STATES):
            d = f"{CPU}/cpu{cpu}/cpuidle/state{k}"
            files[f"{d}/name"] = f"{name}\n"
            files[f"{d}/latency"] = f"{latency}\n"
            files[f"{d}/disable"] = "1\n" if name in disabled else "0\n"
    return files


def rows(
    host: Host, governor: str | None = "performance", max_us: int | None = 10
) -> dict[str, CheckResult]:
    cpu: dict[str, object] = {}
    if governor is not None:
        cpu["governor"] = governor
    if max_us is not None:
        cpu["max_cstate_latency_us"] = max_us
    return {r.id: r for r in KNOB.check(host, profile(cpu=cpu))}


# --- governor ----------------------------------------------------------------------------------


def test_mixed_governors_fail_grouped_by_cpu(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpufreq(["powersave", "powersave", "performance", "powersave"]))
    row = rows(host)["cpufreq.governor"]
    assert row.status is Status.FAIL
    assert row.observed == "cpu0-1,3: powersave; cpu2: performance (driver intel_pstate)"
    assert row.expected == "performance on every CPU"
    assert "hosttune apply" in row.fix and "cpu0-1,3" in row.fix
    assert "cpufreq.default_governor=performance" in row.fix


def test_all_on_the_wanted_governor_passes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpufreq(["performance"] * 4))
    row = rows(host)["cpufreq.governor"]
    assert (row.status, row.fix) == (Status.PASS, "")
    assert row.observed == "cpu0-3: performance (driver intel_pstate)"


def test_governor_the_driver_does_not_offer(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpufreq(["powersave"] * 2, offered="powersave"))
    row = rows(host)["cpufreq.governor"]
    assert row.status is Status.FAIL
    assert "'performance' is not offered on cpu0-1" in row.observed
    assert "modprobe cpufreq_performance" in row.fix and "powersave" in row.fix
    assert KNOB.plan(host, profile(cpu={"governor": "performance"})) == []  # the write would fail


def test_no_cpufreq_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {f"{CPU}/online": "0-1\n", f"{CPU}/cpu0/topology/core_id": "0\n"})
    row = rows(host)["cpufreq.governor"]
    assert row.status is Status.SKIP
    assert row.observed == "host does not expose cpufreq (typical of VMs)"


def test_no_governor_in_profile_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpufreq(["powersave"]))
    row = rows(host, governor=None)["cpufreq.governor"]
    assert row.status is Status.SKIP and "governor" in row.observed


def test_offline_or_garbled_cpu_entries_are_left_out(tmp_path: Path) -> None:
    files = cpufreq(["powersave", "performance"])
    files[governor_path(1)] = "\n"  # unreadable/empty
    files[f"{CPU}/cpufreq/policy0/scaling_governor"] = "powersave\n"  # not a cpuN directory
    host = fake_host(tmp_path, files)
    row = rows(host)["cpufreq.governor"]
    assert row.observed == "cpu0: powersave (driver intel_pstate)"


def test_by_value_orders_groups_by_first_cpu() -> None:
    assert by_value({3: "b", 0: "a", 1: "b", 2: "a"}) == "cpu0,2: a; cpu1,3: b"


# --- C-states ----------------------------------------------------------------------------------


def test_deep_state_enabled_fails_with_runtime_and_boot_fix(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(4))
    row = rows(host)["cpufreq.cstates"]
    assert row.status is Status.FAIL
    assert row.observed == (
        "enabled with exit latency > 10 µs: C6 (133 µs) on cpu0-3 "
        "(cpuidle driver intel_idle, intel_idle.max_cstate=9)"
    )
    assert "hosttune apply" in row.fix and "disable=1 for C6" in row.fix
    assert "intel_idle.max_cstate=2" in row.fix  # C1 and C1E stay: POLL is not counted
    assert row.reboot is True


def test_disabled_deep_states_pass(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(2, disabled=frozenset({"C6"})))
    row = rows(host)["cpufreq.cstates"]
    assert (row.status, row.fix, row.reboot) == (Status.PASS, "", False)
    assert row.observed.startswith("disabled: C6 (133 µs) on cpu0-1")


def test_tighter_limit_catches_more_states(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(2))
    row = rows(host, max_us=2)["cpufreq.cstates"]
    assert "C1E (10 µs) on cpu0-1, C6 (133 µs) on cpu0-1" in row.observed
    assert "intel_idle.max_cstate=1" in row.fix


def test_partly_disabled_on_some_cpus(tmp_path: Path) -> None:
    files = cpuidle(4)
    for cpu in (0, 1):
        files[f"{CPU}/cpu{cpu}/cpuidle/state3/disable"] = "1\n"
    host = fake_host(tmp_path, files)
    row = rows(host)["cpufreq.cstates"]
    assert "C6 (133 µs) on cpu2-3" in row.observed
    changes = KNOB.plan(host, profile(cpu={"max_cstate_latency_us": 10}))
    assert changes == [
        SetValue(path=f"{CPU}/cpu{c}/cpuidle/state3/disable", old="0", new="1") for c in (2, 3)
    ]


def test_without_intel_idle_no_boot_advice(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(2, intel=None))
    row = rows(host)["cpufreq.cstates"]
    assert row.status is Status.FAIL
    assert "max_cstate" not in row.fix and row.reboot is False


def test_boot_param_already_tight_gives_no_boot_advice(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(1, intel="2"))
    row = rows(host)["cpufreq.cstates"]
    assert "add intel_idle.max_cstate" not in row.fix and row.reboot is False


def test_no_disable_attribute_means_boot_time_only(tmp_path: Path) -> None:
    files = cpuidle(1)
    del files[f"{CPU}/cpu0/cpuidle/state3/disable"]
    host = fake_host(tmp_path, files)
    row = rows(host)["cpufreq.cstates"]
    assert row.status is Status.FAIL
    assert "no runtime switch" in row.observed
    assert "hosttune apply" not in row.fix and "intel_idle.max_cstate=2" in row.fix
    assert row.reboot is True
    assert KNOB.plan(host, profile(cpu={"max_cstate_latency_us": 10})) == []


def test_garbled_latency_is_reported_not_fatal(tmp_path: Path) -> None:
    files = cpuidle(1, disabled=frozenset({"C6"}))
    files[f"{CPU}/cpu0/cpuidle/state2/latency"] = "n/a\n"
    host = fake_host(tmp_path, files)
    row = rows(host)["cpufreq.cstates"]
    assert row.status is Status.PASS
    assert "unreadable latency: C1E" in row.observed


def test_no_cpuidle_states_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {
            f"{CPU}/cpuidle/current_driver": "none\n",
            INTEL_MAX_CSTATE: "9\n",
            f"{CPU}/online": "0-1\n",
        },
    )
    (tmp_path / "sys/devices/system/cpu/cpu0").mkdir()
    row = rows(host)["cpufreq.cstates"]
    assert row.status is Status.SKIP
    assert (
        row.observed == "no cpuidle states exposed (cpuidle driver none, intel_idle.max_cstate=9)"
    )


def test_no_latency_limit_in_profile_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(1))
    assert rows(host, max_us=None)["cpufreq.cstates"].status is Status.SKIP


def test_intel_max_cstate_stops_at_the_first_slow_state(tmp_path: Path) -> None:
    host = fake_host(tmp_path, cpuidle(1))
    states = read_idle_states(host)
    assert [s.name for s in states] == ["POLL", "C1", "C1E", "C6"]
    assert [intel_max_cstate(states, us) for us in (0, 2, 9, 10, 500)] == [0, 1, 1, 2, 3]


# --- apply / revert; this host -----------------------------------------------------------------


def test_apply_then_revert(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path, {**cpufreq(["powersave", "performance", "powersave", "schedutil"]), **cpuidle(4)}
    )
    prof = profile(cpu={"governor": "performance", "max_cstate_latency_us": 10})
    applied = {r.id: r for r in roundtrip(KNOB, host, prof)}
    assert applied["cpufreq.governor"].status is Status.PASS
    assert applied["cpufreq.cstates"].status is Status.PASS
    assert (tmp_path / governor_path(3).lstrip("/")).read_text().strip() == "schedutil"


@pytest.mark.parametrize("row_id", ["cpufreq.governor", "cpufreq.cstates"])
def test_this_host_read_only(row_id: str) -> None:
    row = {r.id: r for r in KNOB.check(Host(), load_profile())}[row_id]
    sysfs = Path(CPU)
    if row_id == "cpufreq.governor":
        exposed = any(sysfs.glob("cpu[0-9]*/cpufreq/scaling_governor"))
        assert (row.status is Status.SKIP) == (not exposed)
    else:
        exposed = any(sysfs.glob("cpu[0-9]*/cpuidle/state[0-9]*"))
        assert (row.status is Status.SKIP) == (not exposed)
        if not exposed:
            assert row.observed.startswith("no cpuidle states exposed")
