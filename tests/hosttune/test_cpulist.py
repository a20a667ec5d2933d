"""Kernel cpulist and hex-mask syntax: parsing, rendering, errors, and the real kernel's files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hosttune.cpulist import MAX_CPUS, CpuListError, parse, parse_mask, render, render_mask

cpu_sets = st.frozensets(st.integers(min_value=0, max_value=300), max_size=60)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8,10-11", {0, 1, 2, 3, 8, 10, 11}),
        ("5", {5}),
        ("0", {0}),
        ("1,3,5", {1, 3, 5}),
        ("3-3", {3}),
        ("2-5,4-7", {2, 3, 4, 5, 6, 7}),  # overlaps merge
        ("8,0-1", {0, 1, 8}),  # order does not matter
        # Stride N-M:used/group: the first `used` CPUs of every `group` from N up to M.
        ("0-7:2/4", {0, 1, 4, 5}),
        ("0-9:1/3", {0, 3, 6, 9}),
        ("1-6:2/4", {1, 2, 5, 6}),
        ("0-5:2/4", {0, 1, 4, 5}),  # the last group is cut at M
        ("0-4:3/3", {0, 1, 2, 3, 4}),
        ("3:1/2", {3}),
        ("0-3:2/4,8", {0, 1, 8}),
        # Whitespace as files and hand-written lists carry it.
        (" 1-2 , 4\n", {1, 2, 4}),
        ("0 - 2", {0, 1, 2}),
        ("\t7\n", {7}),
    ],
)
def test_parse(text: str, cpus: set[int]) -> None:
    assert parse(text) == frozenset(cpus)


@pytest.mark.parametrize("text", ["", "\n", "   ", ",", " , ,"])
def test_parse_empty_is_the_empty_set(text: str) -> None:
    assert parse(text) == frozenset()


@pytest.mark.parametrize(
    "text",
    [
        "3-1",  # reversed range
        "a",
        "1-",
        "-1",
        "1--2",
        "1-2-3",
        "1 2",
        "1_0",  # int() would take these three; the kernel does not
        "+1",
        "\u0663",  # ARABIC-INDIC DIGIT THREE
        "0x3",
        "0-7:2",  # stride without a group
        "0-7:/4",
        "0-7:2/",
        "0-7:a/4",
        "0-7:0/4",  # nothing used
        "0-7:2/0",  # empty group
        "0-7:5/4",  # more used than the group has: the kernel says EINVAL
        "0-7:2/4/8",
        "1,2,x",
        str(MAX_CPUS),
        f"0-{MAX_CPUS * 1000}",  # a typo must not build a set of millions
    ],
)
def test_parse_errors_name_the_input(text: str) -> None:
    with pytest.raises(CpuListError) as e:
        parse(text)
    assert repr(text) in str(e.value)
    assert isinstance(e.value, ValueError)  # callers may catch it as a ValueError


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        (set(), ""),
        ({5}, "5"),
        ({0, 1}, "0-1"),
        ({1, 3}, "1,3"),
        ({0, 1, 2, 5, 7, 8}, "0-2,5,7-8"),
        ({10, 9, 8, 0}, "0,8-10"),
    ],
)
def test_render(cpus: set[int], text: str) -> None:
    assert render(cpus) == text
    assert render(frozenset(cpus)) == text


@given(cpu_sets)
def test_render_parse_round_trip(cpus: frozenset[int]) -> None:
    text = render(cpus)
    assert parse(text) == cpus
    assert render(parse(text)) == text
    assert " " not in text


@given(cpu_sets)
def test_render_is_canonical_for_any_spelling(cpus: frozenset[int]) -> None:
    # Singles in reverse order spell the same set; rendering it gives the canonical form.
    spelled = ",".join(str(c) for c in sorted(cpus, reverse=True))
    assert render(parse(spelled)) == render(cpus)


@given(
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(1, 16),
    st.integers(1, 16),
)
def test_stride_matches_its_definition(a: int, span: int, used: int, group: int) -> None:
    b = a + span
    if used > group:
        with pytest.raises(CpuListError):
            parse(f"{a}-{b}:{used}/{group}")
        return
    want = {c for c in range(a, b + 1) if (c - a) % group < used}
    assert parse(f"{a}-{b}:{used}/{group}") == want


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("3\n", {0, 1}),
        ("0", set()),
        ("00000000", set()),
        ("ff,ffffffff", set(range(40))),
        ("00000000,00000001", {0}),
        ("1,00000000", {32}),
        ("80000000", {31}),
        # Each comma group is a whole 32-bit word, as the kernel reads it.
        ("ff,1", {0, *range(32, 40)}),
        ("1,0,0", {64}),
        ("FF", set(range(8))),
        ("  f  ", {0, 1, 2, 3}),
    ],
)
def test_parse_mask(text: str, cpus: set[int]) -> None:
    assert parse_mask(text) == frozenset(cpus)


@pytest.mark.parametrize(
    "text",
    ["", "\n", "xyz", "-1", "0x3", "1_0", "+f", "123456789", "ff,", ",ff", "ff,,1", "f f", "g"],
)
def test_parse_mask_errors(text: str) -> None:
    with pytest.raises(CpuListError, match="bad cpu mask"):
        parse_mask(text)


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        (set(), "0"),
        ({0, 1}, "3"),
        (set(range(32)), "ffffffff"),
        ({32}, "1,00000000"),
        (set(range(40)), "ff,ffffffff"),
        ({0, 64}, "1,00000000,00000001"),
    ],
)
def test_render_mask(cpus: set[int], text: str) -> None:
    assert render_mask(cpus) == text


@given(cpu_sets)
def test_mask_round_trip_and_kernel_word_size(cpus: frozenset[int]) -> None:
    text = render_mask(cpus)
    assert parse_mask(text) == cpus
    # The kernel refuses a group longer than one 32-bit word (EOVERFLOW).
    assert all(1 <= len(word) <= 8 for word in text.split(","))
    assert all(len(word) == 8 for word in text.split(",")[1:])


def test_the_running_kernels_own_files_parse() -> None:
    """The formats this kernel really prints (``0-1``, an empty ``isolated``, ``3`` masks)."""
    cpu = Path("/sys/devices/system/cpu")
    online = parse(cpu.joinpath("online").read_text())
    possible = parse(cpu.joinpath("possible").read_text())
    assert 0 in online and online <= possible
    assert parse(cpu.joinpath("isolated").read_text()) <= possible
    # /proc/irq/default_smp_affinity is a hex mask of possible CPUs.
    assert parse_mask(Path("/proc/irq/default_smp_affinity").read_text()) <= possible
