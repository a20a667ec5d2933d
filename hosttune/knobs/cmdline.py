"""Boot-time CPU isolation: isolcpus / nohz_full / rcu_nocbs, and what the kernel actually did."""

from __future__ import annotations

from dataclasses import dataclass

from hosttune import cpulist
from hosttune.change import Change, WriteFile
from hosttune.cpus import isolated_target
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import ISOLCPUS_FLAGS, Profile
from hosttune.result import CheckResult, Status, skip

GRUB_DROPIN = "/etc/default/grub.d/90-hosttune.cfg"


@dataclass(frozen=True)
class CpuParam:
    """A parsed cpulist boot parameter, e.g. ``isolcpus=managed_irq,domain,2-5``."""

    cpus: frozenset[int]
    flags: frozenset[str]


def parse_cmdline(text: str) -> dict[str, str]:
    """Boot parameters as key -> value (last one wins, as in the kernel); ``--`` ends them."""
    params: dict[str, str] = {}
    for token in text.split():
        if token == "--":
            break
        key, _, value = token.partition("=")
        params[key] = value
    return params


def parse_cpu_param(value: str) -> CpuParam:
    """Split leading flags (``managed_irq,domain,``) from the cpulist.

    Like the kernel, only leading words are flags: ``2-5,domain`` is a bad cpulist.
    """
    parts = value.split(",")
    n = 0
    while n < len(parts) and parts[n] in ISOLCPUS_FLAGS:
        n += 1
    return CpuParam(cpus=cpulist.parse(",".join(parts[n:])), flags=frozenset(parts[:n]))


def boot_params(host: Host, profile: Profile) -> list[str]:
    """Every kernel parameter the profile wants at boot (the grub drop-in, and Ansible's)."""
    params: list[str] = []
    target = isolated_target(host, profile)
    if target:
        cpus = cpulist.render(target)
        params.append("isolcpus=" + ",".join([*profile.cpu.isolcpus_flags, cpus]))
        if profile.cpu.nohz_full:
            params.append(f"nohz_full={cpus}")
        if profile.cpu.rcu_nocbs:
            params.append(f"rcu_nocbs={cpus}")
    if profile.hugepages.boot:
        # hugepagesz=/hugepages= go in pairs, one pair per size.
        if profile.hugepages.pages_1g:
            params += ["hugepagesz=1G", f"hugepages={profile.hugepages.pages_1g}"]
        if profile.hugepages.pages_2m:
            params += ["hugepagesz=2M", f"hugepages={profile.hugepages.pages_2m}"]
    params.append(f"transparent_hugepage={profile.thp.enabled}")
    return params


def dropin_text(params: list[str]) -> str:
    return (
        "# Written by `hosttune apply`; removed by `hosttune revert`. Takes effect after\n"
        "# update-grub and a reboot.\n"
        f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT {" ".join(params)}"\n'
    )


def _running_row(
    host: Host, name: str, title: str, target: frozenset[int], absent: str, fix: str
) -> CheckResult:
    """Compare ``/sys/devices/system/cpu/<name>`` (what the booted kernel did) with the target."""
    rid, path = f"cmdline.{name}_running", f"/sys/devices/system/cpu/{name}"
    want = cpulist.render(target)
    text = host.read_opt(path)
    if text is None:
        return skip(rid, title, absent, want)
    try:
        # Older kernels print "(null)" for an empty nohz_full mask.
        got = cpulist.parse(text.replace("(null)", ""))
    except cpulist.CpuListError as e:
        return skip(rid, title, f"{path}: {e}", want)
    ok = target <= got
    return CheckResult(
        id=rid,
        title=title,
        status=Status.PASS if ok else Status.FAIL,
        observed=cpulist.render(got) or "none",
        expected=f"includes {want}",
        fix="" if ok else fix,
        reboot=not ok,
    )


class CmdlineKnob(Knob):
    """Kernel command line for CPU isolation (``[cpu]``), and the running state it produced.

    ``isolcpus`` keeps the scheduler and (with ``managed_irq``) managed interrupts off the feeder's
    cores, ``nohz_full`` stops their scheduler tick and ``rcu_nocbs`` moves RCU callbacks away::

        [cpu]
        isolated = "2-5"          # or "auto": all online CPUs but the first
        nohz_full = true
        rcu_nocbs = true
        isolcpus_flags = ["managed_irq", "domain"]

    Each parameter is checked in ``/proc/cmdline``; the running state is checked in
    ``/sys/devices/system/cpu/isolated`` and ``.../nohz_full`` (a kernel built without
    ``CONFIG_NO_HZ_FULL`` ignores ``nohz_full=``). ``apply`` stages a drop-in
    ``/etc/default/grub.d/90-hosttune.cfg`` (with the boot-time huge pages and THP mode too),
    runs ``update-grub`` when present and reports that a reboot is required; until then the rows
    say "staged".
    """

    id = "cmdline"
    title = "kernel command line"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        try:
            running = parse_cmdline(host.read("/proc/cmdline"))
        except HostError as e:
            return [skip(self.id, self.title, str(e))]
        try:
            target = isolated_target(host, profile)
        except cpulist.CpuListError as e:  # a garbled /sys/devices/system/cpu/online
            return [skip(self.id, self.title, str(e))]
        if not target:
            why = (
                "profile isolates no CPUs"
                if profile.cpu.isolated == ""
                else "host has one CPU: nothing to isolate"
            )
            return [skip("cmdline.isolcpus", "isolcpus", why)]
        staged = parse_cmdline(self._staged_params(host))
        rows = [
            self._cpu_row(
                host, "isolcpus", running, staged, target, frozenset(profile.cpu.isolcpus_flags)
            )
        ]
        if profile.cpu.nohz_full:
            rows.append(self._cpu_row(host, "nohz_full", running, staged, target, frozenset()))
        if profile.cpu.rcu_nocbs:
            rows.append(self._cpu_row(host, "rcu_nocbs", running, staged, target, frozenset()))

        rows.append(
            _running_row(
                host,
                "isolated",
                "CPUs the kernel isolates now",
                target,
                "kernel does not report isolated CPUs",
                "boot with isolcpus (see cmdline.isolcpus), then reboot",
            )
        )
        if profile.cpu.nohz_full:
            rows.append(
                _running_row(
                    host,
                    "nohz_full",
                    "tickless CPUs now",
                    target,
                    "kernel built without CONFIG_NO_HZ_FULL: nohz_full= has no effect",
                    "boot with nohz_full (see cmdline.nohz_full)",
                )
            )
        return rows

    def _staged_params(self, host: Host) -> str:
        text = host.read_opt(GRUB_DROPIN) or ""
        # The drop-in appends to the variable: take what sits between the quotes.
        if '"' in text:
            return text.split('"')[1].replace("$GRUB_CMDLINE_LINUX_DEFAULT", "")
        return ""

    @staticmethod
    def _cpu_row(
        host: Host,
        key: str,
        running: dict[str, str],
        staged: dict[str, str],
        target: frozenset[int],
        flags: frozenset[str],
    ) -> CheckResult:
        want = ",".join([*sorted(flags), cpulist.render(target)])

        def ok(params: dict[str, str]) -> bool:
            if key not in params:
                return False
            try:
                p = parse_cpu_param(params[key])
            except cpulist.CpuListError:
                return False
            # isolcpus without flags means "domain", as the kernel reads it.
            got = (p.flags or frozenset({"domain"})) if key == "isolcpus" else p.flags
            return p.cpus == target and flags <= got

        observed = f"{key}={running[key]}" if key in running else "absent"
        if ok(running):
            return CheckResult(
                id=f"cmdline.{key}",
                title=key,
                status=Status.PASS,
                observed=observed,
                expected=f"{key}={want}",
            )
        if ok(staged):
            return CheckResult(
                id=f"cmdline.{key}",
                title=key,
                status=Status.WARN,
                observed=f"{observed} (staged in {GRUB_DROPIN})",
                expected=f"{key}={want}",
                fix="reboot to take the staged command line into use",
                reboot=True,
            )
        return CheckResult(
            id=f"cmdline.{key}",
            title=key,
            status=Status.FAIL,
            observed=observed,
            expected=f"{key}={want}",
            fix=f"`hosttune apply` (stages {GRUB_DROPIN} and runs update-grub), then reboot",
            reboot=True,
        )

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        change = WriteFile.replacing(
            host,
            GRUB_DROPIN,
            dropin_text(boot_params(host, profile)),
            reboot=True,
            then_run=["update-grub"] if host.which("update-grub") else None,
        )
        return [change] if change else []
