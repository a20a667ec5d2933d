"""Render a profile as the Ansible ``hosttune`` role's defaults, so both share one set of numbers.

``ansible/roles/hosttune/defaults/main/profile.yml`` is this module's output for the built-in
profile; a test regenerates it and fails when the committed file differs. Every profile key
becomes one variable ``hosttune_<section>_<key>`` that an inventory can override per host or
group; the role renders them back into ``/etc/hosttune/profile.toml`` for ``hosttune`` on the
target, and into the same drop-in files ``hosttune apply`` writes.

Run ``python -m hosttune.export [--profile FILE] [--output FILE] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from hosttune.profile import Profile, ProfileError, load_profile

Scalar = str | int | bool | None
Value = Scalar | list[str] | list[dict[str, str]]


def _scalar(value: Scalar) -> str:
    # JSON scalars are valid YAML flow scalars; strings always quoted so "0" stays a string.
    return json.dumps(value, ensure_ascii=False)


def _render(name: str, value: Value) -> list[str]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        lines = [f"{name}:"]
        for item in value:
            assert isinstance(item, dict)
            fields = ", ".join(f"{k}: {_scalar(v)}" for k, v in item.items())
            lines.append(f"  - {{{fields}}}")
        return lines
    if isinstance(value, list):
        return [f"{name}: [{', '.join(_scalar(v) for v in value)}]"]  # type: ignore[arg-type]
    return [f"{name}: {_scalar(value)}"]


def ansible_variables(profile: Profile) -> list[tuple[str, Value, str]]:
    """(variable, value, comment) for every profile setting, in profile order."""
    cpu, hp, mem, nic = profile.cpu, profile.hugepages, profile.memlock, profile.nic
    return [
        ("hosttune_profile_name", profile.name, "profile name (also names the TOML on the host)"),
        ("hosttune_profile_description", profile.description, ""),
        ("hosttune_cpu_isolated", cpu.isolated, 'cpulist, "auto" (all but the first) or ""'),
        ("hosttune_cpu_nohz_full", cpu.nohz_full, "no scheduler tick on the isolated CPUs"),
        ("hosttune_cpu_rcu_nocbs", cpu.rcu_nocbs, "RCU callbacks on housekeeping CPUs"),
        ("hosttune_cpu_isolcpus_flags", list(cpu.isolcpus_flags), "isolcpus= flags"),
        ("hosttune_cpu_governor", cpu.governor, "cpufreq governor (null: not checked)"),
        ("hosttune_cpu_max_cstate_latency_us", cpu.max_cstate_latency_us, "null: not checked"),
        ("hosttune_hugepages_pages_2m", hp.pages_2m, "2 MiB huge pages"),
        ("hosttune_hugepages_pages_1g", hp.pages_1g, "1 GiB huge pages"),
        ("hosttune_hugepages_per_node", hp.per_node, "split evenly across NUMA nodes"),
        ("hosttune_hugepages_boot", hp.boot, "also reserve them on the kernel command line"),
        ("hosttune_thp_enabled", profile.thp.enabled, "always | madvise | never"),
        ("hosttune_thp_defrag", profile.thp.defrag, ""),
        ("hosttune_memlock_user", mem.user, "the feeder's user"),
        ("hosttune_memlock_limit", mem.limit, '"unlimited" or KiB'),
        ("hosttune_memlock_systemd_unit", mem.systemd_unit, "unit that gets LimitMEMLOCK"),
        (
            "hosttune_sysctl",
            [{"key": r.key, "op": r.op, "value": r.value} for r in profile.sysctl],
            "op: eq (exact), min (at least), max (at most); lists are space-separated",
        ),
        ("hosttune_swap_allow_active_swap", profile.swap.allow_active_swap, ""),
        ("hosttune_swap_swappiness_max", profile.swap.swappiness_max, ""),
        ("hosttune_numa_balancing", profile.numa.balancing, ""),
        ("hosttune_irq_keep_off_isolated", profile.irq.keep_off_isolated, ""),
        ("hosttune_irq_irqbalance_banned", profile.irq.irqbalance_banned, ""),
        ("hosttune_nic_interfaces", list(nic.interfaces), '"auto": the default route\'s'),
        ("hosttune_nic_timestamping", nic.timestamping, "hardware | software | none"),
        ("hosttune_nic_rx_ring", nic.rx_ring, '"max", a number, or null'),
        ("hosttune_nic_rx_usecs_max", nic.rx_usecs_max, "null: not checked"),
        ("hosttune_bpf_af_xdp", profile.bpf.af_xdp, ""),
    ]


def ansible_defaults(profile: Profile) -> str:
    """The role's ``defaults/main/profile.yml`` text for ``profile``."""
    lines = [
        "---",
        f"# Generated from the hosttune profile {profile.source} by `python -m hosttune.export`.",
        "# Do not edit: change the profile and regenerate (a test compares the two). Override",
        "# any of these per host or group in the inventory.",
    ]
    for name, value, comment in ansible_variables(profile):
        rendered = _render(name, value)
        if comment:
            rendered[0] += f"  # {comment}"
        lines += rendered
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m hosttune.export",
        description="Write the Ansible hosttune role's defaults from a hosttune profile.",
    )
    p.add_argument("--profile", metavar="FILE", help="profile TOML (default: built-in 'feeder')")
    p.add_argument("--builtin", metavar="NAME", default="feeder", help="built-in profile name")
    p.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--check", action="store_true", help="exit 1 when --output is not what it would write"
    )
    args = p.parse_args(argv)
    try:
        text = ansible_defaults(load_profile(args.profile, args.builtin))
    except ProfileError as e:
        print(f"hosttune: profile error: {e}", file=sys.stderr)
        return 2
    if args.output is None:
        if args.check:
            print("hosttune: --check needs --output FILE", file=sys.stderr)
            return 2
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            print(f"{out} is out of date: run python -m hosttune.export --output {out}")
            return 1
        return 0
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"hosttune: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
