"""SwapKnob on fake /proc trees (active swap, fstab, vm.swappiness) and on this host, read only."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosttune.change import SetValue, WriteFile
from hosttune.host import Host
from hosttune.knobs.swap import DROPIN, SWAPPINESS, SwapKnob, fstab_swaps, parse_swaps
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile
from tests.hosttune.knob_roundtrip import roundtrip

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
TWO_AREAS = (
    HEADER
    + "/dev/nvme0n1p3                          partition\t8388604\t\t13312\t\t-2\n"
    + "/var/lib/swap\\040file                    file\t\t1048572\t\t0\t\t-3\n"
)
FSTAB = (
    "# <file system> <mount point> <type> <options> <dump> <pass>\n"
    "UUID=8a1c-77 /               ext4    errors=remount-ro 0       1\n"
    "UUID=5f0e-12 none            swap    sw              0       0\n"
)
KNOB = SwapKnob()


def rows(host: Host, **swap: object) -> dict[str, CheckResult]:
    return {r.id: r for r in KNOB.check(host, profile(swap=dict(swap)))}


def test_no_swap_passes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": HEADER, SWAPPINESS: "10\n"})
    r = rows(host)
    assert r["swap.active"].status is Status.PASS
    assert r["swap.active"].observed == "no active swap"
    assert r["swap.swappiness"].status is Status.PASS


def test_active_swap_is_a_warning_with_advice_and_never_applied(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": TWO_AREAS, SWAPPINESS: "1\n", "/etc/fstab": FSTAB})
    row = rows(host)["swap.active"]
    assert row.status is Status.WARN
    assert row.observed.startswith(
        "2 swap area(s) active: /dev/nvme0n1p3 (partition, 8192 MiB, 13 MiB used), "
        "/var/lib/swap file (file, 1024 MiB, 0 MiB used)"
    )
    assert "/etc/fstab enables swap at boot: UUID=5f0e-12" in row.observed
    assert "swapoff -a" in row.fix and "/etc/fstab" in row.fix
    assert "not done by `hosttune apply`" in row.fix
    assert KNOB.plan(host, profile()) == []  # swappiness is fine; swap itself is never touched


def test_allowed_swap_passes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": TWO_AREAS, SWAPPINESS: "1\n"})
    row = rows(host, allow_active_swap=True)["swap.active"]
    assert row.status is Status.PASS
    assert row.expected == "swap allowed"


def test_swap_that_fstab_turns_on_at_boot_is_a_warning(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": HEADER, "/etc/fstab": FSTAB})
    row = rows(host)["swap.active"]
    assert row.status is Status.WARN
    assert "swapoff" not in row.fix and "comment out the swap lines in /etc/fstab" in row.fix


def test_fstab_parsing() -> None:
    text = (
        FSTAB
        + "/swap\\040two none swap sw,pri=5 0 0  # trailing\n"
        + "/dev/sdb2 none swap noauto 0 0\n"
        + "#/dev/sdc1 none swap sw 0 0\n"
        + "garbage\n"
    )
    assert fstab_swaps(text) == ["UUID=5f0e-12", "/swap two"]


def test_odd_proc_swaps_lines_do_not_break_the_check() -> None:
    areas = parse_swaps(HEADER + "/dev/zram0 partition\n\n/dev/sda2\n")
    assert [(a.name, a.kind, a.size_kib) for a in areas] == [
        ("/dev/zram0", "partition", None),
        ("/dev/sda2", "unknown type", None),
    ]
    assert areas[0].describe() == "/dev/zram0 (partition)"


def test_missing_proc_swaps_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {SWAPPINESS: "10\n"})
    row = rows(host)["swap.active"]
    assert row.status is Status.SKIP
    assert "/proc/swaps does not exist" in row.observed


@pytest.mark.parametrize(
    ("value", "status"),
    [("0", Status.PASS), ("10", Status.PASS), ("11", Status.FAIL), ("60", Status.FAIL)],
)
def test_swappiness_bound(tmp_path: Path, value: str, status: Status) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": HEADER, SWAPPINESS: f"{value}\n"})
    row = rows(host, swappiness_max=10)["swap.swappiness"]
    assert (row.status, row.observed, row.expected) == (status, value, "<= 10")
    if status is Status.FAIL:
        assert "hosttune apply" in row.fix and DROPIN in row.fix


def test_swappiness_missing_or_garbled_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": HEADER})
    assert rows(host)["swap.swappiness"].status is Status.SKIP
    host = fake_host(tmp_path, {SWAPPINESS: "sixty\n"})
    row = rows(host)["swap.swappiness"]
    assert row.status is Status.SKIP
    assert "unexpected content" in row.observed and "'sixty'" in row.observed
    assert KNOB.plan(host, profile()) == []


def test_plan_sets_and_persists_swappiness(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/proc/swaps": HEADER, SWAPPINESS: "60\n"})
    changes = KNOB.plan(host, profile(swap={"swappiness_max": 5}))
    assert changes[0] == SetValue(path=SWAPPINESS, old="60", new="5")
    assert isinstance(changes[1], WriteFile) and changes[1].path == DROPIN
    assert changes[1].old is None
    assert "vm.swappiness = 5" in changes[1].new.splitlines()


def test_apply_then_revert(tmp_path: Path) -> None:
    host = fake_host(
        tmp_path,
        {"/proc/swaps": HEADER, SWAPPINESS: "60\n", DROPIN: "# stale\nvm.swappiness = 30\n"},
    )
    applied = {r.id: r for r in roundtrip(KNOB, host, profile())}
    assert applied["swap.swappiness"].status is Status.PASS
    assert (tmp_path / SWAPPINESS.lstrip("/")).read_text().strip() == "60"


def test_this_host_read_only() -> None:
    r = {row.id: row for row in KNOB.check(Host(), profile())}
    active = len([ln for ln in Path("/proc/swaps").read_text().splitlines()[1:] if ln.strip()])
    assert r["swap.active"].status in ((Status.WARN,) if active else (Status.PASS, Status.WARN))
    if not active:
        assert r["swap.active"].observed.startswith("no active swap")
    assert r["swap.swappiness"].observed == Path(SWAPPINESS).read_text().strip()
