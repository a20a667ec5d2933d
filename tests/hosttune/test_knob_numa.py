"""NumaKnob on fake /proc trees and on this host, read only."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosttune.change import SetValue, WriteFile
from hosttune.host import Host
from hosttune.knobs.numa import BALANCING, DROPIN, NumaKnob
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile
from tests.hosttune.knob_roundtrip import roundtrip

KNOB = NumaKnob()
TWO_NODES = {"/sys/devices/system/node/has_memory": "0-1\n"}


def row(host: Host, balancing: bool = False) -> CheckResult:
    (only,) = KNOB.check(host, profile(numa={"balancing": balancing}))
    assert only.id == "numa.balancing"
    return only


@pytest.mark.parametrize(
    ("value", "balancing", "status", "observed"),
    [
        ("0", False, Status.PASS, "off (0)"),
        ("1", False, Status.FAIL, "on (1)"),
        ("2", False, Status.FAIL, "on (memory tiering) (2)"),
        ("0", True, Status.FAIL, "off (0)"),
        ("3", True, Status.PASS, "on (normal + memory tiering) (3)"),
    ],
)
def test_value_against_profile(
    tmp_path: Path, value: str, balancing: bool, status: Status, observed: str
) -> None:
    host = fake_host(tmp_path, {BALANCING: f"{value}\n", **TWO_NODES})
    r = row(host, balancing)
    assert (r.status, r.observed) == (status, observed)
    assert bool(r.fix) == (status is Status.FAIL)


def test_single_node_is_noted(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {BALANCING: "1\n", "/sys/devices/system/node/has_memory": "0\n"})
    r = row(host)
    assert r.status is Status.FAIL
    assert r.observed == "on (1); single NUMA node, so there is nothing to migrate"


def test_garbled_node_list_only_drops_the_note(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {BALANCING: "1\n", "/sys/devices/system/node/has_memory": "0-x\n"})
    r = row(host)
    assert (r.status, r.observed) == (Status.FAIL, "on (1)")


def test_kernel_without_numa_balancing_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, TWO_NODES)
    r = row(host)
    assert r.status is Status.SKIP
    assert r.observed == "kernel built without NUMA balancing"
    assert KNOB.plan(host, profile()) == []


def test_garbled_value_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {BALANCING: "enabled\n"})
    r = row(host)
    assert r.status is Status.SKIP and "'enabled'" in r.observed
    assert KNOB.plan(host, profile()) == []


def test_plan_turns_it_off_and_persists(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {BALANCING: "1\n", **TWO_NODES})
    set_value, dropin = KNOB.plan(host, profile())
    assert set_value == SetValue(path=BALANCING, old="1", new="0")
    assert isinstance(dropin, WriteFile) and dropin.path == DROPIN
    assert dropin.new.splitlines()[-1] == "kernel.numa_balancing = 0"


def test_apply_then_revert(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {BALANCING: "1\n", **TWO_NODES})
    (applied,) = roundtrip(KNOB, host, profile())
    assert applied.status is Status.PASS
    on = fake_host(tmp_path, {BALANCING: "0\n"})
    (applied,) = roundtrip(KNOB, on, profile(numa={"balancing": True}))
    assert applied.status is Status.PASS and applied.observed.startswith("on (1)")


def test_this_host_read_only() -> None:
    r = row(Host())
    path = Path(BALANCING)
    if not path.exists():
        assert r.status is Status.SKIP
        return
    value = path.read_text().strip()
    assert r.observed.endswith(f"({value})") or f"({value});" in r.observed
    assert r.status is (Status.PASS if value == "0" else Status.FAIL)
