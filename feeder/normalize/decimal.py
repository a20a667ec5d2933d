"""Decimal text -> fixed-point integer, exactly, without Decimal or float on the hot path.

``parse("27123.45", 8) == 2712345000000``. A value with more significant decimal places than the
scale allows raises ``InexactValue`` (counted and reported by the caller, never rounded).
Trailing zeros beyond the scale are fine (``"0.100000000"``). Exponent notation, which exchanges
rarely send, takes the slow exact path.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_POW10: list[int] = [10**i for i in range(20)]
_DIGITS = "0123456789"


class InexactValue(ValueError):
    """The number cannot be represented at the instrument's scale (or is not a number)."""


def parse(text: str, scale: int = 8) -> int:
    """``text * 10**scale`` as an exact int."""
    # Fast path: drop the point and scale by the missing places; one int() does the digits.
    i = text.find(".")
    if "_" not in text:  # int() would read "1_0" as 10
        if i < 0:
            try:
                return int(text) * _POW10[scale]
            except ValueError:
                return _slow(text, scale)
        n = len(text) - i - 1
        if n <= scale and text[-1] in _DIGITS:
            try:
                return int(text.replace(".", "", 1)) * _POW10[scale - n]
            except ValueError:
                pass
    return _slow(text, scale)


def _slow(text: str, scale: int) -> int:
    """Exact path: exponent notation, extra (zero) decimals, or odd input."""
    try:
        d = Decimal(text.strip()) if "_" not in text else Decimal("x")
    except InvalidOperation:
        raise InexactValue(f"{text!r} is not a decimal number") from None
    if not d.is_finite():
        raise InexactValue(f"{text!r} is not a finite number")
    scaled = d.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise InexactValue(f"{text!r} has more than {scale} decimal places")
    return int(scaled)


def from_float(value: float, scale: int = 8) -> int:
    """A JSON number an exchange sent (e.g. Kraken v2) as an exact int.

    ``repr`` gives the shortest decimal that round-trips to the same double, which is the text
    the exchange wrote whenever it had at most 15 significant digits (prices and sizes do).
    """
    if isinstance(value, int):
        return value * _POW10[scale]
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
