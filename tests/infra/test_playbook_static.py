"""What can be checked without a target: syntax, builtin modules only, variable prefixes, the
generated defaults being current, the profile template and the cpulist filters."""

from __future__ import annotations

import importlib.util
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from hosttune import cpulist
from hosttune.cpus import isolated_target
from hosttune.export import ansible_defaults, main
from hosttune.profile import load_profile, parse_profile
from tests.infra.expected import host_with_cpus
from tests.infra.playbook import ANSIBLE_DIR, ansible_bin

ROLES = ANSIBLE_DIR / "roles"
GENERATED = ROLES / "hosttune/defaults/main/profile.yml"
# Task keywords (not modules) that may appear next to the module key.
KEYWORDS = {
    "name", "when", "register", "loop", "loop_control", "notify", "changed_when", "failed_when",
    "check_mode", "delegate_to", "run_once", "vars", "tags", "become", "ignore_errors", "listen",
    "no_log", "environment",
}  # fmt: skip


def _tasks(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [t for t in doc or [] if isinstance(t, dict)]


def _task_files() -> list[Path]:
    return sorted([*ROLES.glob("*/tasks/*.yml"), *ROLES.glob("*/handlers/*.yml")])


def test_syntax_check(tmp_path: Path) -> None:
    proc = subprocess.run(
        [ansible_bin("ansible-playbook"), "--syntax-check", "-i", "inventory/example.yml",
         "site.yml"],
        cwd=ANSIBLE_DIR,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
             "ANSIBLE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", _task_files(), ids=lambda p: str(p.relative_to(ROLES)))
def test_only_builtin_modules(path: Path) -> None:
    for task in _tasks(path):
        modules = set(task) - KEYWORDS
        assert len(modules) == 1, f"{task.get('name')}: modules {modules}"
        (module,) = modules
        assert module.startswith("ansible.builtin."), f"{task.get('name')}: {module}"


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir()))
def test_variables_prefixed_by_role(role: str) -> None:
    files = [*ROLES.glob(f"{role}/defaults/**/*.yml"), *ROLES.glob(f"{role}/vars/*.yml")]
    names = [k for f in files for k in (yaml.safe_load(f.read_text()) or {})]
    for task_file in ROLES.glob(f"{role}/*/*.yml"):
        if task_file.parent.name not in ("tasks", "handlers"):
            continue
        for task in _tasks(task_file):
            if "register" in task:
                names.append(task["register"])
            names += list((task.get("ansible.builtin.set_fact") or {}).keys())
    assert names
    assert [n for n in names if not n.startswith(f"{role}_")] == []


def test_roles_need_no_galaxy() -> None:
    for meta in ROLES.glob("*/meta/main.yml"):
        doc = yaml.safe_load(meta.read_text())
        for dep in doc.get("dependencies", []):
            assert (ROLES / dep["role"]).is_dir(), f"{meta}: {dep} is not a role here"
    for play in yaml.safe_load((ANSIBLE_DIR / "site.yml").read_text()):
        assert "collections" not in play


def test_generated_defaults_are_current() -> None:
    assert GENERATED.read_text() == ansible_defaults(load_profile()), (
        "run: python -m hosttune.export --output ansible/roles/hosttune/defaults/main/profile.yml"
    )
    assert main(["--output", str(GENERATED), "--check"]) == 0


def test_generated_defaults_hold_every_profile_value() -> None:
    values = yaml.safe_load(GENERATED.read_text())
    p = load_profile()
    assert values["hosttune_hugepages_pages_2m"] == p.hugepages.pages_2m
    assert values["hosttune_cpu_isolated"] == p.cpu.isolated
    assert values["hosttune_memlock_limit"] == p.memlock.limit
    assert [(r["key"], r["op"], r["value"]) for r in values["hosttune_sysctl"]] == [
        (r.key, r.op, r.value) for r in p.sysctl
    ]


def test_export_check_notices_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "profile.yml"
    stale.write_text(GENERATED.read_text().replace("512", "256"))
    assert main(["--output", str(stale), "--check"]) == 1
    assert main(["--output", str(stale)]) == 0
    assert main(["--output", str(stale), "--check"]) == 0


def test_profile_template_renders_the_builtin_profile(tmp_path: Path) -> None:
    """The role's profile.toml.j2 over the generated defaults gives back the same profile."""
    dest = tmp_path / "profile.toml"
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  vars_files:\n"
        f"    - {GENERATED}\n"
        f"    - {ROLES}/hosttune/defaults/main/role.yml\n"
        f"    - {ROLES}/hosttune/vars/main.yml\n"
        f"    - {ROLES}/mdfeed/defaults/main.yml\n"
        "  tasks:\n"
        "    - ansible.builtin.template:\n"
        f"        src: {ROLES}/hosttune/templates/profile.toml.j2\n"
        f"        dest: {dest}\n"
    )
    proc = subprocess.run(
        [ansible_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_HOME": str(tmp_path / "home"),
             "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_REMOTE_TEMP": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    rendered = parse_profile(tomllib.loads(dest.read_text()), "rendered")
    builtin = load_profile()
    assert {**vars(rendered), "source": ""} == {**vars(builtin), "source": ""}


def _filters() -> ModuleType:
    path = ROLES / "hosttune/filter_plugins/cpulist.py"
    spec = importlib.util.spec_from_file_location("hosttune_cpulist_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTERS = _filters()


@given(st.frozensets(st.integers(0, 300), max_size=40))
def test_filter_renders_like_hosttune(cpus: frozenset[int]) -> None:
    text = cpulist.render(cpus)
    assert FILTERS.cpulist_render(sorted(cpus)) == text
    assert FILTERS.cpulist_expand(text) == sorted(cpus)


@given(st.integers(0, 64), st.integers(0, 64), st.integers(1, 8), st.integers(1, 8))
def test_filter_parses_strides_like_hosttune(a: int, span: int, used: int, group: int) -> None:
    text = f"{a}-{a + span}:{min(used, group)}/{group}"
    assert FILTERS.cpulist_expand(text) == sorted(cpulist.parse(text))


@pytest.mark.parametrize("spec", ["auto", "", "1", "2-3", "1,3-4"])
@pytest.mark.parametrize("online", ["0", "0-1", "0-7", "0-3,8-11"])
def test_isolated_filter_agrees_with_hosttune(spec: str, online: str, tmp_path: Path) -> None:
    base = load_profile()
    profile = parse_profile(
        {"cpu": {"isolated": spec}, "memlock": {"user": base.memlock.user}}, "test"
    )
    host = host_with_cpus(cpulist.parse(online), tmp_path)
    assert FILTERS.hosttune_isolated(spec, online) == cpulist.render(isolated_target(host, profile))


@pytest.mark.parametrize("bad", ["1-", "a", "3-1", "0-7:0/4", "0-7:5/4", "99999999"])
def test_filter_rejects_bad_cpulists(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ansible's first error object loads its config, which creates a temp dir: not in ~.
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path))
    from ansible.errors import AnsibleFilterError  # type: ignore[import-untyped]

    with pytest.raises(AnsibleFilterError, match="bad cpu list"):
        FILTERS.cpulist_expand(bad)
    with pytest.raises(cpulist.CpuListError):
        cpulist.parse(bad)


def _ansible_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote"),
        "ANSIBLE_NOCOLOR": "1",
    }


def test_chroot_connection_names_a_bad_root(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-root"
    proc = subprocess.run(
        [ansible_bin("ansible"), "all", "-i", f"{missing},", "-c", "chroot", "-m", "ping"],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert f"chroot '{missing}': not an absolute path to a directory" in proc.stdout


def test_missing_wheelhouse_is_a_clear_error(tmp_path: Path) -> None:
    """Before touching the host, the play says where the wheels should be and how to build them."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "feeders:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      mdfeed_wheelhouse: {tmp_path / 'empty'}\n"
    )
    proc = subprocess.run(
        [ansible_bin("ansible-playbook"), "-i", str(inventory), "site.yml", "--check"],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert f"No mdfeed_toolkit wheel in {tmp_path / 'empty'}" in proc.stdout
    assert "python -m tests.infra.wheelhouse" in proc.stdout
    assert "changed=0" in proc.stdout
