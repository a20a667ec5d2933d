"""The hosttune command line: JSON schema, exit codes, clear errors, no tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.privilege import require_root

HOSTTUNE = [sys.executable, "-m", "hosttune.cli"]


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOSTTUNE, *args], capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload, no-any-return]


def schema() -> dict[str, object]:
    return json.loads(resources.files("hosttune.schema").joinpath("check.schema.json").read_text())  # type: ignore[no-any-return]


def test_check_json_on_this_host_matches_schema_and_exit_code() -> None:
    proc = run("check", "--json")
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema())
    statuses = [c["status"] for c in doc["checks"]]
    assert doc["summary"]["total"] == len(statuses)
    assert doc["summary"]["fail"] == statuses.count("fail")
    # Exit code: 1 exactly when some check fails.
    assert proc.returncode == (1 if "fail" in statuses else 0)
    ids = [c["id"] for c in doc["checks"]]
    assert len(ids) == len(set(ids)), "check ids are unique"
    for c in doc["checks"]:
        if c["status"] == "fail":
            assert c["fix"], f"{c['id']} fails without saying how to fix it"
        if c["status"] == "skip":
            assert c["observed"], f"{c['id']} is skipped without a reason"


def test_table_output_names_every_check() -> None:
    proc = run("check")
    doc = json.loads(run("check", "--json").stdout)
    for c in doc["checks"]:
        assert c["id"] in proc.stdout
    assert "pass," in proc.stdout.splitlines()[-1]


def test_only_filters_and_unknown_id_is_a_usage_error() -> None:
    doc = json.loads(run("check", "--json", "--only", "thp").stdout)
    assert {c["id"] for c in doc["checks"]} == {"thp.enabled", "thp.defrag"}
    proc = run("check", "--only", "no-such-check")
    assert proc.returncode == 2
    assert "no check has that id" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[thp]\nenabled = 'sometimes'\n", "thp.enabled: 'sometimes' is not one of"),
        ("[hugepages]\npages_2m = -1\n", "hugepages.pages_2m: must be >= 0"),
        ("[cpu]\nisolated = '3-1'\n", "cpu.isolated: bad cpu range"),
        ("[cpu]\nisolate = '1'\n", "cpu.isolate: unknown key"),
        ("[sysctls]\n", "sysctls: unknown section"),
        ("[sysctl\n", "not valid TOML"),
    ],
)
def test_bad_profile_is_one_clear_message(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    proc = run("check", "--profile", str(bad))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_missing_profile_file() -> None:
    proc = run("check", "--profile", "/nonexistent/p.toml")
    assert proc.returncode == 2 and "cannot read profile /nonexistent/p.toml" in proc.stderr


def test_check_against_a_fake_root(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel/mm/transparent_hugepage").mkdir(parents=True)
    (tmp_path / "sys/kernel/mm/transparent_hugepage/enabled").write_text("always madvise [never]\n")
    (tmp_path / "sys/kernel/mm/transparent_hugepage/defrag").write_text("[never]\n")
    proc = run("check", "--json", "--root", str(tmp_path), "--only", "thp")
    assert proc.returncode == 0
    assert {c["status"] for c in json.loads(proc.stdout)["checks"]} == {"pass"}


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "proc/sys/net/core").mkdir(parents=True)
    (tmp_path / "proc/sys/net/core/busy_read").write_text("0\n")
    prof = tmp_path / "p.toml"
    prof.write_text('[sysctl]\n"net.core.busy_read" = 50\n')
    proc = run(
        "apply",
        "--dry-run",
        "--json",
        "--root",
        str(tmp_path),
        "--profile",
        str(prof),
        "--only",
        "sysctl",
    )
    assert proc.returncode == 0
    changes = json.loads(proc.stdout)["changes"]
    assert {c["path"] for c in changes} == {
        "/proc/sys/net/core/busy_read",
        "/etc/sysctl.d/90-hosttune.conf",
    }
    assert (tmp_path / "proc/sys/net/core/busy_read").read_text() == "0\n"
    assert not (tmp_path / "etc").exists()


def test_apply_without_root_says_which_settings_need_what(tmp_path: Path) -> None:
    require_root("switching to an unprivileged user needs root")
    # pytest's tmp root is private to root: put the profile where nobody can read it.
    shared = Path(tempfile.mkdtemp(prefix="hosttune-test-", dir="/tmp"))
    shared.chmod(0o755)
    prof = shared / "p.toml"
    busy = int(Path("/proc/sys/net/core/busy_read").read_text()) + 1  # never compliant now
    prof.write_text(f'[sysctl]\n"net.core.busy_read" = {busy}\n')
    prof.chmod(0o644)
    # Start as root (the interpreter lives under /root), import, then drop to nobody: the same
    # process state an unprivileged operator would have when the CLI runs.
    code = (
        "import os, sys; import hosttune.cli as c; os.setgroups([]); os.setgid(65534); "
        "os.setuid(65534); sys.exit(c.main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "apply", "--profile", str(prof), "--only", "sysctl"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    shutil.rmtree(shared)
    assert proc.returncode == 2, proc.stderr
    assert "must run as root" in proc.stderr and "sysctl:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_params_prints_boot_parameters(tmp_path: Path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text('[cpu]\nisolated = "1"\n[hugepages]\npages_2m = 64\nboot = true\n')
    proc = run("params", "--json", "--profile", str(prof))
    params = json.loads(proc.stdout)
    assert "isolcpus=managed_irq,domain,1" in params
    assert params[params.index("hugepagesz=2M") + 1] == "hugepages=64"
