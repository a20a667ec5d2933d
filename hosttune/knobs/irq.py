"""Interrupt affinity off the isolated CPUs, and irqbalance told to keep it that way."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from hosttune import cpulist, cpus
from hosttune.change import Change, SetValue, WriteFile
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

IRQ_DIR = "/proc/irq"
DEFAULT_AFFINITY = f"{IRQ_DIR}/default_smp_affinity"
NOHZ_FULL = "/sys/devices/system/cpu/nohz_full"
# Debian's irqbalance reads /etc/default, Red Hat's /etc/sysconfig (both via EnvironmentFile=).
IRQBALANCE_CONFIGS = ("/etc/default/irqbalance", "/etc/sysconfig/irqbalance")
CPULIST_KEY = "IRQBALANCE_BANNED_CPULIST"
LEGACY_KEY = "IRQBALANCE_BANNED_CPUS"  # hex mask; irqbalance still prefers it when set
_SHOWN = 20  # IRQ numbers listed in a row before "... and N more"


@dataclass(frozen=True)
class Layout:
    """The CPUs interrupts must avoid and the ones they go to instead."""

    isolated: frozenset[int]
    housekeeping: frozenset[int]


def layout(host: Host, profile: Profile) -> Layout | str:
    """The layout, or why there is nothing to keep interrupts off (a skip reason)."""
    try:
        online = cpus.online_cpus(host)
        target = cpus.isolated_target(host, profile)
    except (cpulist.CpuListError, HostError) as e:
        return f"cannot tell which CPUs are online: {e}"
    if len(online) <= 1:
        return "single-CPU host: there is no other CPU to move interrupts to"
    if profile.cpu.isolated == "":
        return 'the profile isolates no CPUs ([cpu] isolated = "")'
    isolated = target & online
    if not isolated:
        return f"none of the profile's isolated CPUs ({cpulist.render(target)}) is online"
    if isolated == online:
        return "the profile isolates every online CPU: interrupts need a housekeeping CPU"
    return Layout(isolated, online - isolated)


def _away(current: frozenset[int], lay: Layout) -> frozenset[int]:
    # Keep a deliberate pinning among housekeeping CPUs (a NIC queue on its local core).
    return (current & lay.housekeeping) or lay.housekeeping


def _listing(numbers: list[int]) -> str:
    shown = ",".join(str(n) for n in numbers[:_SHOWN])
    return shown + (f",... and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else "")


# --- /proc/irq ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Affinity:
    path: str
    raw: str  # as read (stripped): written back verbatim on revert
    cpus: frozenset[int] | None  # None: unreadable or garbled
    mask: bool = False  # hex mask (default_smp_affinity) rather than a cpulist

    def render(self, cpus: frozenset[int]) -> str:
        return cpulist.render_mask(cpus) if self.mask else cpulist.render(cpus)


def read_affinity(host: Host, path: str, mask: bool = False) -> Affinity:
    raw = (host.read_opt(path) or "").strip()
    try:
        parsed = (cpulist.parse_mask if mask else cpulist.parse)(raw) if raw else None
    except cpulist.CpuListError:
        parsed = None
    return Affinity(path, raw, parsed, mask)


def irq_affinities(host: Host) -> dict[int, Affinity]:
    numbers = sorted(int(n) for n in host.listdir(IRQ_DIR) if n.isdigit())
    return {n: read_affinity(host, f"{IRQ_DIR}/{n}/smp_affinity_list") for n in numbers}


# --- irqbalance config -------------------------------------------------------------------------

_ASSIGN = re.compile(r"\s*(?:export\s+)?([A-Za-z_]\w*)=(.*)")


def _assignment(line: str) -> tuple[str, str] | None:
    """``KEY=value`` of a shell-style environment line (quotes and comment removed), or None."""
    m = _ASSIGN.fullmatch(line)
    if m is None:
        return None
    try:
        words = shlex.split(m.group(2), comments=True)
    except ValueError:  # unbalanced quote: the shell would fail too; keep the text as is
        words = [m.group(2).strip()]
    return m.group(1), words[0].strip() if words else ""


def environment(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        kv = _assignment(line)
        if kv is not None:
            env[kv[0]] = kv[1]
    return env


def irqbalance_config(host: Host) -> str:
    for path in IRQBALANCE_CONFIGS:
        if host.exists(path):
            return path
    redhat = host.exists("/etc/sysconfig") and not host.exists("/etc/default")
    return IRQBALANCE_CONFIGS[1 if redhat else 0]


@dataclass(frozen=True)
class Banned:
    cpus: frozenset[int]
    how: str  # where the set comes from, for the operator


def banned_cpus(host: Host, env: dict[str, str], path: str) -> Banned:
    """The CPUs irqbalance keeps interrupts off, by its own precedence rules."""
    legacy, listed = env.get(LEGACY_KEY, ""), env.get(CPULIST_KEY, "")
    try:
        if legacy:
            mask = cpulist.parse_mask(legacy)
            how = f"legacy {LEGACY_KEY}={legacy} (cpu {cpulist.render(mask) or 'none'}) in {path}"
            if listed:
                how += f", which irqbalance prefers over {CPULIST_KEY}={listed}"
            return Banned(mask, how)
        if listed:
            return Banned(cpulist.parse(listed), f"{CPULIST_KEY}={listed} in {path}")
    except cpulist.CpuListError:
        bad = f"{LEGACY_KEY}={legacy}" if legacy else f"{CPULIST_KEY}={listed}"
        return Banned(frozenset(), f"unparseable {bad} in {path} (irqbalance bans nothing)")
    # Neither set: irqbalance bans the CPUs the kernel isolates (isolcpus) or runs tickless.
    auto: frozenset[int] = frozenset()
    nohz = (host.read_opt(NOHZ_FULL) or "").strip()
    try:
        auto = cpus.isolated_now(host)
        # Kernels without nohz_full print "(null)" there.
        auto |= cpulist.parse(nohz) if nohz and nohz != "(null)" else frozenset()
    except (cpulist.CpuListError, HostError):
        pass  # garbled: count only what parsed
    where = path if host.exists(path) else f"{path} (absent)"
    return Banned(
        auto,
        f"no banned CPUs set in {where}: irqbalance bans only kernel-isolated "
        f"and nohz_full CPUs ({cpulist.render(auto) or 'none'})",
    )


def with_banned(text: str, isolated: frozenset[int]) -> str:
    """``text`` with the banned list set to ``isolated``; every other line kept as it was."""
    line = f"{CPULIST_KEY}={cpulist.render(isolated)}"
    out: list[str] = []
    placed = False
    for old in text.splitlines():
        kv = _assignment(old)
        if kv is not None and kv[0] == CPULIST_KEY:
            out.append(line)
            placed = True
        elif kv is not None and kv[0] == LEGACY_KEY and kv[1]:
            # A non-empty legacy mask would override the list: keep it visible but inactive.
            out.append(f"# disabled by hosttune ({CPULIST_KEY} replaces it): {old}")
        else:
            out.append(old)
    if not placed:
        if not text:
            out.append("# Written by `hosttune apply`; removed by `hosttune revert`.")
        out.append(line)
    return "\n".join(out) + "\n"


class IrqKnob(Knob):
    """Interrupts kept off the isolated CPUs (``[irq]`` in the profile).

    - ``irq.affinity``: every ``/proc/irq/N/smp_affinity_list`` and the default mask for new
      interrupts (``/proc/irq/default_smp_affinity``) must leave out the CPUs the profile
      isolates (``[cpu] isolated``): one device interrupt on the feeder's core is a
      several-µs hole in its hot loop.
    - ``irq.irqbalance``: when irqbalance is installed, its config (``/etc/default/irqbalance``
      or ``/etc/sysconfig/irqbalance``) must ban those CPUs (``IRQBALANCE_BANNED_CPULIST``; the
      legacy hex ``IRQBALANCE_BANNED_CPUS`` is honoured and takes precedence, as in irqbalance),
      or it moves interrupts back within seconds.

    ::

        [irq]
        keep_off_isolated = true
        irqbalance_banned = true

    ``apply`` narrows each offending IRQ to its housekeeping CPUs (or all of them), sets the
    default mask, and sets ``IRQBALANCE_BANNED_CPULIST`` keeping the rest of the file; restart
    irqbalance afterwards. Some IRQs refuse a new affinity (EIO: per-CPU or kernel-managed
    queues): apply reports those and goes on; ``isolcpus=managed_irq`` covers managed ones.
    Affinity is runtime state, lost at reboot.
    """

    id = "irq"
    title = "interrupt affinity"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        return [self._affinity_row(host, profile), self._irqbalance_row(host, profile)]

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        lay = layout(host, profile)
        if isinstance(lay, str):
            return []
        changes: list[Change] = []
        if profile.irq.keep_off_isolated and host.exists(IRQ_DIR):
            affinities = list(irq_affinities(host).values())
            affinities.append(read_affinity(host, DEFAULT_AFFINITY, mask=True))
            for a in affinities:
                if a.cpus is None or not a.cpus & lay.isolated:
                    continue
                changes.append(SetValue(path=a.path, old=a.raw, new=a.render(_away(a.cpus, lay))))
        if profile.irq.irqbalance_banned and host.which("irqbalance") is not None:
            path = irqbalance_config(host)
            text = host.read_opt(path)
            if text is None and host.exists(path):
                return changes  # unreadable: no exact undo possible
            env = environment(text or "")
            if not lay.isolated <= banned_cpus(host, env, path).cpus:
                changes.append(
                    WriteFile(
                        path=path,
                        new=with_banned(text or "", lay.isolated),
                        old=text,
                        made_dirs=[]
                        if host.exists(path.rsplit("/", 1)[0])
                        else [path.rsplit("/", 1)[0]],
                    )
                )
        return changes

    def _affinity_row(self, host: Host, profile: Profile) -> CheckResult:
        rid, title = "irq.affinity", "interrupts off isolated CPUs"
        if not profile.irq.keep_off_isolated:
            why = "the profile allows interrupts on isolated CPUs ([irq] keep_off_isolated)"
            return skip(rid, title, why)
        lay = layout(host, profile)
        if isinstance(lay, str):
            return skip(rid, title, lay)
        iso, hk = cpulist.render(lay.isolated), cpulist.render(lay.housekeeping)
        expected = f"no IRQ allowed on isolated CPUs {iso} (housekeeping CPUs {hk} take them)"
        if not host.exists(IRQ_DIR):
            return skip(rid, title, f"host exposes no {IRQ_DIR}", expected)
        affinities = irq_affinities(host)
        bad = [n for n, a in affinities.items() if a.cpus is not None and a.cpus & lay.isolated]
        unreadable = [n for n, a in affinities.items() if a.cpus is None]
        if bad:
            observed = (
                f"{len(bad)} of {len(affinities)} IRQs may run on isolated CPUs {iso}: "
                f"{_listing(bad)}"
            )
        else:
            observed = f"none of {len(affinities)} IRQs may run on isolated CPUs {iso}"
        default = read_affinity(host, DEFAULT_AFFINITY, mask=True)
        default_bad = default.cpus is not None and bool(default.cpus & lay.isolated)
        if default.cpus is not None:
            verdict = "includes isolated CPUs" if default_bad else "ok"
            observed += (
                f"; default for new IRQs {default.raw} "
                f"(cpu {cpulist.render(default.cpus) or 'none'}): {verdict}"
            )
        elif default.raw or host.exists(DEFAULT_AFFINITY):
            observed += f"; unreadable {DEFAULT_AFFINITY}: {default.raw!r}"
        if unreadable:
            observed += f"; unreadable affinity for IRQ {_listing(unreadable)}"
        if not (bad or default_bad):
            return CheckResult(rid, title, Status.PASS, observed, expected)
        fix = (
            f"run `hosttune apply` (moves them to CPUs {hk}; IRQs that refuse with EIO are "
            "per-CPU or kernel-managed: boot with isolcpus=managed_irq,... for those). Lost at "
            "reboot: re-apply at boot"
        )
        return CheckResult(rid, title, Status.FAIL, observed, expected, fix)

    def _irqbalance_row(self, host: Host, profile: Profile) -> CheckResult:
        rid, title = "irq.irqbalance", "irqbalance keeps off isolated CPUs"
        if not profile.irq.irqbalance_banned:
            why = "the profile does not ask irqbalance to ban CPUs ([irq] irqbalance_banned)"
            return skip(rid, title, why)
        if host.which("irqbalance") is None:
            return skip(rid, title, "irqbalance not installed: affinity stays as set")
        lay = layout(host, profile)
        if isinstance(lay, str):
            return skip(rid, title, lay)
        iso = cpulist.render(lay.isolated)
        expected = f"{CPULIST_KEY} covering isolated CPUs {iso}"
        path = irqbalance_config(host)
        try:
            text = host.read(path) if host.exists(path) else ""
        except HostError as e:
            return skip(rid, title, f"cannot read the irqbalance config: {e}", expected)
        banned = banned_cpus(host, environment(text), path)
        if lay.isolated <= banned.cpus:
            return CheckResult(rid, title, Status.PASS, banned.how, expected)
        fix = (
            f"run `hosttune apply` (sets {CPULIST_KEY}={iso} in {path}, keeping the rest), then "
            "`systemctl restart irqbalance`"
        )
        return CheckResult(rid, title, Status.FAIL, banned.how, expected, fix)
