"""Apply a knob's plan to a fake tree and revert it, proving the tree comes back byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from hosttune.change import Change
from hosttune.host import Host
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> content).

    Kernel values (/proc, /sys) are compared without their trailing newline: the kernel prints
    one whatever was written, while a fake tree keeps the bytes of the last write.
    """
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            rel = str(p.relative_to(root))
            text = p.read_text()
            out[rel] = text.rstrip("\n") if rel.startswith(("proc/", "sys/")) else text
    return out


def roundtrip(knob: Knob, host: Host, profile: Profile) -> list[CheckResult]:
    """plan -> do -> check -> revert (through the journal's JSON form); returns the rows seen
    while applied, after asserting the plan is non-empty, idempotent, and exactly undone."""
    before = snapshot(host.root)
    changes = knob.plan(host, profile)
    assert changes, "expected a non-empty plan"
    for change in changes:
        change.do(host)
    applied = knob.check(host, profile)
    assert knob.plan(host, profile) == [], "a second apply must have nothing left to do"
    journaled = [Change.from_json(json.loads(json.dumps(c.to_json()))) for c in changes]
    knob.revert(host, journaled)
    assert snapshot(host.root) == before
    return applied
