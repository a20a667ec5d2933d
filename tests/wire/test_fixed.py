"""Exact fixed-point conversion: no rounding, no floats, i64 bounds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.wire import from_fixed, to_fixed
from tests.wire.strategies import i64


@pytest.mark.parametrize(
    ("text", "exponent", "raw"),
    [
        ("27123.45", 8, 2_712_345_000_000),
        ("27123.45", 2, 2_712_345),
        ("0.00000001", 8, 1),
        ("-0.5", 1, -5),
        ("1E+3", 0, 1000),
        ("1.2300", 2, 123),  # trailing zeros are not extra precision
        ("0", 18, 0),
        ("-0.000", 8, 0),
        ("92233720368.54775807", 8, 2**63 - 1),
        ("-92233720368.54775808", 8, -(2**63)),
    ],
)
def test_to_fixed(text: str, exponent: int, raw: int) -> None:
    assert to_fixed(text, exponent) == raw
    assert to_fixed(Decimal(text), exponent) == raw


def test_ints_and_default_exponent() -> None:
    assert to_fixed(3) == 300_000_000
    assert from_fixed(300_000_000) == Decimal(3)
    assert str(from_fixed(150, 2)) == "1.50"
    assert str(from_fixed(-1)) == "-1E-8"


@pytest.mark.parametrize(
    ("value", "exponent", "error", "message"),
    [
        ("1.000000001", 8, ValueError, "more than 8 decimal places"),
        ("1e-30", 8, ValueError, "more than 8 decimal places"),
        ("92233720368.54775808", 8, ValueError, "outside i64"),
        ("1e30", 8, ValueError, "outside i64"),
        ("1e999999999", 8, ValueError, "outside i64"),
        ("abc", 8, ValueError, "not a decimal number"),
        ("NaN", 8, ValueError, "not a finite number"),
        ("-Infinity", 8, ValueError, "not a finite number"),
        ("1", 19, ValueError, "exponent=19"),
        (1.5, 8, TypeError, "not float"),
        (True, 8, TypeError, "not bool"),
    ],
)
def test_to_fixed_refuses_what_it_cannot_represent_exactly(
    value: object, exponent: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        to_fixed(value, exponent)  # type: ignore[arg-type]


@given(raw=i64, exponent=st.integers(0, 18))
def test_round_trip(raw: int, exponent: int) -> None:
    value = from_fixed(raw, exponent)
    assert to_fixed(value, exponent) == raw
    assert to_fixed(str(value), exponent) == raw
    assert value == Decimal(raw) / Decimal(10) ** exponent
