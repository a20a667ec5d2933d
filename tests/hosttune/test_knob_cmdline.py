"""The kernel command-line knob: isolcpus/nohz_full/rcu_nocbs, staging, running state, plan."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hosttune.change import WriteFile
from hosttune.cpulist import CpuListError
from hosttune.host import Host
from hosttune.knobs.cmdline import (
    GRUB_DROPIN,
    CmdlineKnob,
    CpuParam,
    boot_params,
    dropin_text,
    parse_cmdline,
    parse_cpu_param,
)
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile

KNOB = CmdlineKnob()
CPU = "/sys/devices/system/cpu"
BASE_CMDLINE = "BOOT_IMAGE=/vmlinuz-6.18 root=UUID=1234-abcd ro quiet"


def prof(**cpu: object) -> Profile:
    return profile(cpu={"isolated": "2-5", **cpu})


def host_with(
    tmp_path: Path, cmdline: str | None, extra: dict[str, str] | None = None, online: str = "0-7"
) -> Host:
    files = {
        f"{CPU}/online": f"{online}\n",
        f"{CPU}/isolated": "\n",
        f"{CPU}/nohz_full": "(null)\n",
    }
    if cmdline is not None:
        files["/proc/cmdline"] = cmdline + "\n"
    return fake_host(tmp_path, {**files, **(extra or {})})


def rows(host: Host, p: Profile) -> dict[str, CheckResult]:
    return {r.id: r for r in KNOB.check(host, p)}


# --- parsing ----------------------------------------------------------------------------------


def test_parse_cmdline() -> None:
    params = parse_cmdline("BOOT_IMAGE=/vmlinuz root=UUID=ab=cd ro  quiet\tisolcpus=2-5\n")
    assert params == {
        "BOOT_IMAGE": "/vmlinuz",
        "root": "UUID=ab=cd",  # only the first '=' separates
        "ro": "",
        "quiet": "",
        "isolcpus": "2-5",
    }


def test_parse_cmdline_last_one_wins_and_dashdash_ends() -> None:
    assert parse_cmdline("isolcpus=1-3 isolcpus=2-5")["isolcpus"] == "2-5"
    # After "--" the words belong to init, not to the kernel.
    assert "isolcpus" not in parse_cmdline("quiet -- isolcpus=2-5")
    assert parse_cmdline("isolcpus=1 -- isolcpus=2-5")["isolcpus"] == "1"
    assert parse_cmdline("") == {}


@pytest.mark.parametrize(
    ("value", "cpus", "flags"),
    [
        ("managed_irq,domain,2-5", {2, 3, 4, 5}, {"managed_irq", "domain"}),
        ("domain,managed_irq,2-5", {2, 3, 4, 5}, {"managed_irq", "domain"}),
        ("nohz,domain,1-3", {1, 2, 3}, {"nohz", "domain"}),
        ("2-5", {2, 3, 4, 5}, set()),
        ("domain,2,4", {2, 4}, {"domain"}),
        ("managed_irq,domain,0-7:2/4", {0, 1, 4, 5}, {"managed_irq", "domain"}),
        ("", set(), set()),
    ],
)
def test_parse_cpu_param(value: str, cpus: set[int], flags: set[str]) -> None:
    assert parse_cpu_param(value) == CpuParam(cpus=frozenset(cpus), flags=frozenset(flags))


@pytest.mark.parametrize("value", ["2-5,domain", "managed_irq,2-5,domain", "bogus,2-5", "domain,x"])
def test_flags_only_lead_the_cpu_list(value: str) -> None:
    with pytest.raises(CpuListError):
        parse_cpu_param(value)


# --- isolcpus / nohz_full / rcu_nocbs on the running command line -----------------------------


@pytest.mark.parametrize(
    ("cmdline", "status"),
    [
        ("isolcpus=managed_irq,domain,2-5", Status.PASS),
        ("isolcpus=domain,managed_irq,2-5", Status.PASS),  # flags in any order
        ("isolcpus=nohz,domain,managed_irq,2-5", Status.PASS),  # extra flags are fine
        ("isolcpus=managed_irq,domain,2,3,4,5", Status.PASS),  # same set, other spelling
        ("isolcpus=managed_irq,domain,2-5:1/1", Status.PASS),
        ("isolcpus=1-3 isolcpus=managed_irq,domain,2-5", Status.PASS),  # last one wins
        ("isolcpus=managed_irq,domain,2-5 isolcpus=1-3", Status.FAIL),
        ("isolcpus=domain,2-5", Status.FAIL),  # managed_irq missing
        ("isolcpus=managed_irq,2-5", Status.FAIL),  # domain missing (flags given, none implied)
        ("isolcpus=2-5", Status.FAIL),  # plain form means domain only
        ("isolcpus=managed_irq,domain,2-4", Status.FAIL),  # wrong CPUs
        ("isolcpus=managed_irq,domain,1-5", Status.FAIL),  # more CPUs than wanted
        ("isolcpus=2-5,managed_irq,domain", Status.FAIL),  # the kernel rejects trailing flags
        ("isolcpus=managed_irq,domain,2-5,x", Status.FAIL),  # garbled
        ("isolcpus=", Status.FAIL),
        ("isolcpus", Status.FAIL),
        ("quiet -- isolcpus=managed_irq,domain,2-5", Status.FAIL),  # after "--": for init
    ],
)
def test_isolcpus_formats(tmp_path: Path, cmdline: str, status: Status) -> None:
    row = rows(host_with(tmp_path, f"{BASE_CMDLINE} {cmdline}"), prof())["cmdline.isolcpus"]
    assert row.status is status, row
    assert row.expected == "isolcpus=domain,managed_irq,2-5"
    assert row.reboot is (status is not Status.PASS)


def test_plain_isolcpus_means_domain(tmp_path: Path) -> None:
    host = host_with(tmp_path, "isolcpus=2-5")
    row = rows(host, prof(isolcpus_flags=["domain"]))["cmdline.isolcpus"]
    assert row.status is Status.PASS
    row = rows(host, prof(isolcpus_flags=[]))["cmdline.isolcpus"]
    assert row.status is Status.PASS and row.expected == "isolcpus=2-5"


def test_all_three_parameters_pass(tmp_path: Path) -> None:
    cmdline = "isolcpus=managed_irq,domain,2-5 nohz_full=2-5 rcu_nocbs=2,3,4,5"
    got = rows(host_with(tmp_path, cmdline), prof())
    for key in ("isolcpus", "nohz_full", "rcu_nocbs"):
        assert got[f"cmdline.{key}"].status is Status.PASS
        assert got[f"cmdline.{key}"].fix == "" and not got[f"cmdline.{key}"].reboot
    assert got["cmdline.nohz_full"].observed == "nohz_full=2-5"
    assert got["cmdline.nohz_full"].expected == "nohz_full=2-5"


def test_absent_parameters_fail_and_need_a_reboot(tmp_path: Path) -> None:
    got = rows(host_with(tmp_path, BASE_CMDLINE), prof())
    for key in ("isolcpus", "nohz_full", "rcu_nocbs"):
        row = got[f"cmdline.{key}"]
        assert (row.status, row.observed, row.reboot) == (Status.FAIL, "absent", True)
        assert "hosttune apply" in row.fix and GRUB_DROPIN in row.fix
        assert row.title == key


def test_disabled_parameters_have_no_rows(tmp_path: Path) -> None:
    got = rows(host_with(tmp_path, BASE_CMDLINE), prof(nohz_full=False, rcu_nocbs=False))
    assert list(got) == ["cmdline.isolcpus", "cmdline.isolated_running"]


def test_auto_isolates_every_online_cpu_but_the_first(tmp_path: Path) -> None:
    host = host_with(tmp_path, "isolcpus=managed_irq,domain,1-3", online="0-3")
    row = rows(host, profile(cpu={"isolated": "auto"}))["cmdline.isolcpus"]
    assert row.status is Status.PASS and row.expected == "isolcpus=domain,managed_irq,1-3"


# --- staged in the grub drop-in but not booted yet --------------------------------------------


def test_staged_but_not_booted_warns_with_reboot(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    p = prof()
    (change,) = KNOB.plan(host, p)
    change.do(host)
    got = rows(host, p)
    for key in ("isolcpus", "nohz_full", "rcu_nocbs"):
        row = got[f"cmdline.{key}"]
        assert (row.status, row.reboot) == (Status.WARN, True), row
        assert row.observed == f"absent (staged in {GRUB_DROPIN})"
        assert "reboot" in row.fix
    # The running state is still what the booted kernel did.
    assert got["cmdline.isolated_running"].status is Status.FAIL


def test_staged_with_a_different_running_value(tmp_path: Path) -> None:
    host = host_with(tmp_path, "isolcpus=1", {GRUB_DROPIN: dropin_text(["isolcpus=domain,2-5"])})
    row = rows(host, prof(isolcpus_flags=["domain"]))["cmdline.isolcpus"]
    assert row.status is Status.WARN and row.observed.startswith("isolcpus=1 (staged")


def test_a_foreign_or_garbled_dropin_is_not_staged(tmp_path: Path) -> None:
    for text in ("", "no quotes here\n", 'X="isolcpus=bogus"\n', "\x00\x01"):
        host = host_with(tmp_path, BASE_CMDLINE, {GRUB_DROPIN: text})
        assert rows(host, prof())["cmdline.isolcpus"].status is Status.FAIL


# --- the running state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("isolated", "status", "observed"),
    [
        ("2-5\n", Status.PASS, "2-5"),
        ("1-7\n", Status.PASS, "1-7"),  # more isolated than needed still covers the target
        ("2-4\n", Status.FAIL, "2-4"),
        ("\n", Status.FAIL, "none"),
        ("", Status.FAIL, "none"),
    ],
)
def test_isolated_running(tmp_path: Path, isolated: str, status: Status, observed: str) -> None:
    host = host_with(tmp_path, BASE_CMDLINE, {f"{CPU}/isolated": isolated})
    row = rows(host, prof())["cmdline.isolated_running"]
    assert (row.status, row.observed, row.expected) == (status, observed, "includes 2-5")
    assert row.reboot is (status is Status.FAIL)
    assert (row.fix == "") is (status is Status.PASS)


def test_isolated_file_absent_or_garbled_is_a_skip(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    (tmp_path / CPU.lstrip("/") / "isolated").unlink()
    row = rows(host, prof())["cmdline.isolated_running"]
    assert row.status is Status.SKIP and "does not report isolated CPUs" in row.observed

    host = host_with(tmp_path, BASE_CMDLINE, {f"{CPU}/isolated": "two-five\n"})
    row = rows(host, prof())["cmdline.isolated_running"]
    assert row.status is Status.SKIP and f"{CPU}/isolated" in row.observed


@pytest.mark.parametrize(
    ("nohz", "status", "observed"),
    [
        ("2-5\n", Status.PASS, "2-5"),
        ("(null)\n", Status.FAIL, "none"),  # older kernels print (null) for an empty mask
        ("\n", Status.FAIL, "none"),
        ("3\n", Status.FAIL, "3"),
    ],
)
def test_nohz_full_running(tmp_path: Path, nohz: str, status: Status, observed: str) -> None:
    host = host_with(tmp_path, BASE_CMDLINE, {f"{CPU}/nohz_full": nohz})
    row = rows(host, prof())["cmdline.nohz_full_running"]
    assert (row.status, row.observed, row.reboot) == (status, observed, status is Status.FAIL)


def test_nohz_full_file_absent_or_garbled_is_a_skip(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    (tmp_path / CPU.lstrip("/") / "nohz_full").unlink()
    row = rows(host, prof())["cmdline.nohz_full_running"]
    assert row.status is Status.SKIP and "CONFIG_NO_HZ_FULL" in row.observed
    assert row.expected == "2-5"

    host = host_with(tmp_path, BASE_CMDLINE, {f"{CPU}/nohz_full": "(nil)\n"})
    row = rows(host, prof())["cmdline.nohz_full_running"]
    assert row.status is Status.SKIP and f"{CPU}/nohz_full" in row.observed


# --- hosts where there is nothing to check ----------------------------------------------------


def test_single_cpu_host_is_a_skip(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE, online="0")
    got = KNOB.check(host, profile(cpu={"isolated": "auto"}))
    assert [(r.id, r.status) for r in got] == [("cmdline.isolcpus", Status.SKIP)]
    assert "one CPU" in got[0].observed


def test_missing_online_file_counts_as_one_cpu(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    (tmp_path / CPU.lstrip("/") / "online").unlink()
    got = KNOB.check(host, profile(cpu={"isolated": "auto"}))
    assert [(r.id, r.status) for r in got] == [("cmdline.isolcpus", Status.SKIP)]


def test_garbled_online_file_is_a_skip_naming_it(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE, online="zero-seven")
    (row,) = KNOB.check(host, profile(cpu={"isolated": "auto"}))
    assert row.status is Status.SKIP and f"{CPU}/online" in row.observed


def test_profile_without_isolation_is_a_skip(tmp_path: Path) -> None:
    (row,) = KNOB.check(host_with(tmp_path, BASE_CMDLINE), profile(cpu={"isolated": ""}))
    assert (row.id, row.status, row.observed) == (
        "cmdline.isolcpus",
        Status.SKIP,
        "profile isolates no CPUs",
    )


def test_missing_proc_cmdline_is_one_skip_row(tmp_path: Path) -> None:
    (row,) = KNOB.check(host_with(tmp_path, None), prof())
    assert (row.id, row.status) == ("cmdline", Status.SKIP)
    assert "/proc/cmdline does not exist" in row.observed


# --- what apply stages ------------------------------------------------------------------------


def test_boot_params() -> None:
    host = Host(root=Path("/nonexistent-root"))  # "2-5" needs no host facts
    full = profile(
        cpu={"isolated": "2-5"},
        hugepages={"pages_2m": 512, "pages_1g": 2, "boot": True},
        thp={"enabled": "never"},
    )
    assert boot_params(host, full) == [
        "isolcpus=managed_irq,domain,2-5",  # flags in the profile's order
        "nohz_full=2-5",
        "rcu_nocbs=2-5",
        "hugepagesz=1G",
        "hugepages=2",
        "hugepagesz=2M",
        "hugepages=512",
        "transparent_hugepage=never",
    ]
    minimal = profile(
        cpu={"isolated": "0-7:2/4", "nohz_full": False, "rcu_nocbs": False, "isolcpus_flags": []},
        hugepages={"pages_2m": 512, "boot": False},
        thp={"enabled": "madvise"},
    )
    assert boot_params(host, minimal) == ["isolcpus=0-1,4-5", "transparent_hugepage=madvise"]
    assert boot_params(host, profile(cpu={"isolated": ""})) == ["transparent_hugepage=never"]


def test_dropin_text_appends_to_the_grub_variable() -> None:
    text = dropin_text(["isolcpus=managed_irq,domain,2-5", "nohz_full=2-5"])
    assert text.startswith("# Written by `hosttune apply`")
    assert text.endswith(
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT '
        'isolcpus=managed_irq,domain,2-5 nohz_full=2-5"\n'
    )


def test_dropin_is_valid_shell_that_grub_mkconfig_can_source(tmp_path: Path) -> None:
    """grub-mkconfig sources /etc/default/grub.d/*.cfg with /bin/sh: do the same."""
    sh = shutil.which("sh")
    assert sh is not None
    path = tmp_path / "90-hosttune.cfg"
    path.write_text(dropin_text(["isolcpus=managed_irq,domain,2-5", "transparent_hugepage=never"]))
    out = subprocess.run(
        [
            sh,
            "-c",
            f'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"; . "{path}"; '
            'printf %s "$GRUB_CMDLINE_LINUX_DEFAULT"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "quiet splash isolcpus=managed_irq,domain,2-5 transparent_hugepage=never"


def test_plan_writes_the_dropin_needing_a_reboot(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    p = prof()
    (change,) = KNOB.plan(host, p)
    assert isinstance(change, WriteFile)
    assert (change.path, change.old, change.reboot) == (GRUB_DROPIN, None, True)
    assert change.needs_reboot() and not change.runtime
    assert change.new == dropin_text(boot_params(host, p))
    assert change.then_run is None  # no update-grub in this tree


def test_plan_runs_update_grub_only_when_the_tree_has_it(tmp_path: Path) -> None:
    marker = tmp_path / "update-grub-ran"
    host = host_with(tmp_path, BASE_CMDLINE)
    tool = tmp_path / "usr/sbin/update-grub"
    tool.parent.mkdir(parents=True)
    tool.write_text(f"#!/bin/sh\ntouch {marker}\n")

    # Present but not executable: not a tool.
    (change,) = KNOB.plan(host, prof())
    assert isinstance(change, WriteFile) and change.then_run is None

    os.chmod(tool, 0o755)
    (change,) = KNOB.plan(host, prof())
    assert isinstance(change, WriteFile) and change.then_run == ["update-grub"]
    # A fake tree never runs commands: doing and undoing only touch the file.
    change.do(host)
    assert host.read(GRUB_DROPIN) == change.new
    change.undo(host)
    assert not marker.exists()


def test_plan_is_empty_when_the_dropin_is_current(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    p = prof()
    for change in KNOB.plan(host, p):
        change.do(host)
    assert KNOB.plan(host, p) == []
    # A different profile rewrites it, keeping the old text for undo.
    (change,) = KNOB.plan(host, prof(isolated="2-3"))
    assert isinstance(change, WriteFile) and change.old == dropin_text(boot_params(host, p))


def test_plan_do_undo_leaves_the_tree_as_found(tmp_path: Path) -> None:
    host = host_with(tmp_path, BASE_CMDLINE)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    changes = KNOB.plan(host, prof())
    for c in changes:
        c.do(host)
    assert host.exists(GRUB_DROPIN)
    KNOB.revert(host, changes)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_undo_restores_a_previous_dropin_byte_for_byte(tmp_path: Path) -> None:
    old = '# mine\nGRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT mitigations=off"\n'
    host = host_with(tmp_path, BASE_CMDLINE, {GRUB_DROPIN: old})
    (change,) = KNOB.plan(host, prof())
    assert isinstance(change, WriteFile) and change.old == old
    change.do(host)
    change.undo(host)
    assert (tmp_path / GRUB_DROPIN.lstrip("/")).read_bytes() == old.encode()
