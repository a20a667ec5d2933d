"""Exact conversion between decimal numbers and the wire's fixed-point integers.

A wire price or quantity is an integer ``n`` meaning ``n * 10**-exponent`` (exponent 8 unless an
InstrumentDefinition says otherwise). Conversion never rounds: a value with more decimal places
than the exponent allows, or outside i64, is a ``ValueError``. Binary floats are refused because
they cannot say which decimal the exchange sent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final

from feeder.wire.layout import MAX_EXPONENT

DEFAULT_EXPONENT: Final = 8
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1


def _check_exponent(exponent: int) -> None:
    if not 0 <= exponent <= MAX_EXPONENT:
        raise ValueError(f"exponent={exponent!r} must be 0..{MAX_EXPONENT}")


def to_fixed(value: str | Decimal | int, exponent: int = DEFAULT_EXPONENT) -> int:
    """``value * 10**exponent`` as an exact i64, e.g. ``to_fixed("27123.45") == 2712345000000``."""
    _check_exponent(exponent)
    if isinstance(value, float | bool):
        raise TypeError(f"{value!r}: pass a str, Decimal or int, not {type(value).__name__}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    sign, digit_tuple, exp = number.as_tuple()
    assert isinstance(exp, int)  # finite numbers have an int exponent
    digits = int("".join(map(str, digit_tuple)) or "0")
    shift = exp + exponent
    if digits == 0:
        return 0
    scaled: int
    if shift >= 0:
        if shift > 19:  # at least 10**19 > I64_MAX; refuse before building a huge int
            raise ValueError(f"{value!r} at exponent {exponent} is outside i64")
        scaled = digits * 10**shift
    else:
        if -shift > len(digit_tuple):  # smaller than one unit at this exponent
            raise ValueError(f"{value!r} has more than {exponent} decimal places")
        scaled, remainder = divmod(digits, 10**-shift)
        if remainder:
            raise ValueError(f"{value!r} has more than {exponent} decimal places")
    result = -scaled if sign else scaled
    if not I64_MIN <= result <= I64_MAX:
        raise ValueError(f"{value!r} at exponent {exponent} is outside i64")
    return result


def from_fixed(raw: int, exponent: int = DEFAULT_EXPONENT) -> Decimal:
    """The exact decimal a wire integer stands for: ``from_fixed(150, 2) == Decimal("1.50")``."""
    _check_exponent(exponent)
    digits = tuple(int(d) for d in str(abs(raw)))
    return Decimal((1 if raw < 0 else 0, digits, -exponent))
