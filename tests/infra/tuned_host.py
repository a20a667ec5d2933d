"""testinfra assertions for a host provisioned by ``ansible/site.yml`` (hosttune + feeder roles).

Written once, run against any target (see conftest.py for the command lines): ``local://``, a
chroot of an image (files only), ``ssh://`` to a VM, or an Ansible inventory. The file name
keeps it out of the normal test run: it describes *a provisioned host*, not this machine. On a
chroot target the live-kernel assertions skip, saying why.

Expected values come from the hosttune profile through hosttune's own code (tests/infra/
expected.py), so the role passes only when it writes what ``hosttune apply`` writes.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest

from feeder.config import parse_config
from hosttune import cpulist
from hosttune.knobs.sysctl import satisfies, sysctl_path
from hosttune.knobs.thp import selected
from hosttune.profile import Profile, load_profile, parse_profile
from tests.infra.expected import (
    FEEDER_CONFIG,
    PROFILE_DIR,
    PUBLISHER_CAPS,
    VENV,
    Expected,
    caps_in_mask,
    mask_has_only,
    unit_settings,
)

Host = Any  # testinfra's Host (untyped)
CHROOT_REASON = "chroot target: files only (its /proc and /sys would be the build host's)"


def _is_image(host: Host) -> bool:
    backend = host.backend
    if backend.NAME == "chroot":
        return True
    if backend.NAME == "ansible":
        return bool(backend.get_variables().get("ansible_connection") == "chroot")
    return False


@pytest.fixture
def live(host: Host) -> None:
    """Skip on chroot targets: their kernel state is not theirs."""
    if _is_image(host):
        pytest.skip(CHROOT_REASON)


@pytest.fixture
def profile(host: Host, request: pytest.FixtureRequest) -> Profile:
    choice: str = request.config.getoption("--mdfeed-profile")
    if choice.startswith("builtin:"):
        return load_profile(None, choice.removeprefix("builtin:"))
    if choice != "host":
        return load_profile(choice)
    installed = host.run(f"ls {PROFILE_DIR}/*.toml").stdout.split()
    assert len(installed) == 1, f"expected one profile in {PROFILE_DIR}, found {installed}"
    text = host.file(installed[0]).content_string
    return parse_profile(tomllib.loads(text), installed[0])


@pytest.fixture
def expected(host: Host, profile: Profile, request: pytest.FixtureRequest) -> Expected:
    online: str = request.config.getoption("--mdfeed-online-cpus")
    if not online:
        if _is_image(host):
            pytest.fail("chroot target: give --mdfeed-online-cpus (the CPUs it will boot with)")
        online = host.file("/sys/devices/system/cpu/online").content_string
    return Expected(profile, cpulist.parse(online))


def _unit(host: Host, profile: Profile) -> dict[str, str]:
    unit = profile.memlock.systemd_unit or "feeder.service"
    f = host.file(f"/etc/systemd/system/{unit}")
    assert f.is_file, f"{unit} is not installed in /etc/systemd/system"
    return unit_settings(f.content_string)


# --- files (every target) ------------------------------------------------------------------------


def test_installed_profile_matches(host: Host, profile: Profile) -> None:
    f = host.file(f"{PROFILE_DIR}/{profile.name}.toml")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    installed = parse_profile(tomllib.loads(f.content_string), f.path)
    # The same settings; only where each was read from differs.
    fields = [k for k in Profile.__dataclass_fields__ if k != "source"]
    assert {k: getattr(installed, k) for k in fields} == {k: getattr(profile, k) for k in fields}


@pytest.mark.parametrize(
    "path",
    [
        "/etc/sysctl.d/90-hosttune.conf",
        "/etc/sysctl.d/90-hosttune-swap.conf",
        "/etc/sysctl.d/90-hosttune-numa.conf",
        "/etc/security/limits.d/90-hosttune-memlock.conf",
        "/etc/default/grub.d/90-hosttune.cfg",
    ],
)
def test_dropin_is_what_hosttune_writes(host: Host, expected: Expected, path: str) -> None:
    f = host.file(path)
    assert f.is_file, f"{path} is missing"
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)
    assert f.content_string == expected.files()[path]


def test_unit_memlock_dropin(host: Host, expected: Expected) -> None:
    dropins = {p: t for p, t in expected.files().items() if p.startswith("/etc/systemd/")}
    assert dropins, "the profile names no systemd unit"
    for path, text in dropins.items():
        assert host.file(path).content_string == text


def test_thp_mode_set_at_boot(host: Host, profile: Profile) -> None:
    text = host.file("/etc/tmpfiles.d/90-hosttune-thp.conf").content_string
    lines = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    base = "/sys/kernel/mm/transparent_hugepage"
    assert lines == [
        ["w", f"{base}/enabled", "-", "-", "-", "-", profile.thp.enabled],
        ["w", f"{base}/defrag", "-", "-", "-", "-", profile.thp.defrag],
    ]


def test_irqbalance_bans_isolated_cpus(host: Host, expected: Expected) -> None:
    if not host.file("/usr/sbin/irqbalance").exists:
        pytest.skip("irqbalance is not installed: interrupt affinity stays as set")
    text = host.file("/etc/default/irqbalance").content_string
    assert f"IRQBALANCE_BANNED_CPULIST={cpulist.render(expected.isolated)}" in text.splitlines()


def test_feeder_user(host: Host, profile: Profile) -> None:
    user = host.user(profile.memlock.user)
    assert user.exists
    assert user.uid < 1000, "a system account"
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/var/lib/feeder"


def test_feeder_config_is_valid(host: Host, profile: Profile) -> None:
    f = host.file(FEEDER_CONFIG)
    assert (f.user, f.group, f.mode) == ("root", profile.memlock.user, 0o640)
    config = parse_config(tomllib.loads(f.content_string))
    assert config.exchanges, "the config names no exchange"


def test_feeder_unit(host: Host, profile: Profile, expected: Expected) -> None:
    s = _unit(host, profile)
    assert s["User"] == s["Group"] == profile.memlock.user
    assert s["ExecStart"].startswith(f"{VENV}/bin/feeder ")
    publisher = s["ExecStart"].split()[1] == "run"
    caps = PUBLISHER_CAPS if publisher else frozenset()
    assert frozenset(s["AmbientCapabilities"].split()) == caps
    assert frozenset(s["CapabilityBoundingSet"].split()) == caps
    assert s["NoNewPrivileges"] == "yes"
    assert s["LimitMEMLOCK"] == "infinity"
    assert s["Restart"] == "on-failure"
    assert cpulist.parse(s.get("CPUAffinity", "")) == expected.isolated


def test_feeder_unit_enabled(host: Host, profile: Profile) -> None:
    unit = profile.memlock.systemd_unit or "feeder.service"
    link = host.file(f"/etc/systemd/system/multi-user.target.wants/{unit}")
    assert link.is_symlink and link.linked_to == f"/etc/systemd/system/{unit}"


def test_toolkit_runs_on_the_target(host: Host, profile: Profile) -> None:
    out = host.run(f"{VENV}/bin/hosttune params --json --profile {PROFILE_DIR}/{profile.name}.toml")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().startswith("[")
    assert host.run(f"{VENV}/bin/feeder --help").rc == 0


# --- the running kernel (live targets) -----------------------------------------------------------


@pytest.mark.usefixtures("live")
def test_live_sysctls(host: Host, profile: Profile) -> None:
    wrong = {}
    for rule in profile.sysctl:
        value = " ".join(host.file(sysctl_path(rule.key)).content_string.split())
        if not satisfies(rule, value):
            wrong[rule.key] = value
    assert not wrong, f"sysctls not as the profile wants: {wrong}"


@pytest.mark.usefixtures("live")
def test_live_hugepages(host: Host, profile: Profile) -> None:
    meminfo = dict(
        line.split(":", 1) for line in host.file("/proc/meminfo").content_string.splitlines()
    )
    assert int(meminfo["HugePages_Total"]) >= profile.hugepages.pages_2m


@pytest.mark.usefixtures("live")
def test_live_thp(host: Host, profile: Profile) -> None:
    base = "/sys/kernel/mm/transparent_hugepage"
    assert selected(host.file(f"{base}/enabled").content_string) == profile.thp.enabled
    assert selected(host.file(f"{base}/defrag").content_string) == profile.thp.defrag


@pytest.mark.usefixtures("live")
@pytest.mark.parametrize("name", ["isolated", "nohz_full"])
def test_live_cpu_isolation(host: Host, expected: Expected, name: str) -> None:
    booted = host.file("/proc/cmdline").content_string.split()
    missing = [p for p in expected.boot_params if p not in booted]
    if missing:
        pytest.skip(f"not booted with the staged parameters yet ({' '.join(missing)}): reboot")
    text = host.file(f"/sys/devices/system/cpu/{name}").content_string.replace("(null)", "")
    assert expected.isolated <= cpulist.parse(text)


@pytest.mark.usefixtures("live")
def test_live_feeder_service(host: Host, profile: Profile, expected: Expected) -> None:
    unit = profile.memlock.systemd_unit or "feeder.service"
    pid = host.run(f"systemctl show --property MainPID --value {unit}").stdout.strip()
    if not pid.isdigit() or pid == "0":
        pytest.skip(f"{unit} is not running here (systemd not PID 1, or the unit is stopped)")
    lines = host.file(f"/proc/{pid}/status").content_string.splitlines()
    status = {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}
    publisher = "run" in host.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    caps = PUBLISHER_CAPS if publisher else frozenset()
    assert mask_has_only(status["CapBnd"], caps), caps_in_mask(status["CapBnd"])
    assert mask_has_only(status["CapAmb"], caps), caps_in_mask(status["CapAmb"])
    if expected.isolated:
        assert cpulist.parse(status["Cpus_allowed_list"]) == expected.isolated
    limits = host.file(f"/proc/{pid}/limits").content_string
    assert any(
        line.startswith("Max locked memory") and line.split()[3:5] == ["unlimited", "unlimited"]
        for line in limits.splitlines()
    )


@pytest.mark.usefixtures("live")
def test_live_hosttune_check_agrees(host: Host, profile: Profile) -> None:
    out = host.run(f"{VENV}/bin/hosttune check --json --profile {PROFILE_DIR}/{profile.name}.toml")
    assert out.rc in (0, 1), out.stderr
    rows = json.loads(out.stdout)["checks"]
    # What the roles own at runtime must pass; boot-time rows may wait for a reboot.
    owned = ("sysctl.", "thp.", "hugepages.2M", "memlock.", "swap.swappiness", "numa.")
    failing = [r for r in rows if r["id"].startswith(owned) and r["status"] == "fail"]
    assert not failing, failing
