"""Profile loading and validation: the built-in profile, defaults, one clear error per mistake."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from hosttune.profile import (
    ProfileError,
    SysctlRule,
    builtin_names,
    load_profile,
    parse_profile,
)


def test_builtin_feeder_profile_loads() -> None:
    assert "feeder" in builtin_names()
    p = load_profile()
    assert (p.name, p.source) == ("feeder", "builtin:feeder")
    assert p.description
    assert p.cpu.isolated == "auto"
    assert p.cpu.isolcpus_flags == ("managed_irq", "domain")
    assert p.cpu.nohz_full and p.cpu.rcu_nocbs
    assert (p.cpu.governor, p.cpu.max_cstate_latency_us) == ("performance", 10)
    assert (p.hugepages.pages_2m, p.hugepages.pages_1g) == (512, 0)
    assert p.hugepages.per_node and p.hugepages.boot
    assert (p.thp.enabled, p.thp.defrag) == ("never", "never")
    assert (p.memlock.user, p.memlock.limit, p.memlock.systemd_unit) == (
        "feeder",
        "unlimited",
        "feeder.service",
    )
    rules = {r.key: r for r in p.sysctl}
    assert rules["net.core.rmem_max"] == SysctlRule("net.core.rmem_max", "min", "134217728")
    assert rules["net.core.busy_read"] == SysctlRule("net.core.busy_read", "eq", "50")
    assert rules["net.ipv4.udp_mem"] == SysctlRule(
        "net.ipv4.udp_mem", "min", "262144 524288 1048576"
    )
    assert (p.swap.allow_active_swap, p.swap.swappiness_max) == (False, 10)
    assert p.numa.balancing is False
    assert p.irq.keep_off_isolated and p.irq.irqbalance_banned
    assert p.nic.interfaces == ("auto",)
    assert (p.nic.timestamping, p.nic.rx_ring, p.nic.rx_usecs_max) == ("software", "max", None)
    assert p.bpf.af_xdp


def test_builtin_profile_loaded_by_path_is_the_same(tmp_path: Path) -> None:
    text = resources.files("hosttune.profiles").joinpath("feeder.toml").read_text("utf-8")
    path = tmp_path / "mine.toml"
    path.write_text(text)
    by_path = load_profile(str(path))
    assert by_path.source == str(path)
    assert by_path.name == "feeder"  # the file's own name wins over the file name
    assert by_path.sysctl == load_profile().sysctl
    assert by_path.cpu == load_profile().cpu


def test_defaults_when_sections_are_absent() -> None:
    p = parse_profile({}, "/etc/hosttune/lab.toml")
    assert (p.name, p.description, p.source) == ("lab", "", "/etc/hosttune/lab.toml")
    assert p.cpu.isolated == "auto"
    assert p.cpu.isolcpus_flags == ("managed_irq", "domain")
    assert p.cpu.nohz_full and p.cpu.rcu_nocbs
    assert p.cpu.governor is None and p.cpu.max_cstate_latency_us is None
    assert (p.hugepages.pages_2m, p.hugepages.pages_1g) == (0, 0)
    assert p.hugepages.per_node and not p.hugepages.boot
    assert (p.thp.enabled, p.thp.defrag) == ("never", "never")
    assert (p.memlock.user, p.memlock.limit, p.memlock.systemd_unit) == (
        "feeder",
        "unlimited",
        None,
    )
    assert p.sysctl == ()
    assert (p.swap.allow_active_swap, p.swap.swappiness_max) == (False, 10)
    assert not p.numa.balancing
    assert p.irq.keep_off_isolated and p.irq.irqbalance_banned
    assert p.nic.interfaces == ("auto",)
    assert (p.nic.timestamping, p.nic.rx_ring, p.nic.rx_usecs_max) == ("software", None, None)
    assert p.bpf.af_xdp


def test_empty_sections_give_the_same_defaults() -> None:
    sections = ("cpu", "hugepages", "thp", "memlock", "sysctl", "swap", "numa", "irq", "nic", "bpf")
    filled = parse_profile({s: {} for s in sections}, "lab.toml")
    assert filled == parse_profile({}, "lab.toml")


@pytest.mark.parametrize(
    ("isolated", "stored"),
    [("2-5", "2-5"), (" 2-5 ", "2-5"), ("auto", "auto"), ("", ""), ("0-7:2/4", "0-7:2/4")],
)
def test_cpu_isolated_forms(isolated: str, stored: str) -> None:
    assert parse_profile({"cpu": {"isolated": isolated}}, "t").cpu.isolated == stored


@pytest.mark.parametrize(
    ("spec", "op", "value"),
    [
        (50, "eq", "50"),
        ("cubic", "eq", "cubic"),
        ("4096   87380\t6291456", "eq", "4096 87380 6291456"),  # whitespace normalised
        ([4096, 87380, 6291456], "eq", "4096 87380 6291456"),
        ({"eq": 1}, "eq", "1"),
        ({"min": 134217728}, "min", "134217728"),
        ({"max": "10"}, "max", "10"),
        ({"min": -1}, "min", "-1"),
        ({"min": [262144, 524288, 1048576]}, "min", "262144 524288 1048576"),
    ],
)
def test_sysctl_rule_forms(spec: object, op: str, value: str) -> None:
    (rule,) = parse_profile({"sysctl": {"net.core.x-y_z": spec}}, "t").sysctl
    assert rule == SysctlRule("net.core.x-y_z", op, value)


def test_sysctl_rules_keep_profile_order() -> None:
    keys = ["vm.swappiness", "net.core.rmem_max", "kernel.numa_balancing"]
    p = parse_profile({"sysctl": dict.fromkeys(keys, 1)}, "t")
    assert [r.key for r in p.sysctl] == keys


# (document, the key the message must start with, words the reason must contain)
BAD: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    ({"cpuu": {}}, "cpuu", ("unknown section", "known: cpu, hugepages, thp")),
    ({"cpu": 5}, "cpu", ("must be a table", "int")),
    ({"cpu": {"isolate": "2"}}, "cpu.isolate", ("unknown key", "known keys:", "isolated")),
    ({"thp": {"enable": "never"}}, "thp.enable", ("unknown key", "defrag, enabled")),
    ({"name": ""}, "name", ("non-empty string",)),
    ({"name": 5}, "name", ("non-empty string",)),
    ({"description": ["x"]}, "description", ("must be a string",)),
    # wrong types, bool-for-int included (bool is an int subclass in Python)
    ({"hugepages": {"pages_2m": True}}, "hugepages.pages_2m", ("expected int", "got bool")),
    ({"hugepages": {"pages_2m": "512"}}, "hugepages.pages_2m", ("expected int", "got str")),
    ({"hugepages": {"pages_1g": 1.5}}, "hugepages.pages_1g", ("expected int", "got float")),
    ({"hugepages": {"per_node": 1}}, "hugepages.per_node", ("expected bool", "got int")),
    ({"cpu": {"nohz_full": "yes"}}, "cpu.nohz_full", ("expected bool", "got str")),
    ({"cpu": {"max_cstate_latency_us": False}}, "cpu.max_cstate_latency_us", ("got bool",)),
    ({"cpu": {"governor": 1}}, "cpu.governor", ("expected str", "got int")),
    ({"cpu": {"isolated": 3}}, "cpu.isolated", ("expected str",)),
    ({"cpu": {"isolcpus_flags": "domain"}}, "cpu.isolcpus_flags", ("expected list",)),
    ({"swap": {"swappiness_max": True}}, "swap.swappiness_max", ("got bool",)),
    ({"nic": {"rx_usecs_max": True}}, "nic.rx_usecs_max", ("got bool",)),
    ({"nic": {"interfaces": "eth0"}}, "nic.interfaces", ("expected list",)),
    ({"nic": {"interfaces": ["eth0", 3]}}, "nic.interfaces", ("interface names",)),
    ({"nic": {"interfaces": [""]}}, "nic.interfaces", ("interface names",)),
    ({"nic": {"rx_ring": True}}, "nic.rx_ring", ("'max' or a number",)),
    ({"nic": {"rx_ring": "big"}}, "nic.rx_ring", ("'max' or a number",)),
    ({"bpf": {"af_xdp": "true"}}, "bpf.af_xdp", ("expected bool",)),
    # bad enum values
    ({"thp": {"enabled": "sometimes"}}, "thp.enabled", ("'sometimes'", "always, madvise, never")),
    ({"thp": {"defrag": "yes"}}, "thp.defrag", ("'yes'", "defer+madvise")),
    ({"nic": {"timestamping": "ptp"}}, "nic.timestamping", ("'ptp'", "hardware, software, none")),
    ({"cpu": {"isolcpus_flags": ["domain", "x"]}}, "cpu.isolcpus_flags", ("'x'", "managed_irq")),
    ({"memlock": {"limit": "lots"}}, "memlock.limit", ("'unlimited' or a size in KiB",)),
    ({"memlock": {"limit": "-5"}}, "memlock.limit", ("'unlimited' or a size in KiB",)),
    ({"memlock": {"limit": "\u00b2"}}, "memlock.limit", ("'unlimited' or a size in KiB",)),
    # bad cpulists
    ({"cpu": {"isolated": "3-1"}}, "cpu.isolated", ("bad cpu range", "3-1")),
    ({"cpu": {"isolated": "a"}}, "cpu.isolated", ("bad cpu list element",)),
    ({"cpu": {"isolated": "1-"}}, "cpu.isolated", ("bad cpu list element",)),
    ({"cpu": {"isolated": "0-7:5/4"}}, "cpu.isolated", ("bad cpu stride",)),
    ({"cpu": {"isolated": "0-4000000"}}, "cpu.isolated", ("out of range",)),
    # negative numbers
    ({"hugepages": {"pages_2m": -1}}, "hugepages.pages_2m", ("must be >= 0", "-1")),
    ({"hugepages": {"pages_1g": -2}}, "hugepages.pages_1g", ("must be >= 0",)),
    ({"swap": {"swappiness_max": -1}}, "swap.swappiness_max", ("must be >= 0",)),
    ({"cpu": {"max_cstate_latency_us": -10}}, "cpu.max_cstate_latency_us", ("must be >= 0",)),
    ({"nic": {"rx_usecs_max": -1}}, "nic.rx_usecs_max", ("must be >= 0",)),
    ({"nic": {"rx_ring": -1}}, "nic.rx_ring", ("'max' or a number",)),
    ({"nic": {"rx_ring": 0}}, "nic.rx_ring", ("'max' or a number",)),
    # bad sysctl names
    ({"sysctl": {"net/core/rmem_max": 1}}, "sysctl.'net/core/rmem_max'", ("not a sysctl name",)),
    ({"sysctl": {"net..core": 1}}, "sysctl.'net..core'", ("not a sysctl name",)),
    ({"sysctl": {".net.core": 1}}, "sysctl.'.net.core'", ("not a sysctl name",)),
    ({"sysctl": {"net.core.rmem max": 1}}, "sysctl.'net.core.rmem max'", ("not a sysctl",)),
    ({"sysctl": {"net.c\u00f4re.x": 1}}, "sysctl.'net.c\u00f4re.x'", ("not a sysctl name",)),
    ({"sysctl": {"../../etc/passwd": 1}}, "sysctl.'../../etc/passwd'", ("not a sysctl",)),
    ({"sysctl": {"": 1}}, "sysctl.''", ("not a sysctl name",)),
    # bad sysctl values, min/max with non-integers
    ({"sysctl": {"vm.x": {"min": "abc"}}}, "sysctl.'vm.x'", ("min needs integer", "'abc'")),
    ({"sysctl": {"vm.x": {"max": "1 two"}}}, "sysctl.'vm.x'", ("max needs integer",)),
    ({"sysctl": {"vm.x": {"min": "--5"}}}, "sysctl.'vm.x'", ("min needs integer",)),
    ({"sysctl": {"vm.x": {"min": "5-"}}}, "sysctl.'vm.x'", ("min needs integer",)),
    ({"sysctl": {"vm.x": {"min": 1.5}}}, "sysctl.'vm.x'", ("integer, string or list",)),
    ({"sysctl": {"vm.x": {"max": True}}}, "sysctl.'vm.x'", ("integer, string or list",)),
    ({"sysctl": {"vm.x": True}}, "sysctl.'vm.x'", ("integer, string or list",)),
    ({"sysctl": {"vm.x": 2.5}}, "sysctl.'vm.x'", ("integer, string or list",)),
    ({"sysctl": {"vm.x": ["1", 2]}}, "sysctl.'vm.x'", ("list values must be integers",)),
    ({"sysctl": {"vm.x": {"min": [True]}}}, "sysctl.'vm.x'", ("list values must be integers",)),
    ({"sysctl": {"vm.x": {"min": 1, "max": 2}}}, "sysctl.'vm.x'", ("one of min/max/eq",)),
    ({"sysctl": {"vm.x": {"above": 3}}}, "sysctl.'vm.x'", ("one of min/max/eq",)),
    ({"sysctl": {"vm.x": {}}}, "sysctl.'vm.x'", ("one of min/max/eq",)),
    ({"sysctl": {"vm.x": []}}, "sysctl.'vm.x'", ("empty",)),
    ({"sysctl": {"vm.x": "  "}}, "sysctl.'vm.x'", ("empty",)),
    ({"sysctl": {"vm.x": {"min": []}}}, "sysctl.'vm.x'", ("empty",)),
]


@pytest.mark.parametrize(
    ("doc", "key", "words"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)]
)
def test_every_validation_error_names_the_key_and_the_reason(
    doc: dict[str, Any], key: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(ProfileError) as e:
        parse_profile(doc, "t.toml")
    msg = str(e.value)
    assert msg.startswith(f"{key}: "), msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg  # one line for the CLI


def test_unquoted_dotted_sysctl_name_gets_a_quoting_hint() -> None:
    # TOML turns an unquoted net.core.rmem_max into nested tables; say what happened.
    doc = tomllib.loads("[sysctl]\nnet.core.rmem_max = 1\n")
    with pytest.raises(ProfileError, match=r"^sysctl\.'net': quote dotted sysctl names"):
        parse_profile(doc, "t")
    doc = tomllib.loads("[sysctl]\nvm.swappiness = { max = 10 }\n")
    with pytest.raises(ProfileError, match=r"^sysctl\.'vm': quote dotted"):
        parse_profile(doc, "t")


def test_the_first_unknown_key_is_named_among_several() -> None:
    with pytest.raises(ProfileError, match=r"^bpf\.a: unknown key \(known keys: af_xdp\)$"):
        parse_profile({"bpf": {"b": 1, "a": 2}}, "t")


def test_a_profile_file_with_a_bad_value_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[thp]\nenabled = "sometimes"\n')
    with pytest.raises(ProfileError, match=r"^thp\.enabled: 'sometimes' is not one of"):
        load_profile(str(path))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[cpu\nisolated = 1\n", ("not valid TOML",)),
        (b'name = "a"\nname = "b"\n', ("not valid TOML",)),
        (b"isolated = \n", ("not valid TOML",)),
        (b"name = '\xff\xfe'\n", ("not UTF-8",)),
    ],
)
def test_unreadable_profile_files(tmp_path: Path, content: bytes, words: tuple[str, ...]) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ProfileError) as e:
        load_profile(str(path))
    assert str(path) in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ProfileError, match=r"cannot read profile .*nope\.toml: No such file"):
        load_profile(str(missing))


def test_profile_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"cannot read profile .*: Is a directory"):
        load_profile(str(tmp_path))


def test_unknown_builtin_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"no built-in profile 'nope' \(have: .*feeder"):
        load_profile(name="nope")
