"""Automatic NUMA balancing (kernel.numa_balancing)."""

from __future__ import annotations

from hosttune import cpulist, cpus
from hosttune.change import Change, SetValue, WriteFile
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.knobs.sysctl import dropin_text, sysctl_path
from hosttune.profile import Profile, SysctlRule
from hosttune.result import CheckResult, Status, skip

BALANCING = sysctl_path("kernel.numa_balancing")
DROPIN = "/etc/sysctl.d/90-hosttune-numa.conf"
# 0 off, 1 normal balancing, 2 memory tiering, 3 both; any non-zero value migrates pages.
_MODES = {"0": "off", "1": "on", "2": "on (memory tiering)", "3": "on (normal + memory tiering)"}


def _want(balancing: bool) -> str:
    return "1" if balancing else "0"


def _ok(value: str, balancing: bool) -> bool:
    return (value != "0") == balancing


def _nodes(host: Host) -> list[int]:
    try:
        return cpus.numa_nodes(host)
    except (cpulist.CpuListError, HostError):
        return []  # only used for a note; the value check does not depend on it


def _read(host: Host) -> str | None:
    raw = host.read_opt(BALANCING)
    return None if raw is None else raw.strip()


class NumaKnob(Knob):
    """Automatic NUMA balancing (``[numa]`` in the profile).

    With balancing on, the kernel periodically unmaps pages to see which node touches them and
    migrates them: the feeder's hot loop takes page faults at random. Row ``numa.balancing``
    compares ``/proc/sys/kernel/numa_balancing`` with the profile::

        [numa]
        balancing = false

    ``apply`` writes the value and persists it in ``/etc/sysctl.d/90-hosttune-numa.conf``.
    """

    id = "numa"
    title = "NUMA balancing"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        rid, title = "numa.balancing", "automatic NUMA balancing"
        wanted = profile.numa.balancing
        expected = "on" if wanted else "off (0)"
        value = _read(host)
        if value is None:
            return [skip(rid, title, "kernel built without NUMA balancing", expected)]
        if value not in _MODES:
            return [skip(rid, title, f"unexpected content in {BALANCING}: {value!r}", expected)]
        observed = f"{_MODES[value]} ({value})"
        if len(_nodes(host)) == 1:
            observed += "; single NUMA node, so there is nothing to migrate"
        ok = _ok(value, wanted)
        fix = (
            ""
            if ok
            else (
                f"run `hosttune apply` (sysctl -w kernel.numa_balancing={_want(wanted)}, "
                f"persisted in {DROPIN})"
            )
        )
        status = Status.PASS if ok else Status.FAIL
        return [CheckResult(rid, title, status, observed, expected, fix)]

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        wanted = profile.numa.balancing
        value = _read(host)
        if value is None or value not in _MODES or _ok(value, wanted):
            return []
        text = dropin_text((SysctlRule("kernel.numa_balancing", "eq", _want(wanted)),))
        changes: list[Change] = [SetValue(path=BALANCING, old=value, new=_want(wanted))]
        if dropin := WriteFile.replacing(host, DROPIN, text):
            changes.append(dropin)
        return changes
