"""apply → check → revert through the journal, on a fake tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hosttune.change import SetValue, WriteFile
from hosttune.engine import apply, plan, revert, run_checks, select, summarize
from hosttune.host import Host, HostError
from hosttune.journal import Journal
from hosttune.knobs import all_knobs
from hosttune.knobs.base import Knob
from hosttune.knobs.thp import selected
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile

TREE = {
    "/proc/sys/net/core/rmem_max": "212992\n",
    "/proc/sys/net/core/busy_read": "0\n",
    "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
    "/sys/kernel/mm/transparent_hugepage/defrag": "always defer defer+madvise [madvise] never\n",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": "0\n",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages": "0\n",
    "/sys/devices/system/cpu/online": "0-3\n",
    "/sys/devices/system/cpu/isolated": "\n",
    "/proc/cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/vda ro quiet\n",
    "/etc/sysctl.d/10-local.conf": "vm.swappiness = 1\n",
}

PROFILE = dict(
    cpu={"isolated": "2-3"},
    hugepages={"pages_2m": 16, "boot": False},
    thp={"enabled": "never", "defrag": "never"},
    sysctl={"net.core.rmem_max": {"min": 4194304}, "net.core.busy_read": 50},
)


def snapshot(root: Path) -> dict[str, str]:
    """Files byte-exact; kernel value files as the kernel would show them after a write
    (a real sysfs re-renders ``always [madvise] never``, a fake tree stores what was written)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel, text = str(p.relative_to(root)), p.read_text()
        if rel.startswith(("proc/", "sys/")):
            text = selected(text) if "[" in text else text.strip()
        out[rel] = text
    return out


def test_apply_then_revert_restores_every_byte(tmp_path: Path) -> None:
    host = fake_host(tmp_path, TREE)
    prof = profile(**PROFILE)
    before = snapshot(tmp_path)
    journal = Journal(host, "/var/lib/hosttune/journal.json")

    steps = plan(host, prof, all_knobs())
    report = apply(host, journal, steps)
    assert not report.failed
    assert report.reboot_required  # the grub drop-in is staged
    assert host.read("/proc/sys/net/core/busy_read") == "50"
    assert "isolcpus=managed_irq,domain,2-3" in host.read("/etc/default/grub.d/90-hosttune.cfg")

    # The written runtime values now pass; the boot-time ones are "staged" (warn + reboot).
    rows = {r.id: r for r in run_checks(host, prof, all_knobs())}
    assert rows["sysctl.net.core.busy_read"].status is Status.PASS
    assert rows["thp.enabled"].status is Status.PASS
    assert rows["cmdline.isolcpus"].status is Status.WARN and rows["cmdline.isolcpus"].reboot

    # A second apply has nothing left to do for runtime values.
    assert not [c for _, c in plan(host, prof, all_knobs()) if isinstance(c, SetValue)]

    rep = revert(host, journal, all_knobs())
    assert not rep.failed and len(rep.reverted) == len(steps)
    assert snapshot(tmp_path) == before  # journal removed, created files removed, values back
    # Idempotent: a second revert finds nothing.
    assert revert(host, journal, all_knobs()).reverted == []


def test_journal_is_written_before_the_change(tmp_path: Path) -> None:
    host = fake_host(tmp_path, TREE)
    journal = Journal(host, "/j.json")

    class Exploding(SetValue):
        kind = "exploding-test"

        def do(self, host: Host) -> None:
            # The entry must already be on disk when the change runs.
            entries = json.loads(host.read("/j.json"))["entries"]
            assert entries[-1]["change"]["path"] == self.path
            raise HostError("refused by the kernel")

    knob = all_knobs()[0]
    report = apply(host, journal, [(knob, Exploding(path="/proc/sys/x", old="1", new="2"))])
    assert report.failed and "refused" in report.failed[0][2]
    assert journal.entries() == []  # refused: nothing to undo later


def test_revert_keeps_entries_it_could_not_undo(tmp_path: Path) -> None:
    host = fake_host(tmp_path, TREE)
    journal = Journal(host, "/j.json")
    knob = all_knobs()[0]
    ok = SetValue(path="/proc/sys/net/core/busy_read", old="0", new="50")
    # Undo of a value under a path that is a directory fails: it must stay journaled.
    (tmp_path / "proc/sys/blocked").mkdir(parents=True)
    bad = SetValue(path="/proc/sys/blocked", old="1", new="2")
    journal.record(knob.id, ok)
    ok.do(host)
    journal.record(knob.id, bad)
    rep = revert(host, journal, all_knobs())
    assert [c for _, c in rep.reverted] == [ok]
    assert [c for _, c, _ in rep.failed] == [bad]
    assert [e.change for e in journal.entries()] == [bad]
    assert host.read("/proc/sys/net/core/busy_read") == "0"


def test_damaged_journal_is_a_clear_error(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/j.json": "{not json"})
    with pytest.raises(HostError, match=r"damaged.*nothing was reverted"):
        Journal(host, "/j.json").entries()


def test_writefile_undo_removes_created_file_and_restores_old(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/etc/a.conf": "old\n"})
    created = WriteFile(path="/etc/b.conf", new="x\n", old=None)
    rewritten = WriteFile(path="/etc/a.conf", new="new\n", old="old\n")
    for c in (created, rewritten):
        c.do(host)
    for c in (rewritten, created):
        c.undo(host)
    assert not host.exists("/etc/b.conf")
    assert host.read("/etc/a.conf") == "old\n"


def test_runtime_and_persistent_filters(tmp_path: Path) -> None:
    host = fake_host(tmp_path, TREE)
    prof = profile(**PROFILE)
    runtime = plan(host, prof, all_knobs(), persistent=False)
    persistent = plan(host, prof, all_knobs(), runtime=False)
    assert runtime and all(c.runtime for _, c in runtime)
    assert persistent and not any(c.runtime for _, c in persistent)
    assert {p for _, c in persistent for p in [getattr(c, "path", "")]} >= {
        "/etc/sysctl.d/90-hosttune.conf",
        "/etc/default/grub.d/90-hosttune.cfg",
    }


def test_a_knob_that_breaks_becomes_a_skip_row(tmp_path: Path) -> None:
    class Broken(Knob):
        id = "broken"
        title = "broken knob"

        def check(self, host: Host, profile: Profile) -> list[CheckResult]:
            raise HostError("/sys/whatever is not readable (permission denied)")

    rows = run_checks(fake_host(tmp_path, {}), profile(), [Broken()])
    assert rows[0].status is Status.SKIP and "permission denied" in rows[0].observed


def test_only_selects_by_prefix(tmp_path: Path) -> None:
    host = fake_host(tmp_path, TREE)
    rows = run_checks(host, profile(**PROFILE), all_knobs(), ["sysctl.net.core.busy_read"])
    assert [r.id for r in rows] == ["sysctl.net.core.busy_read"]
    assert {k.id for k in select(all_knobs(), ["thp"])} == {"thp"}


def test_summary_counts_and_reboot() -> None:
    rows = [
        CheckResult("a", "a", Status.PASS, "", ""),
        CheckResult("b", "b", Status.FAIL, "", "", reboot=True),
        CheckResult("c", "c", Status.SKIP, "", ""),
    ]
    s = summarize(rows)
    assert (s["pass"], s["fail"], s["skip"], s["warn"], s["total"]) == (1, 1, 1, 0, 3)
    assert s["reboot_required"] is True
