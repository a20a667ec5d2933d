"""Kernel CPU-list syntax: ``0-3,8,10-11`` (and the ``N-M:G/S`` stride form), plus hex masks."""

from __future__ import annotations

import string

# Far above any kernel's NR_CPUS (8192 at most): a typo such as "0-40000000" is an error
# rather than a set of forty million CPUs.
MAX_CPUS = 1 << 16


class CpuListError(ValueError):
    pass


def _number(digits: str, element: str, whole: str) -> int:
    # int() would also take "+1", "1_0" and non-ASCII digits, none of which the kernel reads.
    digits = digits.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise CpuListError(f"bad cpu list element {element!r} in {whole!r}")
    value = int(digits)
    if value >= MAX_CPUS:
        raise CpuListError(f"cpu {value} out of range (max {MAX_CPUS - 1}) in {whole!r}")
    return value


def parse(text: str) -> frozenset[int]:
    """Parse a cpulist such as ``1-3,5`` or ``0-7:2/4``; empty string is the empty set."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        stride = None
        if ":" in part:
            part, stride = part.split(":", 1)
        if "-" in part:
            lo, hi = part.split("-", 1)
            a, b = _number(lo, part, text), _number(hi, part, text)
        else:
            a = b = _number(part, part, text)
        if a > b:
            raise CpuListError(f"bad cpu range {part!r} in {text!r}")
        if stride is None:
            cpus.update(range(a, b + 1))
            continue
        used_s, slash, group_s = stride.partition("/")
        if not slash:
            raise CpuListError(f"bad cpu stride {stride!r} in {text!r}")
        used, group = _number(used_s, stride, text), _number(group_s, stride, text)
        # The kernel rejects a group of 0 and more used CPUs than the group has.
        if used <= 0 or group <= 0 or used > group:
            raise CpuListError(f"bad cpu stride {stride!r} in {text!r}")
        for base in range(a, b + 1, group):
            cpus.update(range(base, min(base + used, b + 1)))
    return frozenset(cpus)


def render(cpus: frozenset[int] | set[int]) -> str:
    """Format a set as the kernel does: ``0-2,5``; the empty set is ``""``."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(_span(run))
        run = [c]
    if run:
        out.append(_span(run))
    return ",".join(out)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


def parse_mask(text: str) -> frozenset[int]:
    """Parse a hex CPU mask as in /proc/irq/*/smp_affinity (``ff,ffffffff``).

    Each comma-separated group is one 32-bit word, as the kernel reads it: ``ff,1`` is CPUs 0
    and 32-39, not ``0xff1``.
    """
    value = 0
    for word in text.strip().split(","):
        if not word or len(word) > 8 or any(c not in string.hexdigits for c in word):
            raise CpuListError(f"bad cpu mask {text!r}")
        value = value << 32 | int(word, 16)
    return frozenset(i for i in range(value.bit_length()) if value >> i & 1)


def render_mask(cpus: frozenset[int] | set[int]) -> str:
    """Format a set as a hex mask with a comma every 32 bits (``ff,ffffffff``).

    The kernel refuses a group of more than 8 hex digits (EOVERFLOW), so the commas are needed.
    """
    digits = f"{sum(1 << c for c in cpus):x}"
    head = len(digits) % 8 or 8
    return ",".join([digits[:head], *(digits[i : i + 8] for i in range(head, len(digits), 8))])
