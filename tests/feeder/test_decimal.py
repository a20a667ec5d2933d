from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.normalize.decimal import InexactValue, from_float, parse, render


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
