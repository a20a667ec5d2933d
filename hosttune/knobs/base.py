"""The shape every tuning knob has: check, plan (= what apply does), revert.

A knob is one self-contained unit for one setting family. Its class docstring is its user
documentation (the README's check list is generated from it). ``check`` never raises for a host
that merely lacks the setting: it returns a ``skip`` row saying why.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from hosttune.change import Change
from hosttune.host import Host
from hosttune.profile import Profile
from hosttune.result import CheckResult


class Knob(ABC):
    #: Family id; every check row id starts with it (``sysctl.net.core.rmem_max``).
    id: ClassVar[str]
    title: ClassVar[str]
    #: Privilege needed to apply, shown when not root.
    privilege: ClassVar[str] = "root (writes /proc/sys, /sys and /etc)"

    @abstractmethod
    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        """Read the host and compare it with the profile: one row per setting."""

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        """The changes ``apply`` would make (empty when compliant or nothing can be done)."""
        return []

    def revert(self, host: Host, changes: Sequence[Change]) -> None:
        """Undo this knob's journaled changes, newest first."""
        for change in reversed(changes):
            change.undo(host)
