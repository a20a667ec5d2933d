"""Swap: active swap areas (reported, never switched off automatically) and vm.swappiness."""

from __future__ import annotations

from dataclasses import dataclass

from hosttune.change import Change, SetValue, WriteFile
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.knobs.sysctl import dropin_text, sysctl_path
from hosttune.profile import Profile, SwapSection, SysctlRule
from hosttune.result import CheckResult, Status, skip

SWAPS = "/proc/swaps"
FSTAB = "/etc/fstab"
SWAPPINESS = sysctl_path("vm.swappiness")
DROPIN = "/etc/sysctl.d/90-hosttune-swap.conf"


@dataclass(frozen=True)
class SwapArea:
    name: str
    kind: str  # partition | file
    size_kib: int | None
    used_kib: int | None

    def describe(self) -> str:
        if self.size_kib is None:
            return f"{self.name} ({self.kind})"
        used = f", {_mib(self.used_kib)} used" if self.used_kib is not None else ""
        return f"{self.name} ({self.kind}, {_mib(self.size_kib)}{used})"


def _mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def _unescape(name: str) -> str:
    # /proc/swaps and /etc/fstab escape blanks in paths as octal (\040).
    return name.replace("\\040", " ").replace("\\011", "\t")


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_swaps(text: str) -> list[SwapArea]:
    """Active areas from /proc/swaps (header line, then name type size used priority)."""
    areas = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if not f:
            continue
        f += [""] * (4 - len(f))
        areas.append(SwapArea(_unescape(f[0]), f[1] or "unknown type", _int(f[2]), _int(f[3])))
    return areas


def fstab_swaps(text: str) -> list[str]:
    """Swap entries /etc/fstab activates at boot (``swap`` type without ``noauto``)."""
    found = []
    for line in text.splitlines():
        f = line.split("#", 1)[0].split()
        options = f[3].split(",") if len(f) > 3 else []
        if len(f) >= 3 and f[2] == "swap" and "noauto" not in options:
            found.append(_unescape(f[0]))
    return found


def _dropin(section: SwapSection) -> str:
    return dropin_text((SysctlRule("vm.swappiness", "max", str(section.swappiness_max)),))


class SwapKnob(Knob):
    """Swap (``[swap]`` in the profile).

    - ``swap.active``: areas listed in ``/proc/swaps``. A page of the feeder swapped out is a
      millisecond stall, so active swap is a warning unless ``allow_active_swap`` is set (also
      when ``/etc/fstab`` would turn swap on at the next boot). ``apply`` never runs ``swapoff``:
      on a loaded host that can trigger the OOM killer; the fix says how to do it.
    - ``swap.swappiness``: ``vm.swappiness`` must be at most ``swappiness_max``.

    ::

        [swap]
        allow_active_swap = false
        swappiness_max = 10

    ``apply`` writes ``vm.swappiness`` and persists it in ``/etc/sysctl.d/90-hosttune-swap.conf``.
    """

    id = "swap"
    title = "swap"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        return [self._active_row(host, profile.swap), self._swappiness_row(host, profile.swap)]

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        section = profile.swap
        value = _swappiness(host)
        if value is None or value <= section.swappiness_max:
            return []
        changes: list[Change] = [
            SetValue(path=SWAPPINESS, old=str(value), new=str(section.swappiness_max))
        ]
        if dropin := WriteFile.replacing(host, DROPIN, _dropin(section)):
            changes.append(dropin)
        return changes

    def _active_row(self, host: Host, section: SwapSection) -> CheckResult:
        rid, title = "swap.active", "active swap"
        expected = "swap allowed" if section.allow_active_swap else "no active swap"
        try:
            areas = parse_swaps(host.read(SWAPS))
        except HostError as e:
            return skip(rid, title, f"kernel without swap support or unreadable: {e}", expected)
        at_boot = fstab_swaps(host.read_opt(FSTAB) or "")
        if areas:
            listed = ", ".join(a.describe() for a in areas)
            observed = f"{len(areas)} swap area(s) active: {listed}"
        else:
            observed = "no active swap"
        if at_boot:
            observed += f"; {FSTAB} enables swap at boot: {', '.join(at_boot)}"
        if section.allow_active_swap or not (areas or at_boot):
            return CheckResult(rid, title, Status.PASS, observed, expected)
        steps = ["`swapoff -a` (needs enough free RAM for what is swapped out)"] if areas else []
        if at_boot:
            steps.append(
                f"comment out the swap lines in {FSTAB} (and `systemctl mask` any swap unit or "
                "zram generator) so it stays off after a reboot"
            )
        fix = "; ".join(steps) + " (not done by `hosttune apply`)"
        return CheckResult(rid, title, Status.WARN, observed, expected, fix=fix)

    def _swappiness_row(self, host: Host, section: SwapSection) -> CheckResult:
        rid, title = "swap.swappiness", "vm.swappiness"
        expected = f"<= {section.swappiness_max}"
        raw = host.read_opt(SWAPPINESS)
        if raw is None:
            return skip(rid, title, f"{SWAPPINESS} is not available on this kernel", expected)
        value = _swappiness(host)
        if value is None:
            why = f"unexpected content in {SWAPPINESS}: {raw.strip()!r}"
            return skip(rid, title, why, expected)
        ok = value <= section.swappiness_max
        fix = (
            ""
            if ok
            else (
                f"run `hosttune apply` (sysctl -w vm.swappiness={section.swappiness_max}, "
                f"persisted in {DROPIN})"
            )
        )
        return CheckResult(
            rid, title, Status.PASS if ok else Status.FAIL, str(value), expected, fix=fix
        )


def _swappiness(host: Host) -> int | None:
    raw = (host.read_opt(SWAPPINESS) or "").strip()
    return int(raw) if raw.isdigit() else None
