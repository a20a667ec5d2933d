"""Run ``ansible/site.yml`` the way the tests need it and read the result.

Every run gets its own ANSIBLE_HOME and temp directories under a scratch directory, so nothing
is left in the caller's ``~/.ansible`` (check mode against this host must leave it as found).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
SITE = ANSIBLE_DIR / "site.yml"
# ansible-playbook next to the running interpreter (the project's venv), else on PATH.
_BIN = Path(sys.executable).parent

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)",
    re.MULTILINE,
)
_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.+?)\]", re.MULTILINE)


@dataclass(frozen=True)
class Recap:
    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, Recap]

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported ``changed`` (for a readable failure message)."""
        names: list[str] = []
        task = ""
        for line in self.output.splitlines():
            if m := _TASK.match(line):
                task = m.group("name")
            elif line.startswith("changed:") and task not in names:
                names.append(task)
        return names

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def ansible_bin(name: str) -> str:
    local = _BIN / name
    return str(local) if local.exists() else name


def run_playbook(
    inventory: Path,
    scratch: Path,
    *,
    extra_args: list[str] | None = None,
    extra_vars: dict[str, str] | None = None,
    playbook: Path = SITE,
    timeout_s: float = 900,
) -> PlaybookRun:
    """Run ``playbook`` against ``inventory``; never raises for a failed play (see returncode)."""
    home = scratch / "ansible-home"
    for d in ("tmp-local", "tmp-remote"):
        (home / d).mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp-local"),
        "ANSIBLE_REMOTE_TEMP": str(home / "tmp-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [ansible_bin("ansible-playbook"), "-i", str(inventory), str(playbook)]
    for key, value in (extra_vars or {}).items():
        argv += ["-e", f"{key}={value}"]
    argv += extra_args or []
    proc = subprocess.run(
        argv,
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = proc.stdout + proc.stderr
    recap = {
        m.group("host"): Recap(
            *(int(m.group(k)) for k in ("ok", "changed", "unreachable", "failed", "skipped"))
        )
        for m in _RECAP.finditer(proc.stdout)
    }
    return PlaybookRun(proc.returncode, output, recap)
