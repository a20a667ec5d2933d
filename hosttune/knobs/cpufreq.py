"""CPU frequency governor and idle states (cpufreq and cpuidle in sysfs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hosttune import cpulist
from hosttune.change import Change, SetValue
from hosttune.host import Host
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

CPU_DIR = "/sys/devices/system/cpu"
IDLE_DRIVER = f"{CPU_DIR}/cpuidle/current_driver"
INTEL_MAX_CSTATE = "/sys/module/intel_idle/parameters/max_cstate"


def cpu_ids(host: Host) -> list[int]:
    return sorted(int(n[3:]) for n in host.listdir(CPU_DIR) if re.fullmatch(r"cpu\d+", n))


def _read(host: Host, path: str) -> str | None:
    raw = host.read_opt(path)
    return None if raw is None else raw.strip()


def by_value(per_cpu: dict[int, str]) -> str:
    """``{0: "a", 1: "a", 2: "b"}`` -> ``cpu0-1: a; cpu2: b``."""
    groups: dict[str, set[int]] = {}
    for cpu, value in per_cpu.items():
        groups.setdefault(value, set()).add(cpu)
    ordered = sorted(groups.items(), key=lambda kv: min(kv[1]))
    return "; ".join(f"cpu{cpulist.render(cpus)}: {value}" for value, cpus in ordered)


def _cpus(cpus: Iterable[int]) -> str:
    return "cpu" + cpulist.render(set(cpus))


# --- governor ----------------------------------------------------------------------------------


def governor_path(cpu: int) -> str:
    return f"{CPU_DIR}/cpu{cpu}/cpufreq/scaling_governor"


@dataclass(frozen=True)
class Governors:
    current: dict[int, str]  # CPUs that expose cpufreq
    unoffered: dict[int, str]  # CPUs whose driver does not offer the wanted one -> what it offers
    driver: str | None


def read_governors(host: Host, want: str) -> Governors:
    current: dict[int, str] = {}
    unoffered: dict[int, str] = {}
    driver = None
    for cpu in cpu_ids(host):
        gov = _read(host, governor_path(cpu))
        if not gov:
            continue
        current[cpu] = gov
        base = f"{CPU_DIR}/cpu{cpu}/cpufreq"
        driver = driver or _read(host, f"{base}/scaling_driver")
        offered = _read(host, f"{base}/scaling_available_governors")
        if offered is not None and want not in offered.split():
            unoffered[cpu] = ", ".join(offered.split()) or "none"
    return Governors(current, unoffered, driver)


# --- idle states -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdleState:
    cpu: int
    index: int  # K in stateK
    name: str
    latency_us: int | None  # exit latency; None when unreadable
    disabled: bool | None  # None: no (readable) `disable` attribute, so no runtime control

    @property
    def disable_path(self) -> str:
        return f"{CPU_DIR}/cpu{self.cpu}/cpuidle/state{self.index}/disable"

    def label(self) -> str:
        return f"{self.name} ({self.latency_us} µs)"


def read_idle_states(host: Host) -> list[IdleState]:
    states = []
    for cpu in cpu_ids(host):
        base = f"{CPU_DIR}/cpu{cpu}/cpuidle"
        for entry in host.listdir(base):
            if not re.fullmatch(r"state\d+", entry):
                continue
            d = f"{base}/{entry}"
            latency = _read(host, f"{d}/latency") or ""
            disable = _read(host, f"{d}/disable")
            states.append(
                IdleState(
                    cpu=cpu,
                    index=int(entry[5:]),
                    name=_read(host, f"{d}/name") or entry,
                    latency_us=int(latency) if latency.isdigit() else None,
                    disabled=None if disable not in ("0", "1") else disable == "1",
                )
            )
    return sorted(states, key=lambda s: (s.cpu, s.index))


def _grouped(states: Iterable[IdleState]) -> str:
    """``C6 (133 µs) on cpu0-3, C3 (33 µs) on cpu0-1``."""
    groups: dict[tuple[int, str, int | None], set[int]] = {}
    for s in states:
        groups.setdefault((s.index, s.name, s.latency_us), set()).add(s.cpu)
    return ", ".join(
        f"{name} ({lat} µs) on {_cpus(cpus)}" for (_, name, lat), cpus in sorted(groups.items())
    )


def intel_max_cstate(states: list[IdleState], max_us: int) -> int:
    """The ``intel_idle.max_cstate`` that keeps only the states fast enough to exit.

    intel_idle numbers its states from 1 and does not count the POLL state cpuidle adds at 0; it
    stops at the first state over the limit, so deeper states must not be shallower in latency.
    """
    allowed = 0
    for s in sorted((s for s in states if s.cpu == states[0].cpu), key=lambda s: s.index):
        if s.name == "POLL":
            continue
        if s.latency_us is None or s.latency_us > max_us:
            break
        allowed += 1
    return allowed


class CpufreqKnob(Knob):
    """CPU frequency governor and idle-state depth (``[cpu]`` governor, max_cstate_latency_us).

    - ``cpufreq.governor``: ``scaling_governor`` of every CPU that exposes cpufreq (VMs usually
      don't: the row is then skipped) must be the profile's governor; a governor the driver does
      not offer (``scaling_available_governors``) is a failure with the choices in the fix.
    - ``cpufreq.cstates``: every cpuidle state whose exit latency exceeds
      ``max_cstate_latency_us`` must be disabled; waking from a deep C-state costs the feeder
      tens to hundreds of µs per packet burst. When ``intel_idle`` is loaded the row also shows
      its ``max_cstate`` and the kernel command line that makes the limit permanent.

    ::

        [cpu]
        governor = "performance"
        max_cstate_latency_us = 10

    ``apply`` writes each ``scaling_governor`` and each too-deep state's ``disable`` file. Both
    are runtime settings, lost at reboot: boot with ``cpufreq.default_governor=`` and
    ``intel_idle.max_cstate=`` (or run ``hosttune apply`` at boot) to keep them.
    """

    id = "cpufreq"
    title = "CPU frequency and idle states"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        return [self._governor_row(host, profile), self._cstates_row(host, profile)]

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        changes: list[Change] = []
        want = profile.cpu.governor
        if want is not None:
            govs = read_governors(host, want)
            changes += [
                SetValue(path=governor_path(cpu), old=gov, new=want)
                for cpu, gov in govs.current.items()
                if gov != want and cpu not in govs.unoffered
            ]
        max_us = profile.cpu.max_cstate_latency_us
        if max_us is not None:
            changes += [
                SetValue(path=s.disable_path, old="0", new="1")
                for s in read_idle_states(host)
                if s.disabled is False and s.latency_us is not None and s.latency_us > max_us
            ]
        return changes

    def _governor_row(self, host: Host, profile: Profile) -> CheckResult:
        rid, title = "cpufreq.governor", "CPU frequency governor"
        want = profile.cpu.governor
        if want is None:
            return skip(rid, title, "the profile sets no governor ([cpu] governor)")
        expected = f"{want} on every CPU"
        govs = read_governors(host, want)
        if not govs.current:
            return skip(rid, title, "host does not expose cpufreq (typical of VMs)", expected)
        observed = by_value(govs.current)
        if govs.driver:
            observed += f" (driver {govs.driver})"
        wrong = [cpu for cpu, gov in govs.current.items() if gov != want]
        if govs.unoffered:
            observed += f"; {want!r} is not offered on {_cpus(govs.unoffered)}"
            choices = sorted(set(govs.unoffered.values()))
            fix = (
                f"the cpufreq driver offers only {' / '.join(choices)} there: load the governor "
                f"(`modprobe cpufreq_{want}`), or set [cpu] governor to one it offers"
            )
            return CheckResult(rid, title, Status.FAIL, observed, expected, fix)
        if not wrong:
            return CheckResult(rid, title, Status.PASS, observed, expected)
        fix = (
            f"run `hosttune apply` (writes scaling_governor={want} on {_cpus(wrong)}; lost at "
            f"reboot: add cpufreq.default_governor={want} to the kernel command line to keep it)"
        )
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix)

    def _cstates_row(self, host: Host, profile: Profile) -> CheckResult:
        rid, title = "cpufreq.cstates", "CPU idle states (C-states)"
        max_us = profile.cpu.max_cstate_latency_us
        if max_us is None:
            why = "the profile sets no exit-latency limit ([cpu] max_cstate_latency_us)"
            return skip(rid, title, why)
        expected = f"idle states with exit latency > {max_us} µs disabled"
        driver = _read(host, IDLE_DRIVER)
        intel = _read(host, INTEL_MAX_CSTATE)
        states = read_idle_states(host)
        context = f"cpuidle driver {driver or 'unknown'}"
        if intel is not None:
            context += f", intel_idle.max_cstate={intel}"
        if not states:
            return skip(rid, title, f"no cpuidle states exposed ({context})", expected)
        deep = [s for s in states if s.latency_us is not None and s.latency_us > max_us]
        enabled = [s for s in deep if s.disabled is False]
        stuck = [s for s in deep if s.disabled is None]
        unknown = [s for s in states if s.latency_us is None]
        parts = []
        if enabled:
            parts.append(f"enabled with exit latency > {max_us} µs: {_grouped(enabled)}")
        if stuck:
            parts.append(f"no runtime switch (no readable 'disable'): {_grouped(stuck)}")
        if not parts:
            parts.append(f"disabled: {_grouped(deep)}" if deep else f"none deeper than {max_us} µs")
        if unknown:
            parts.append(f"unreadable latency: {', '.join(sorted({s.name for s in unknown}))}")
        observed = "; ".join(parts) + f" ({context})"
        if not (enabled or stuck):
            return CheckResult(rid, title, Status.PASS, observed, expected)
        steps = []
        if enabled:
            names = ", ".join(sorted({s.name for s in enabled}))
            steps.append(
                f"run `hosttune apply` (writes disable=1 for {names}; effective at once, "
                "lost at reboot)"
            )
        boot = intel_max_cstate(states, max_us)
        boot_step = ""
        if intel is not None and intel.isdigit() and boot >= 1 and int(intel) > boot:
            boot_step = (
                f"to make it permanent add intel_idle.max_cstate={boot} to GRUB_CMDLINE_LINUX in "
                "/etc/default/grub, run update-grub and reboot"
            )
        elif stuck:
            boot_step = (
                "limit the depth at boot (intel_idle.max_cstate= or processor.max_cstate= on the "
                "kernel command line) and reboot"
            )
        # The runtime part works at once; reboot flags the boot-time part that makes it last.
        fix = "; ".join([*steps, boot_step] if boot_step else steps)
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix, bool(boot_step))
