"""Compose knobs: run checks, apply a profile through the journal, revert it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hosttune.change import Change
from hosttune.host import Host, HostError
from hosttune.journal import Journal
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip


def select(knobs: Sequence[Knob], only: Sequence[str]) -> list[Knob]:
    """Knobs whose id, or one of whose check ids, is named (prefix match: ``sysctl``)."""
    if not only:
        return list(knobs)
    return [
        k
        for k in knobs
        if any(o == k.id or o.startswith(k.id + ".") or k.id.startswith(o + ".") for o in only)
    ]


def _wanted(row_id: str, only: Sequence[str]) -> bool:
    return not only or any(row_id == o or row_id.startswith(o + ".") for o in only)


def run_checks(
    host: Host, profile: Profile, knobs: Sequence[Knob], only: Sequence[str] = ()
) -> list[CheckResult]:
    rows: list[CheckResult] = []
    for knob in select(knobs, only):
        try:
            found = knob.check(host, profile)
        except (HostError, OSError, ValueError) as e:
            # A knob that cannot read its host reports a skip row; it never takes the run down.
            found = [skip(knob.id, knob.title, f"could not evaluate: {e}")]
        rows.extend(r for r in found if _wanted(r.id, only) or _wanted(knob.id, only))
    return rows


@dataclass
class ApplyReport:
    applied: list[tuple[str, Change]] = field(default_factory=list)
    failed: list[tuple[str, Change, str]] = field(default_factory=list)
    reboot_required: bool = False


def plan(
    host: Host,
    profile: Profile,
    knobs: Sequence[Knob],
    *,
    runtime: bool = True,
    persistent: bool = True,
    only: Sequence[str] = (),
) -> list[tuple[Knob, Change]]:
    out = []
    for knob in select(knobs, only):
        try:
            changes = knob.plan(host, profile)
        except (OSError, ValueError) as e:
            # Nothing is applied when the host cannot even be read: the operator sees why first.
            raise HostError(f"cannot plan {knob.id}: {e}; nothing was changed") from e
        for change in changes:
            keep = runtime if change.runtime else persistent
            if keep:
                out.append((knob, change))
    return out


def apply(host: Host, journal: Journal, steps: Sequence[tuple[Knob, Change]]) -> ApplyReport:
    """Journal each change, then make it; a failure is reported and the rest continue."""
    report = ApplyReport()
    for knob, change in steps:
        journal.record(knob.id, change)
        try:
            change.do(host)
        except HostError as e:
            # A refused write changed nothing (e.g. a kernel-managed IRQ's affinity): keeping
            # it journaled would make revert fail on it too.
            journal.forget_last()
            report.failed.append((knob.id, change, str(e)))
            continue
        report.applied.append((knob.id, change))
        if change.needs_reboot():
            report.reboot_required = True
    return report


@dataclass
class RevertReport:
    reverted: list[tuple[str, Change]] = field(default_factory=list)
    failed: list[tuple[str, Change, str]] = field(default_factory=list)


def revert(host: Host, journal: Journal, knobs: Sequence[Knob]) -> RevertReport:
    """Undo every journaled change newest-first; entries that fail stay in the journal."""
    by_id = {k.id: k for k in knobs}
    report = RevertReport()
    remaining = []
    for entry in reversed(journal.entries()):
        knob = by_id.get(entry.knob)
        try:
            if knob is None:
                entry.change.undo(host)
            else:
                knob.revert(host, [entry.change])
        except HostError as e:
            report.failed.append((entry.knob, entry.change, str(e)))
            remaining.append(entry)
            continue
        report.reverted.append((entry.knob, entry.change))
    journal.replace(list(reversed(remaining)))
    return report


def summarize(rows: Sequence[CheckResult]) -> dict[str, object]:
    counts = {s.value: 0 for s in Status}
    for r in rows:
        counts[r.status.value] += 1
    return {
        **counts,
        "total": len(rows),
        "reboot_required": any(r.reboot and r.status in (Status.FAIL, Status.WARN) for r in rows),
    }
