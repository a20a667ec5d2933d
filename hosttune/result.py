"""What a check reports: one row per setting."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One setting: what it is, what it should be, and how to get there.

    ``fix`` is a command or a file edit an operator can act on; empty when nothing is to do.
    For ``skip`` rows ``observed`` says why the check could not be evaluated here.
    """

    id: str
    title: str
    status: Status
    observed: str
    expected: str
    fix: str = ""
    reboot: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        return d


def skip(id: str, title: str, why: str, expected: str = "") -> CheckResult:
    return CheckResult(id=id, title=title, status=Status.SKIP, observed=why, expected=expected)
