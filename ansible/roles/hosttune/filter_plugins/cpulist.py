# Apache-2.0, part of mdfeed-toolkit.
"""Jinja filters for kernel CPU lists, as the ``hosttune`` role needs them.

``hosttune_isolated(spec, online)`` resolves the profile's ``cpu.isolated`` ("auto", "" or a
cpulist) against the target's online CPUs and renders it the way the kernel and ``hosttune``
do (``1-3,5``), so the role's grub drop-in and ``CPUAffinity=`` match ``hosttune apply``.
This runs on the controller, which need not have the toolkit installed; a test checks it
against ``hosttune.cpulist`` and ``hosttune.cpus.isolated_target``.
"""

from __future__ import annotations

from collections.abc import Callable

from ansible.errors import AnsibleFilterError  # type: ignore[import-untyped]

_MAX_CPUS = 1 << 16  # same bound as hosttune: a typo is an error, not 40 million CPUs


def _number(text: str, whole: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) >= _MAX_CPUS:
        raise AnsibleFilterError(f"bad cpu list {whole!r}: {text!r} is not a cpu number")
    return int(text)


def cpulist_expand(text: str) -> list[int]:
    """``"0-3,8"`` (and the kernel's ``0-7:2/4`` stride form) -> sorted CPU numbers."""
    cpus: set[int] = set()
    for part in str(text).strip().split(","):
        part = part.strip()
        if not part:
            continue
        span, _, stride = part.partition(":")
        lo, dash, hi = span.partition("-")
        a = _number(lo, text)
        b = _number(hi, text) if dash else a
        used, group = 1, 1
        if stride:
            used_s, slash, group_s = stride.partition("/")
            used, group = _number(used_s, text), _number(group_s, text) if slash else 0
            if not slash or not 0 < used <= group:
                raise AnsibleFilterError(f"bad cpu list {text!r}: stride {stride!r}")
        if a > b:
            raise AnsibleFilterError(f"bad cpu list {text!r}: range {span!r} runs backwards")
        for base in range(a, b + 1, group):
            cpus.update(range(base, min(base + used, b + 1)))
    return sorted(cpus)


def cpulist_render(cpus: list[int]) -> str:
    """Sorted numbers -> ``"1-3,5"``; consecutive runs become ranges, as the kernel prints."""
    runs: list[list[int]] = []
    for c in sorted(set(int(c) for c in cpus)):
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def hosttune_isolated(spec: str, online: str) -> str:
    """The CPUs to isolate: "" none, "auto" every online CPU but the first, else ``spec``."""
    spec = str(spec).strip()
    if spec == "":
        return ""
    if spec == "auto":
        # A root without the online list is a one-CPU machine as far as hosttune is concerned.
        return cpulist_render(cpulist_expand(online or "0")[1:])
    return cpulist_render(cpulist_expand(spec))


class FilterModule:
    def filters(self) -> dict[str, Callable[..., object]]:
        return {
            "cpulist_expand": cpulist_expand,
            "cpulist_render": cpulist_render,
            "hosttune_isolated": hosttune_isolated,
        }
