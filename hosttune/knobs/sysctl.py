"""Kernel sysctls: socket buffers, backlog, busy polling, UDP memory."""

from __future__ import annotations

from hosttune.change import Change, SetValue, WriteFile
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import Profile, SysctlRule
from hosttune.result import CheckResult, Status, skip

DROPIN = "/etc/sysctl.d/90-hosttune.conf"


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def satisfies(rule: SysctlRule, observed: str) -> bool:
    """Compare element-wise for multi-value sysctls such as ``udp_mem`` (min pressure max)."""
    want, have = rule.value.split(), observed.split()
    if rule.op == "eq":
        return want == have
    if len(want) != len(have):
        return False
    try:
        pairs = [(int(h), int(w)) for h, w in zip(have, want, strict=True)]
    except ValueError:
        return False
    if rule.op == "min":
        return all(h >= w for h, w in pairs)
    return all(h <= w for h, w in pairs)


def target(rule: SysctlRule, observed: str) -> str:
    """The value to write: a bound moves only the elements outside it, the others stay."""
    want, have = rule.value.split(), observed.split()
    if rule.op == "eq" or len(want) != len(have):
        return rule.value
    try:
        pairs = [(int(h), int(w)) for h, w in zip(have, want, strict=True)]
    except ValueError:
        return rule.value
    pick = max if rule.op == "min" else min
    return " ".join(str(pick(h, w)) for h, w in pairs)


def _expected(rule: SysctlRule) -> str:
    return {"eq": "", "min": ">= ", "max": "<= "}[rule.op] + rule.value


def dropin_text(rules: tuple[SysctlRule, ...]) -> str:
    lines = ["# Written by `hosttune apply`; removed by `hosttune revert`."]
    lines += [f"{r.key} = {r.value}" for r in rules]
    return "\n".join(lines) + "\n"


class SysctlKnob(Knob):
    """Kernel parameters under ``/proc/sys`` (``[sysctl]`` in the profile).

    Each key is checked against the running kernel. A plain value must match exactly;
    ``{ min = N }`` / ``{ max = N }`` are bounds (element-wise for lists such as ``udp_mem``)::

        [sysctl]
        "net.core.rmem_max" = { min = 134217728 }
        "net.core.busy_read" = 50

    ``apply`` writes the running value and a persistent drop-in ``/etc/sysctl.d/90-hosttune.conf``.
    Inside a network namespace the ``net.core`` buffer limits are read-only mirrors of the host's.
    """

    id = "sysctl"
    title = "kernel parameter"

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        rows = []
        for rule in profile.sysctl:
            rid, title = f"sysctl.{rule.key}", f"sysctl {rule.key}"
            try:
                observed = " ".join(host.read(sysctl_path(rule.key)).split())
            except HostError as e:
                rows.append(skip(rid, title, f"not available on this kernel: {e}", _expected(rule)))
                continue
            ok = satisfies(rule, observed)
            rows.append(
                CheckResult(
                    id=rid,
                    title=title,
                    status=Status.PASS if ok else Status.FAIL,
                    observed=observed,
                    expected=_expected(rule),
                    fix="" if ok else f"sysctl -w {rule.key}='{rule.value}' (persist: {DROPIN})",
                )
            )
        return rows

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        changes: list[Change] = []
        for rule in profile.sysctl:
            observed = host.read_opt(sysctl_path(rule.key))
            if observed is None or satisfies(rule, observed):
                continue
            # The old value is kept as read so undo puts back exactly what was there.
            changes.append(
                SetValue(path=sysctl_path(rule.key), old=observed, new=target(rule, observed))
            )
        if profile.sysctl and (f := WriteFile.replacing(host, DROPIN, dropin_text(profile.sysctl))):
            changes.append(f)
        return changes
