"""Decimal text -> fixed-point integer, exactly, without Decimal or float on the hot path.

``parse("27123.45", 8) == 2712345000000``. A value with more significant decimal places than the
scale allows raises ``InexactValue`` (counted and reported by the caller, never rounded).
Trailing zeros beyond the scale are fine (``"0.100000000"``). Exponent notation, which exchanges
rarely send, takes the slow exact path. Results are bounded to the wire's signed 64-bit fields:
a value outside them (``"1e999999"``, 25 digits) is ``InexactValue`` too, never a huge int.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_POW10: list[int] = [10**i for i in range(20)]
_DIGITS = "0123456789"
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
_MAX_DIGITS = len(str(I64_MAX))  # 19


class InexactValue(ValueError):
    """The number cannot be represented at the instrument's scale (or is not a number)."""


def parse(text: str, scale: int = 8) -> int:
    """``text * 10**scale`` as an exact int (``TypeError`` if ``text`` is not a str)."""
    # Fast path: drop the point and scale by the missing places; one int() does the digits.
    try:
        i = text.find(".")
    except AttributeError:  # a JSON null, number or list where the exchange writes text
        raise TypeError(f"{type(text).__name__} is not decimal text") from None
    if "_" not in text:  # int() would read "1_0" as 10
        if i < 0:
            try:
                value = int(text) * _POW10[scale]
            except ValueError:
                return _slow(text, scale)
            return value if I64_MIN <= value <= I64_MAX else _out_of_range(text)
        n = len(text) - i - 1
        if n <= scale and text[-1] in _DIGITS:
            try:
                value = int(text.replace(".", "", 1)) * _POW10[scale - n]
            except ValueError:
                pass
            else:
                return value if I64_MIN <= value <= I64_MAX else _out_of_range(text)
    return _slow(text, scale)


def _out_of_range(text: str) -> int:
    raise InexactValue(f"{text[:40]!r} is outside the 64-bit fixed-point range")


def _slow(text: str, scale: int) -> int:
    """Exact path: exponent notation, extra (zero) decimals, or odd input.

    Works on the digits and exponent alone: Decimal arithmetic would round to the context's
    28 digits, underflow tiny exponents to 0 and raise ``Overflow`` on huge ones.
    """
    try:
        d = Decimal(text.strip()) if "_" not in text else Decimal("x")
    except InvalidOperation:
        raise InexactValue(f"{text[:40]!r} is not a decimal number") from None
    if not d.is_finite():
        raise InexactValue(f"{text[:40]!r} is not a finite number")
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)  # finite
    coefficient = "".join(map(str, digits))
    shift = exponent + scale  # decimal places to move the coefficient by
    if shift < 0:
        coefficient, dropped = coefficient[:shift], coefficient[shift:]
        if dropped.strip("0"):
            raise InexactValue(f"{text[:40]!r} has more than {scale} decimal places")
        shift = 0
    significant = coefficient.lstrip("0")
    if not significant:
        return 0
    if len(significant) + shift > _MAX_DIGITS:  # before int(): no huge ints, no str limits
        return _out_of_range(text)
    value = int(significant) * 10**shift
    value = -value if sign else value
    return value if I64_MIN <= value <= I64_MAX else _out_of_range(text)


def from_float(value: float, scale: int = 8) -> int:
    """A JSON number an exchange sent (e.g. Kraken v2) as an exact int.

    ``repr`` gives the shortest decimal that round-trips to the same double, which is the text
    the exchange wrote whenever it had at most 15 significant digits (prices and sizes do).
    """
    if type(value) is int:  # not bool: ``true`` is no price
        scaled = value * _POW10[scale]
        return scaled if I64_MIN <= scaled <= I64_MAX else _out_of_range(f"{value:.3e}")
    return parse(repr(value), scale)


def render(value: int, scale: int = 8, *, places: int | None = None) -> str:
    """The decimal text of a fixed-point int: trailing zeros dropped, or exactly ``places``."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), _POW10[scale])
    digits = str(frac).rjust(scale, "0") if scale else ""
    if places is None:
        digits = digits.rstrip("0")
    elif places < scale:
        if digits[places:].strip("0"):
            raise InexactValue(f"{value} at scale {scale} has more than {places} places")
        digits = digits[:places]
    else:
        digits = digits.ljust(places, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"
