"""Turn check rows into a terminal table or the ``--json`` document."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from typing import Any

from hosttune.engine import summarize
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status

_COLOURS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "90"}


def check_document(
    rows: Sequence[CheckResult], profile: Profile, elapsed_s: float
) -> dict[str, Any]:
    return {
        "profile": {"name": profile.name, "source": profile.source},
        "checks": [r.to_json() for r in rows],
        "summary": summarize(rows),
        "elapsed_s": round(elapsed_s, 4),
    }


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def table(rows: Sequence[CheckResult], colour: bool) -> str:
    """Aligned columns; the fix goes on its own line under a row that needs one."""
    width = shutil.get_terminal_size((120, 24)).columns
    idw = min(max((len(r.id) for r in rows), default=5), 40)
    obw = min(max((len(r.observed) for r in rows), default=8), 44)
    head = f"{'CHECK':<{idw}}  {'STATUS':<6}  {'OBSERVED':<{obw}}  {'EXPECTED':<24}  REBOOT"
    lines = [head, "-" * min(len(head) + 8, width)]
    for r in rows:
        status = r.status.value.upper()
        shown = f"\033[{_COLOURS[r.status]}m{status:<6}\033[0m" if colour else f"{status:<6}"
        lines.append(
            f"{_clip(r.id, idw):<{idw}}  {shown}  {_clip(r.observed, obw):<{obw}}  "
            f"{_clip(r.expected, 24):<24}  {'yes' if r.reboot else ''}"
        )
        if r.fix and r.status is not Status.PASS:
            lines.append(f"{'':<{idw}}  fix: {r.fix}")
    return "\n".join(lines)


def summary_line(rows: Sequence[CheckResult]) -> str:
    s = summarize(rows)
    text = f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail, {s['skip']} skip"
    if s["reboot_required"]:
        text += " — reboot required for some fixes"
    return text
