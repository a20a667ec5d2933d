"""Profiles: what a tuned host should look like, read from TOML and validated up front.

A bad profile is one clear message naming the key and the reason (``ProfileError``), never a
traceback from deep inside a knob. The built-in profiles live in ``hosttune/profiles/``; the
Ansible role reads the same file, so the numbers exist once.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from hosttune import cpulist

T = TypeVar("T")


class ProfileError(ValueError):
    """A profile is unreadable or invalid; str() names the key and the reason."""


@dataclass(frozen=True)
class CpuSection:
    isolated: str  # cpulist, "auto" (all online CPUs but the first), or "" (no isolation)
    nohz_full: bool
    rcu_nocbs: bool
    isolcpus_flags: tuple[str, ...]
    governor: str | None
    max_cstate_latency_us: int | None


@dataclass(frozen=True)
class HugePagesSection:
    pages_2m: int
    pages_1g: int
    per_node: bool  # check (and apply) the split across NUMA nodes, not only the total
    boot: bool  # also reserve them on the kernel command line (fragmentation-proof)


@dataclass(frozen=True)
class ThpSection:
    enabled: str
    defrag: str


@dataclass(frozen=True)
class MemlockSection:
    user: str
    limit: str  # "unlimited" or a size in KiB, as limits.conf writes it
    systemd_unit: str | None


@dataclass(frozen=True)
class SysctlRule:
    key: str
    op: str  # "eq" exact, "min" at least, "max" at most
    value: str  # normalised: whitespace-separated integers or a word


@dataclass(frozen=True)
class SwapSection:
    allow_active_swap: bool
    swappiness_max: int


@dataclass(frozen=True)
class NumaSection:
    balancing: bool


@dataclass(frozen=True)
class IrqSection:
    keep_off_isolated: bool
    irqbalance_banned: bool


@dataclass(frozen=True)
class NicSection:
    interfaces: tuple[str, ...]  # "auto" = the interface of the default route
    timestamping: str  # "hardware" | "software" | "none"
    rx_ring: str | None  # "max", a number, or None (don't check)
    rx_usecs_max: int | None


@dataclass(frozen=True)
class BpfSection:
    af_xdp: bool


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: str
    cpu: CpuSection
    hugepages: HugePagesSection
    thp: ThpSection
    memlock: MemlockSection
    sysctl: tuple[SysctlRule, ...]
    swap: SwapSection
    numa: NumaSection
    irq: IrqSection
    nic: NicSection
    bpf: BpfSection


THP_MODES = ("always", "madvise", "never")
THP_DEFRAG = ("always", "defer", "defer+madvise", "madvise", "never")
TS_MODES = ("hardware", "software", "none")
ISOLCPUS_FLAGS = ("domain", "managed_irq", "nohz")

_SECTIONS = ("cpu", "hugepages", "thp", "memlock", "sysctl", "swap", "numa", "irq", "nic", "bpf")


class _Table:
    """One TOML table being validated; remembers which keys were used to reject unknown ones."""

    def __init__(self, prefix: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{prefix}: must be a table, got {type(data).__name__}")
        self.prefix = prefix
        self.data: dict[str, Any] = data
        self.known: set[str] = set()

    def get(self, key: str, typ: type[T], default: T) -> T:
        self.known.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        # bool is an int subclass in Python; a profile saying `pages = true` is a mistake.
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ProfileError(
                f"{self.prefix}.{key}: expected {typ.__name__}, got {type(value).__name__} "
                f"({value!r})"
            )
        return value

    def opt(self, key: str, typ: type[T]) -> T | None:
        self.known.add(key)
        if key not in self.data:
            return None
        value: T = self.data[key]
        return self.get(key, typ, value)

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise ProfileError(f"{self.prefix}.{key}: {value!r} is not one of {', '.join(choices)}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.known)
        if unknown:
            known = ", ".join(sorted(self.known))
            raise ProfileError(f"{self.prefix}.{unknown[0]}: unknown key (known keys: {known})")


def _section(doc: dict[str, Any], name: str) -> _Table:
    return _Table(name, doc.get(name, {}))


def _non_negative(prefix: str, value: int) -> int:
    if value < 0:
        raise ProfileError(f"{prefix}: must be >= 0, got {value}")
    return value


_SYSCTL_PART = re.compile(r"[A-Za-z0-9_-]+")
_INTEGER = re.compile(r"-?[0-9]+")


def _sysctl_rules(t: _Table) -> tuple[SysctlRule, ...]:
    rules = []
    for key, spec in t.data.items():
        t.known.add(key)
        where = f"sysctl.{key!r}"
        if not all(_SYSCTL_PART.fullmatch(part) for part in key.split(".")):
            raise ProfileError(f"{where}: not a sysctl name (like net.core.rmem_max)")
        op = "eq"
        if isinstance(spec, dict):
            if any(k not in ("min", "max", "eq") for k in spec) and "." not in key:
                # TOML reads an unquoted net.core.rmem_max as nested tables net -> core -> ...
                raise ProfileError(
                    f'{where}: quote dotted sysctl names ("net.core.rmem_max" = ...)'
                )
            if len(spec) != 1 or next(iter(spec)) not in ("min", "max", "eq"):
                raise ProfileError(f"{where}: use a value, or a table with one of min/max/eq")
            op, spec = next(iter(spec.items()))
        if isinstance(spec, bool) or not isinstance(spec, (int, str, list)):
            raise ProfileError(f"{where}: value must be an integer, string or list of integers")
        if isinstance(spec, list):
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in spec):
                raise ProfileError(f"{where}: list values must be integers")
            value = " ".join(str(x) for x in spec)
        else:
            value = " ".join(str(spec).split())
        if not value:
            raise ProfileError(f"{where}: value is empty")
        if op != "eq" and not all(_INTEGER.fullmatch(p) for p in value.split()):
            raise ProfileError(f"{where}: {op} needs integer values, got {value!r}")
        rules.append(SysctlRule(key=key, op=op, value=value))
    return tuple(rules)


def parse_profile(doc: dict[str, Any], source: str) -> Profile:
    """Validate a parsed TOML document into a Profile."""
    unknown = sorted(set(doc) - set(_SECTIONS) - {"name", "description"})
    if unknown:
        raise ProfileError(f"{unknown[0]}: unknown section (known: {', '.join(_SECTIONS)})")
    name = doc.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ProfileError("name: must be a non-empty string")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ProfileError("description: must be a string")

    t = _section(doc, "cpu")
    isolated = t.get("isolated", str, "auto").strip()
    if isolated not in ("auto", ""):
        try:
            cpulist.parse(isolated)
        except cpulist.CpuListError as e:
            raise ProfileError(f"cpu.isolated: {e}") from e
    flags = tuple(t.get("isolcpus_flags", list, ["managed_irq", "domain"]))
    for f in flags:
        if f not in ISOLCPUS_FLAGS:
            raise ProfileError(
                f"cpu.isolcpus_flags: {f!r} is not one of {', '.join(ISOLCPUS_FLAGS)}"
            )
    lat = t.opt("max_cstate_latency_us", int)
    cpu = CpuSection(
        isolated=isolated,
        nohz_full=t.get("nohz_full", bool, True),
        rcu_nocbs=t.get("rcu_nocbs", bool, True),
        isolcpus_flags=flags,
        governor=t.opt("governor", str),
        max_cstate_latency_us=None
        if lat is None
        else _non_negative("cpu.max_cstate_latency_us", lat),
    )
    t.done()

    t = _section(doc, "hugepages")
    hp = HugePagesSection(
        pages_2m=_non_negative("hugepages.pages_2m", t.get("pages_2m", int, 0)),
        pages_1g=_non_negative("hugepages.pages_1g", t.get("pages_1g", int, 0)),
        per_node=t.get("per_node", bool, True),
        boot=t.get("boot", bool, False),
    )
    t.done()

    t = _section(doc, "thp")
    thp = ThpSection(
        enabled=t.choice("enabled", THP_MODES, "never"),
        defrag=t.choice("defrag", THP_DEFRAG, "never"),
    )
    t.done()

    t = _section(doc, "memlock")
    limit = t.get("limit", str, "unlimited")
    if limit != "unlimited" and not (limit.isascii() and limit.isdigit()):
        raise ProfileError(f"memlock.limit: {limit!r} must be 'unlimited' or a size in KiB")
    memlock = MemlockSection(
        user=t.get("user", str, "feeder"), limit=limit, systemd_unit=t.opt("systemd_unit", str)
    )
    t.done()

    t = _section(doc, "sysctl")
    sysctl = _sysctl_rules(t)

    t = _section(doc, "swap")
    swap = SwapSection(
        allow_active_swap=t.get("allow_active_swap", bool, False),
        swappiness_max=_non_negative("swap.swappiness_max", t.get("swappiness_max", int, 10)),
    )
    t.done()

    t = _section(doc, "numa")
    numa = NumaSection(balancing=t.get("balancing", bool, False))
    t.done()

    t = _section(doc, "irq")
    irq = IrqSection(
        keep_off_isolated=t.get("keep_off_isolated", bool, True),
        irqbalance_banned=t.get("irqbalance_banned", bool, True),
    )
    t.done()

    t = _section(doc, "nic")
    ifaces = t.get("interfaces", list, ["auto"])
    if not all(isinstance(i, str) and i for i in ifaces):
        raise ProfileError("nic.interfaces: must be a list of interface names (or 'auto')")
    ring = t.data.get("rx_ring")
    t.known.add("rx_ring")
    if (
        ring is not None
        and ring != "max"
        and (isinstance(ring, bool) or not isinstance(ring, int) or ring < 1)
    ):
        raise ProfileError(f"nic.rx_ring: {ring!r} must be 'max' or a number of descriptors")
    usecs = t.opt("rx_usecs_max", int)
    nic = NicSection(
        interfaces=tuple(ifaces),
        timestamping=t.choice("timestamping", TS_MODES, "software"),
        rx_ring=None if ring is None else str(ring),
        rx_usecs_max=None if usecs is None else _non_negative("nic.rx_usecs_max", usecs),
    )
    t.done()

    t = _section(doc, "bpf")
    bpf = BpfSection(af_xdp=t.get("af_xdp", bool, True))
    t.done()

    return Profile(
        name=name,
        description=description,
        source=source,
        cpu=cpu,
        hugepages=hp,
        thp=thp,
        memlock=memlock,
        sysctl=sysctl,
        swap=swap,
        numa=numa,
        irq=irq,
        nic=nic,
        bpf=bpf,
    )


def builtin_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("hosttune.profiles").iterdir()
        if p.name.endswith(".toml")
    )


def load_profile(path: str | None = None, name: str = "feeder") -> Profile:
    """Load ``path`` if given, else the built-in profile ``name``."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"cannot read profile {path}: {e.strerror or e}") from e
        except UnicodeDecodeError as e:
            raise ProfileError(f"cannot read profile {path}: not UTF-8 text ({e.reason})") from e
        source = path
    else:
        if name not in builtin_names():
            raise ProfileError(f"no built-in profile {name!r} (have: {', '.join(builtin_names())})")
        text = resources.files("hosttune.profiles").joinpath(f"{name}.toml").read_text("utf-8")
        source = f"builtin:{name}"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: not valid TOML: {e}") from e
    return parse_profile(doc, source)
