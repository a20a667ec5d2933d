from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import feeder.normalize.decimal as decimal_module
from feeder.normalize.decimal import (
    TEXT,
    InexactValue,
    NumberCache,
    TextCache,
    from_float,
    parse,
    parse_book,
    parse_book_rows,
    parse_pairs,
    parse_rows,
    render,
)


@pytest.mark.parametrize(
    ("text", "scale", "value"),
    [
        ("27123.45", 8, 2712345000000),
        ("0.00000001", 8, 1),
        ("-1.5", 8, -150000000),
        ("100", 8, 10000000000),
        (".5", 8, 50000000),
        ("-.5", 8, -50000000),
        ("-0.5", 8, -50000000),
        ("0.100000000", 8, 10000000),  # extra zeros beyond the scale are exact
        ("1e-5", 8, 1000),
        ("3.0E2", 8, 30000000000),
        ("5.", 8, 500000000),
        ("12.345", 3, 12345),
        ("7", 0, 7),
    ],
)
def test_parse_exact(text: str, scale: int, value: int) -> None:
    assert parse(text, scale) == value


@pytest.mark.parametrize(
    "text", ["0.000000001", "abc", "1.2.3", "", "1_0", "1.-5", "nan", "inf", "1.5x", ".", "-"]
)
def test_parse_refuses_what_it_cannot_represent(text: str) -> None:
    with pytest.raises(InexactValue):
        parse(text, 8)


@given(st.decimals(min_value=-(10**10), max_value=10**10, places=8, allow_nan=False))
def test_parse_matches_decimal(d: Decimal) -> None:
    text = format(d, "f")
    assert parse(text, 8) == int(d.scaleb(8))
    assert Decimal(render(parse(text, 8), 8)) == d


def test_from_float_recovers_the_decimal_that_was_sent() -> None:
    assert from_float(30000.1) == 3000010000000
    assert from_float(0.00012345) == 12345
    assert from_float(5) == 500000000


def test_render_places() -> None:
    assert render(2712345000000) == "27123.45"
    assert render(-1) == "-0.00000001"
    assert render(150000000, places=1) == "1.5"
    assert render(100000000, places=2) == "1.00"
    assert render(0) == "0"
    with pytest.raises(InexactValue):
        render(123456789, places=2)


# --- memos and the batched level parser -------------------------------------------------------


def _outcome(f: Callable[[], object]) -> object:
    """A call's result, or its exception's type and message (to compare two paths)."""
    try:
        return f()
    except (InexactValue, TypeError, ValueError) as e:
        return type(e), str(e)


_texts = st.one_of(
    st.decimals(min_value=-(10**11), max_value=10**11, places=9, allow_nan=False).map(
        lambda d: format(d, "f")
    ),
    st.sampled_from(["0", "1", "1.0", "0.0000", "1e-5", "abc", "", "1_0", " 1.5", "9" * 20]),
)


@given(st.lists(st.tuples(_texts, _texts), max_size=30), st.integers(0, 10), st.integers(0, 10))
def test_parse_pairs_matches_parse(rows: list[tuple[str, str]], ps: int, qs: int) -> None:
    def old() -> object:
        return [(parse(p, ps), parse(q, qs)) for p, q in rows]

    assert _outcome(lambda: parse_pairs(rows, TEXT[ps], TEXT[qs])) == _outcome(old)
    assert _outcome(lambda: parse_pairs(rows, TEXT[ps], TEXT[qs])) == _outcome(old)  # memo hits
    padded = [[p, q, "0", "1"] for p, q in rows]
    assert _outcome(lambda: parse_rows(padded, TEXT[ps], TEXT[qs])) == _outcome(old)
    half = len(rows) // 2

    def both() -> object:
        return old_of(rows[:half]), old_of(rows[half:])

    def old_of(part: list[tuple[str, str]]) -> list[tuple[int, int]]:
        return [(parse(p, ps), parse(q, qs)) for p, q in part]

    got = _outcome(lambda: parse_book(rows[:half], rows[half:], TEXT[ps], TEXT[qs]))
    assert got == _outcome(both)
    got = _outcome(lambda: parse_book_rows(padded[:half], padded[half:], TEXT[ps], TEXT[qs]))
    assert got == _outcome(both)


def test_parse_pairs_exact_values() -> None:
    rows = [["27123.45", "0.00000001"], ["100", "0.100000000"], ["3.0E2", "0"]]
    got = parse_pairs(rows, TEXT[8], TEXT[8])
    assert got == [(2712345000000, 1), (10000000000, 10000000), (30000000000, 0)]
    assert parse_pairs([["12.345", "7"]], TEXT[3], TEXT[0]) == [(12345, 7)]


@pytest.mark.parametrize(
    "rows",
    [
        [["1.5", "0.000000001"]],  # more places than the scale
        [["1.5", "1e999"]],  # outside 64 bits
        [["1.5", None]],
        [["1.5", ["2"]]],  # unhashable: the same TypeError parse() gives
        [["1.5", 2.5]],
        [["1.5"]],
        [["1.5", "2", "3"]],
        None,
    ],
)
def test_parse_pairs_errors_like_parse(rows: Any) -> None:
    def old() -> object:
        return [(parse(p, 8), parse(q, 8)) for p, q in rows]

    expected = _outcome(old)
    assert isinstance(expected, tuple) and isinstance(expected[0], type)
    assert _outcome(lambda: parse_pairs(rows, TEXT[8], TEXT[8])) == expected
    assert _outcome(lambda: parse_book([], rows, TEXT[8], TEXT[8])) == expected


def test_memos_remember_only_what_converted_and_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = TextCache(8)
    with pytest.raises(InexactValue):
        memo["0.000000001"]
    assert memo == {}
    monkeypatch.setattr(decimal_module, "CACHE_LIMIT", 3)
    for text in ("1", "2", "3", "4"):
        assert memo[text] == parse(text, 8)
    assert len(memo) <= 3 and memo["4"] == 400000000


def test_number_memo_never_lets_a_bool_through() -> None:
    memo = NumberCache(8)
    assert memo[1] == memo[1.0] == 100000000 and memo[0.0] == memo[0] == 0
    for flag in (True, False):
        assert _outcome(lambda f=flag: memo[f]) == _outcome(lambda f=flag: from_float(f, 8))
        assert isinstance(_outcome(lambda f=flag: memo[f]), tuple)
    assert memo[2] == 200000000 and memo[2.0] == 200000000  # an int and its float agree
    assert memo[0.1] == 10000000
    assert _outcome(lambda: memo["0.1"]) == _outcome(lambda: from_float("0.1", 8))  # type: ignore[arg-type]
    assert all(type(k) in (int, float) for k in memo)


_numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda f: round(f, 4)),
    st.booleans(),
    st.sampled_from([0, 1, 0.0, 1.0, -0.0, 2**53, float(2**53), 2**60, "1.5", None]),
)


@given(st.lists(_numbers, max_size=40), st.integers(0, 12))
def test_number_memo_matches_from_float(values: list[Any], scale: int) -> None:
    memo = NumberCache(scale)
    for _ in range(2):
        for v in values:
            assert _outcome(lambda v=v: memo[v]) == _outcome(lambda v=v: from_float(v, scale))


def test_clear_memos_forgets_every_remembered_conversion() -> None:
    from feeder.normalize.decimal import FLOAT, TEXT, clear_memos

    assert TEXT[8]["1.5"] == 150_000_000 and FLOAT[8][2.5] == 250_000_000
    assert "1.5" in TEXT[8] and 2.5 in FLOAT[8]
    clear_memos()
    assert "1.5" not in TEXT[8] and 2.5 not in FLOAT[8]
    assert TEXT[8]["1.5"] == 150_000_000  # and converts again
