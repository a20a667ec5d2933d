"""Transparent huge pages: mode and defrag."""

from __future__ import annotations

from hosttune.change import Change, SetValue
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

BASE = "/sys/kernel/mm/transparent_hugepage"


def selected(text: str) -> str:
    """The active choice of a sysfs multiple-choice file: ``always [madvise] never`` -> madvise."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    # Some kernels print only the current value.
    return text.strip()


class ThpKnob(Knob):
    """Transparent huge pages (``[thp]``).

    khugepaged collapsing pages and synchronous compaction on a page fault stall the hot thread
    for milliseconds; a feeder uses explicit huge pages instead, so THP is best off::

        [thp]
        enabled = "never"     # always | madvise | never
        defrag = "never"      # always | defer | defer+madvise | madvise | never

    ``apply`` writes ``/sys/kernel/mm/transparent_hugepage/{enabled,defrag}``; to keep it across
    reboots the kernel command line gets ``transparent_hugepage=`` (see ``cmdline``).
    """

    id = "thp"
    title = "transparent huge pages"

    def _wanted(self, profile: Profile) -> dict[str, str]:
        return {"enabled": profile.thp.enabled, "defrag": profile.thp.defrag}

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        rows = []
        for name, want in self._wanted(profile).items():
            rid, title, path = f"thp.{name}", f"THP {name}", f"{BASE}/{name}"
            try:
                text = host.read(path)
            except HostError as e:
                rows.append(skip(rid, title, f"kernel without THP: {e}", want))
                continue
            have = selected(text)
            ok = have == want
            rows.append(
                CheckResult(
                    id=rid,
                    title=title,
                    status=Status.PASS if ok else Status.FAIL,
                    observed=have,
                    expected=want,
                    fix="" if ok else f"echo {want} > {path} (or `hosttune apply`)",
                )
            )
        return rows

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        changes: list[Change] = []
        for name, want in self._wanted(profile).items():
            text = host.read_opt(f"{BASE}/{name}")
            if text is not None and selected(text) != want:
                changes.append(SetValue(path=f"{BASE}/{name}", old=selected(text), new=want))
        return changes
