"""The sysctl knob on fake /proc/sys trees (and read-only against the running kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosttune.change import SetValue, WriteFile
from hosttune.host import Host
from hosttune.knobs.sysctl import DROPIN, SysctlKnob, dropin_text, satisfies, sysctl_path, target
from hosttune.profile import SysctlRule
from hosttune.result import Status
from tests.hosttune.fakehost import FakeNic, fake_host, profile

KNOB = SysctlKnob()
UDP_MEM = "/proc/sys/net/ipv4/udp_mem"


def tree_bytes(root: Path) -> dict[str, bytes | None]:
    """Every path under root: file bytes, or None for a directory."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def test_sysctl_path() -> None:
    assert sysctl_path("net.ipv4.udp_mem") == UDP_MEM
    assert sysctl_path("vm.swappiness") == "/proc/sys/vm/swappiness"


@pytest.mark.parametrize(
    ("op", "want", "have", "ok"),
    [
        ("eq", "50", "50", True),
        ("eq", "50", "0", False),
        ("eq", "50", "050", False),  # exact text, as sysctl prints it
        ("eq", "cubic", "cubic", True),
        ("eq", "4096 87380 6291456", "4096\t87380\t6291456\n", True),
        ("eq", "4096 87380 6291456", "4096 87380", False),
        ("min", "100", "100", True),
        ("min", "100", "101", True),
        ("min", "100", "99", False),
        ("min", "100", " 212992\n", True),
        ("max", "10", "10", True),
        ("max", "10", "60", False),
        ("max", "10", "0", True),
        ("min", "-1", "-1", True),
        ("min", "0", "-1", False),
        # udp_mem is "min pressure max": every element must meet its bound
        ("min", "262144 524288 1048576", "262144\t524288\t1048576", True),
        ("min", "262144 524288 1048576", "300000 600000 2000000", True),
        ("min", "262144 524288 1048576", "300000 400000 2000000", False),
        ("max", "10 20 30", "10 20 31", False),
        ("max", "10 20 30", "1 2 3", True),
        ("min", "1 2 3", "5 5", False),  # a different number of elements never satisfies
        ("min", "100", "", False),
        ("min", "100", "lots", False),  # garbled value: not satisfied, no exception
        ("max", "100", "1.5", False),
    ],
)
def test_satisfies(op: str, want: str, have: str, ok: bool) -> None:
    assert satisfies(SysctlRule("k", op, want), have) is ok


@pytest.mark.parametrize(
    ("op", "want", "have", "new"),
    [
        ("eq", "50", "0", "50"),
        ("min", "100", "99", "100"),
        ("max", "10", "60", "10"),
        # A bound moves only the elements outside it; the others keep their (better) value.
        ("min", "262144 524288 1048576", "300000\t400000\t2000000\n", "300000 524288 2000000"),
        ("max", "10 20 30", "5 25 30", "5 20 30"),
        ("min", "1 2 3", "5 5", "1 2 3"),  # shapes differ: write the profile's value
        ("min", "100", "lots", "100"),
    ],
)
def test_target(op: str, want: str, have: str, new: str) -> None:
    rule = SysctlRule("k", op, want)
    assert target(rule, have) == new
    assert satisfies(rule, target(rule, have))


SYSCTLS = {
    "net.core.rmem_max": {"min": 4194304},
    "net.core.busy_read": 50,
    "net.ipv4.udp_mem": {"min": [262144, 524288, 1048576]},
    "vm.swappiness": {"max": 10},
}


def test_check_pass_and_fail_rows(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {
            "/proc/sys/net/core/rmem_max": "212992\n",  # too small
            "/proc/sys/net/core/busy_read": "50\n",  # ok
            UDP_MEM: "400000\t600000\t1200000\n",  # ok, tab-separated as the kernel prints it
            "/proc/sys/vm/swappiness": "60\n",  # too big
        },
    )
    rows = {r.id: r for r in KNOB.check(host, profile(sysctl=SYSCTLS))}
    assert list(rows) == [f"sysctl.{k}" for k in SYSCTLS]

    rmem = rows["sysctl.net.core.rmem_max"]
    assert (rmem.status, rmem.observed, rmem.expected) == (Status.FAIL, "212992", ">= 4194304")
    assert rmem.fix == f"sysctl -w net.core.rmem_max='4194304' (persist: {DROPIN})"
    assert rmem.title == "sysctl net.core.rmem_max" and not rmem.reboot

    busy = rows["sysctl.net.core.busy_read"]
    assert (busy.status, busy.observed, busy.expected, busy.fix) == (Status.PASS, "50", "50", "")

    udp = rows["sysctl.net.ipv4.udp_mem"]
    assert udp.status is Status.PASS
    assert udp.observed == "400000 600000 1200000"  # whitespace normalised for display
    assert udp.expected == ">= 262144 524288 1048576"

    swap = rows["sysctl.vm.swappiness"]
    assert (swap.status, swap.expected) == (Status.FAIL, "<= 10")


def test_udp_mem_fails_when_one_element_is_short(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {UDP_MEM: "300000\t400000\t2000000\n"})
    prof = profile(sysctl={"net.ipv4.udp_mem": SYSCTLS["net.ipv4.udp_mem"]})
    (row,) = KNOB.check(host, prof)
    assert row.status is Status.FAIL and row.observed == "300000 400000 2000000"


def test_missing_sysctl_is_a_skip_row_with_the_reason(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/sys/net/core/busy_read": "50\n"})
    prof = profile(sysctl={"net.core.busy_read": 50, "net.core.nonexistent": {"min": 1}})
    rows = {r.id: r for r in KNOB.check(host, prof)}
    assert rows["sysctl.net.core.busy_read"].status is Status.PASS
    gone = rows["sysctl.net.core.nonexistent"]
    assert gone.status is Status.SKIP
    assert "not available on this kernel" in gone.observed
    assert "/proc/sys/net/core/nonexistent does not exist" in gone.observed
    assert gone.expected == ">= 1"


def test_unreadable_sysctl_is_a_skip_row(tmp_path: Path) -> None:
    # A directory where a value should be: reading fails with EISDIR (root reads any file).
    (tmp_path / "proc/sys/net/core/busy_read").mkdir(parents=True)
    host = fake_host(tmp_path, {})
    (row,) = KNOB.check(host, profile(sysctl={"net.core.busy_read": 50}))
    assert row.status is Status.SKIP and "Is a directory" in row.observed


@pytest.mark.parametrize("content", ["lots\n", "", "\n", "12 apples", "\x00\x01"])
def test_garbled_value_fails_without_an_exception(tmp_path: Path, content: str) -> None:
    host = fake_host(tmp_path, {"/proc/sys/net/core/rmem_max": content})
    (row,) = KNOB.check(host, profile(sysctl={"net.core.rmem_max": {"min": 4194304}}))
    assert row.status is Status.FAIL
    assert row.observed == " ".join(content.split())


def test_no_rules_no_rows_no_changes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/sys/net/core/rmem_max": "1\n"})
    assert KNOB.check(host, profile()) == []
    assert KNOB.plan(host, profile()) == []


FAKE_PROC = {
    "/proc/sys/net/core/rmem_max": "212992\n",
    "/proc/sys/net/core/busy_read": "50\n",
    UDP_MEM: "300000\t400000\t2000000\n",
    "/proc/sys/vm/swappiness": "60\n",
}


def test_plan_sets_only_non_compliant_keys_and_writes_the_dropin(tmp_path: Path) -> None:
    host = fake_host(tmp_path, FAKE_PROC)
    prof = profile(sysctl={**SYSCTLS, "net.core.missing": 1})
    changes = KNOB.plan(host, prof)
    sets = [c for c in changes if isinstance(c, SetValue)]
    assert sets == [
        SetValue("/proc/sys/net/core/rmem_max", old="212992\n", new="4194304"),
        # only the short element of udp_mem is raised; the larger ones are kept
        SetValue(UDP_MEM, old="300000\t400000\t2000000\n", new="300000 524288 2000000"),
        SetValue("/proc/sys/vm/swappiness", old="60\n", new="10"),
    ]
    (dropin,) = [c for c in changes if isinstance(c, WriteFile)]
    assert changes[-1] is dropin
    assert (dropin.path, dropin.old, dropin.reboot) == (DROPIN, None, False)
    assert dropin.new == dropin_text(prof.sysctl)
    assert all(c.runtime for c in sets) and not dropin.runtime


def test_dropin_text_is_sysctl_d_syntax() -> None:
    prof = profile(sysctl=SYSCTLS)
    text = dropin_text(prof.sysctl)
    lines = text.splitlines()
    assert lines[0].startswith("# Written by `hosttune apply`")
    assert lines[1:] == [
        "net.core.rmem_max = 4194304",
        "net.core.busy_read = 50",
        "net.ipv4.udp_mem = 262144 524288 1048576",
        "vm.swappiness = 10",
    ]
    assert text.endswith("\n")


def test_unchanged_dropin_is_not_rewritten(tmp_path: Path) -> None:
    prof = profile(sysctl=SYSCTLS)
    host = fake_host(tmp_path, {**FAKE_PROC, DROPIN: dropin_text(prof.sysctl)})
    changes = KNOB.plan(host, prof)
    assert changes and not [c for c in changes if isinstance(c, WriteFile)]


def test_changed_dropin_is_rewritten_keeping_the_old_text(tmp_path: Path) -> None:
    old = "# by hand\nvm.swappiness = 1\n"
    host = fake_host(tmp_path, {DROPIN: old})
    (change,) = KNOB.plan(host, profile(sysctl={"vm.swappiness": {"max": 10}}))
    assert isinstance(change, WriteFile) and change.old == old
    change.do(host)
    assert host.read(DROPIN) == dropin_text(profile(sysctl={"vm.swappiness": {"max": 10}}).sysctl)
    change.undo(host)
    assert (tmp_path / DROPIN.lstrip("/")).read_bytes() == old.encode()


def test_plan_do_check_undo_restores_every_byte(tmp_path: Path) -> None:
    host = fake_host(tmp_path, FAKE_PROC)
    prof = profile(sysctl=SYSCTLS)
    before = tree_bytes(tmp_path)
    assert {r.status for r in KNOB.check(host, prof)} == {Status.PASS, Status.FAIL}

    changes = KNOB.plan(host, prof)
    for c in changes:
        c.do(host)
    rows = KNOB.check(host, prof)
    assert [r.status for r in rows] == [Status.PASS] * len(SYSCTLS), rows
    assert host.read(DROPIN) == dropin_text(prof.sysctl)
    assert KNOB.plan(host, prof) == []  # nothing left to do

    KNOB.revert(host, changes)
    assert tree_bytes(tmp_path) == before  # values, tabs, newlines; drop-in and /etc gone


def test_the_running_kernels_values_are_read_as_the_kernel_prints_them() -> None:
    """Read-only: this kernel prints udp_mem tab-separated; rows judge what they observed
    (other tests may change live values meanwhile)."""
    host = Host(root=Path("/"), nic=FakeNic(), allow_commands=False)
    assert "\t" in Path(UDP_MEM).read_text()
    for spec in ({"min": [1, 1, 1]}, {"max": [1, 1, 1]}, [1, 2, 3]):
        prof = profile(sysctl={"net.ipv4.udp_mem": spec})
        (row,) = KNOB.check(host, prof)
        assert len(row.observed.split(" ")) == 3 and "\t" not in row.observed
        assert all(x.isdigit() for x in row.observed.split(" "))
        assert (row.status is Status.PASS) is satisfies(prof.sysctl[0], row.observed)
    # Real udp_mem values are pages > 1 on any machine that boots.
    assert KNOB.check(host, profile(sysctl={"net.ipv4.udp_mem": {"min": [1, 1, 1]}}))[0].status is (
        Status.PASS
    )
    assert KNOB.check(host, profile(sysctl={"net.ipv4.udp_mem": {"max": [1, 1, 1]}}))[0].status is (
        Status.FAIL
    )
    (row,) = KNOB.check(host, profile(sysctl={"net.core.no_such_knob_here": 1}))
    assert row.status is Status.SKIP
