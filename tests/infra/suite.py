"""Run the testinfra suite (tuned_host.py) in a separate pytest and read each test's outcome.

A separate process because testinfra's ``--hosts``/``--connection`` are session-wide options,
and because the suite must run with ``CI`` unset: there a skip (a live check on a chroot
target) is an expected outcome that the caller asserts, not a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

SUITE = Path(__file__).resolve().parent / "tuned_host.py"
PROJECT = SUITE.parents[2]


@dataclass(frozen=True)
class Outcome:
    status: str  # passed | failed | skipped | error
    message: str


@dataclass(frozen=True)
class SuiteRun:
    returncode: int
    output: str
    outcomes: dict[str, Outcome]  # test name (with parameters) -> outcome

    def named(self, status: str) -> list[str]:
        return sorted(n for n, o in self.outcomes.items() if o.status == status)


def run_suite(args: list[str], junit: Path, timeout_s: float = 300) -> SuiteRun:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    argv = [
        sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", "-q",
        f"--junitxml={junit}", *args,
    ]  # fmt: skip
    proc = subprocess.run(
        argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    outcomes: dict[str, Outcome] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            # testinfra adds the target to the id: test_x[chroot:///root-path-param]
            name = case.get("name", "")
            status, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                node = case.find(tag)
                if node is not None:
                    status = {"failure": "failed"}.get(tag, tag)
                    message = node.get("message", "") or (node.text or "")
            outcomes[name] = Outcome(status, message)
    return SuiteRun(proc.returncode, proc.stdout + proc.stderr, outcomes)
