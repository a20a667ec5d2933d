"""The playbook applied for real to a debootstrap root through the chroot connection.

Runtime apply is off for image targets (group_vars/images.yml): the chroot shares this host's
kernel. The root is an overlay of the cached debootstrap tree, so the cache stays pristine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hosttune import cpulist
from hosttune.profile import load_profile
from tests.infra import debroot
from tests.infra.expected import Expected
from tests.infra.suite import run_suite
from tests.infra.tuned import IMAGE_CPUS, TunedImage
from tests.infra.tuned_host import CHROOT_REASON

# The suite's file assertions, which must all pass on the image.
FILE_TESTS = {
    "test_installed_profile_matches",
    *(
        f"test_dropin_is_what_hosttune_writes[{path}]"
        for path in (
            "/etc/sysctl.d/90-hosttune.conf",
            "/etc/sysctl.d/90-hosttune-swap.conf",
            "/etc/sysctl.d/90-hosttune-numa.conf",
            "/etc/security/limits.d/90-hosttune-memlock.conf",
            "/etc/default/grub.d/90-hosttune.cfg",
        )
    ),
    "test_unit_memlock_dropin",
    "test_thp_mode_set_at_boot",
    "test_feeder_user",
    "test_feeder_config_is_valid",
    "test_feeder_unit",
    "test_feeder_unit_enabled",
    "test_toolkit_runs_on_the_target",
}
# The suite's tests that read the running kernel, and the one that needs irqbalance installed.
LIVE_TESTS = {
    "test_live_sysctls",
    "test_live_hugepages",
    "test_live_thp",
    "test_live_cpu_isolation[isolated]",
    "test_live_cpu_isolation[nohz_full]",
    "test_live_feeder_service",
    "test_live_hosttune_check_agrees",
}


def _base(name: str, target: Path) -> str:
    """``test_x[chroot:///root-param]`` -> ``test_x[param]``: drop testinfra's host id."""
    name = name.replace(f"chroot://{target}", "")
    return name.replace("[-", "[").replace("-]", "]").replace("[]", "")


def test_playbook_provisions_the_image(tuned_image: TunedImage) -> None:
    first = tuned_image.first
    assert first.returncode == 0, first.tail()
    recap = first.recap["image"]
    assert recap.failed == 0 and recap.unreachable == 0
    assert recap.changed > 0, "a fresh root must need changes"


def test_second_run_changes_nothing(tuned_image: TunedImage) -> None:
    second = tuned_image.second
    assert second is not None, "the first run failed"
    assert second.returncode == 0, second.tail()
    assert second.recap["image"].changed == 0, f"not idempotent: {second.changed_tasks()}"


def test_testinfra_suite_passes_on_the_image(tuned_image: TunedImage, tmp_path: Path) -> None:
    run = run_suite(
        [
            "--connection=chroot",
            f"--hosts={tuned_image.root}",
            "--mdfeed-profile=builtin:feeder",
            f"--mdfeed-online-cpus={IMAGE_CPUS}",
        ],
        tmp_path / "junit.xml",
    )
    outcomes = {_base(n, tuned_image.root): o for n, o in run.outcomes.items()}
    failed = {n: o.message for n, o in outcomes.items() if o.status in ("failed", "error")}
    assert not failed, run.output[-3000:]
    skipped = {n: o.message for n, o in outcomes.items() if o.status == "skipped"}
    assert set(skipped) == LIVE_TESTS | {"test_irqbalance_bans_isolated_cpus"}
    assert all(CHROOT_REASON in skipped[n] for n in LIVE_TESTS), skipped
    passed = {n for n, o in outcomes.items() if o.status == "passed"}
    assert passed == FILE_TESTS


def test_testinfra_suite_fails_on_an_untuned_root(debian_root: Path, tmp_path: Path) -> None:
    """The assertions can fail: against the pristine root every file check does."""
    run = run_suite(
        [
            "--connection=chroot",
            f"--hosts={debian_root}",
            "--mdfeed-profile=builtin:feeder",
            f"--mdfeed-online-cpus={IMAGE_CPUS}",
            "-k",
            "dropin or unit or feeder_user or toolkit",
        ],
        tmp_path / "junit.xml",
    )
    assert run.returncode == 1, run.output[-2000:]
    assert run.outcomes and not run.named("passed"), run.named("passed")


def _hosttune_apply_persistent(root: Path) -> list[str]:
    """``hosttune apply --persistent-only --root`` into ``root``; the paths it wrote."""
    # What the image will boot with, so "auto" and the sysctl drop-ins resolve as on the target.
    seeds = {
        "sys/devices/system/cpu/online": IMAGE_CPUS,
        "proc/sys/vm/swappiness": "60",
        "proc/sys/kernel/numa_balancing": "1",
    }
    for rel, value in seeds.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(value + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hosttune.cli", "apply", "--persistent-only", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    journal = json.loads((root / "var/lib/hosttune/journal.json").read_text())
    return [e["change"]["path"] for e in journal["entries"]]


def test_role_writes_what_hosttune_apply_writes(
    tuned_image: TunedImage, debian_root: Path, tmp_path: Path
) -> None:
    """One set of numbers: the role's files are byte-identical to hosttune's, for the same root."""
    with debroot.overlay(debian_root, tmp_path / "overlay") as root:
        written = _hosttune_apply_persistent(root)
        # Everything hosttune writes, and what the testinfra suite expects, are the same files.
        want = Expected(load_profile(), cpulist.parse(IMAGE_CPUS)).files()
        assert sorted(written) == sorted(want), written
        for path in written:
            theirs = (root / path.lstrip("/")).read_bytes()
            ours = tuned_image.root / path.lstrip("/")
            assert ours.is_file(), f"the role does not write {path}"
            assert ours.read_bytes() == theirs, f"{path} differs from hosttune apply's"


def test_installed_profile_round_trips(tuned_image: TunedImage) -> None:
    """The profile the role renders from its variables is the built-in one, value for value."""
    path = tuned_image.root / "etc/hosttune/feeder.toml"
    installed, builtin = load_profile(str(path)), load_profile()
    assert installed.name == builtin.name
    assert {**vars(installed), "source": ""} == {**vars(builtin), "source": ""}


@pytest.mark.parametrize("unit", ["feeder.service", "hosttune-apply.service"])
def test_units_pass_systemd_analyze(tuned_image: TunedImage, unit: str) -> None:
    path = f"/etc/systemd/system/{unit}"
    proc = subprocess.run(
        ["chroot", str(tuned_image.root), "systemd-analyze", "verify", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
