"""The fault matrix over veth (root; runs in CI): every fault injected, detected, recovered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from feeder.faults import Plan, matrix
from tests.privilege import require_root


def test_every_fault_is_detected_and_recovered() -> None:
    require_root("the demo builds network namespaces")
    proc = subprocess.run(
        [sys.executable, "-m", "feeder", "demo", "--faults", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.stdout, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    faults = {f["name"]: f for f in report["faults"]}
    assert set(faults) == set(matrix(300))
    for f in faults.values():
        assert set(f) == {"name", "injected", "detected", "recovered", "ok"}
        assert f["ok"], f
    # Whatever was injected, nothing is missing at the end and every book matches.
    assert report["missing_messages"] == 0 and report["received"] == report["sent"]
    assert all(not e["books_mismatched"] for e in report["exchanges"].values())
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_plan_combines_faults_and_refuses_unknown_names() -> None:
    plan = Plan.build(["sequence_gap", "loss_both_lines", "late_sender"], rate=300)
    assert plan.sim == ["okx:skip_sequence@600"]
    assert str(plan.drop_a) == "7:3" and str(plan.drop_b) == "11:5"
    assert plan.run == ["--sender-delay", "1.5"] and not plan.restart
    assert plan.exchanges() == {"okx"}
    with pytest.raises(ValueError, match="unknown fault 'meteor'"):
        Plan.build(["meteor"], rate=300)
    proc = subprocess.run(
        [sys.executable, "-m", "feeder", "demo", "--faults", "meteor"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "unknown fault 'meteor'" in proc.stderr
    assert "Traceback" not in proc.stderr
