"""Decimal text -> fixed-point integer, exactly, without Decimal or float on the hot path.

``parse("27123.45", 8) == 2712345000000``. A value with more significant decimal places than the
scale allows raises ``InexactValue`` (counted and reported by the caller, never rounded).
Trailing zeros beyond the scale are fine (``"0.100000000"``). Exponent notation, which exchanges
rarely send, takes the slow exact path. Results are bounded to the wire's signed 64-bit fields:
a value outside them (``"1e999999"``, 25 digits) is ``InexactValue`` too, never a huge int.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

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


# --- remembered conversions (the hot path) ----------------------------------------------------
#
# A book's prices and sizes recur frame after frame: in the simulator's delta streams ~75 % of
# the values were seen before, in Upbit's whole-book frames 99 %. A dict hit costs a tenth of
# ``parse``, so the adapters convert through these bounded memos. Only a conversion that
# succeeded is remembered, so a bad value raises exactly what the direct call raises.

CACHE_LIMIT = 1 << 15  # entries per memo; a full memo is cleared, not evicted entry by entry
_MEMOS: list[dict[Any, int]] = []  # every memo made, for clear_memos()


def clear_memos() -> None:
    """Forget every remembered conversion (benchmarks time a cold pass with this)."""
    for memo in _MEMOS:
        memo.clear()


_EXACT_FLOAT = 1 << 53  # integral floats below this print exactly (see NumberCache)


class TextCache(dict[str, int]):
    """``memo[text] == parse(text, scale)``, remembered. Non-text keys raise like ``parse``
    (``TypeError``; an unhashable one before ``parse`` is reached)."""

    __slots__ = ("scale",)

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        _MEMOS.append(self)

    def __missing__(self, text: str) -> int:
        value = parse(text, self.scale)
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[text] = value
        return value


class NumberCache(dict[object, int]):
    """``memo[value] == convert(value, scale)`` for JSON numbers (``from_float`` or a wrapper
    of it), remembered.

    Only ints and floats are stored, never 0 or 1: a dict finds a key by equality, and
    ``True == 1``, ``False == 0.0``, so a stored 1 would let ``true`` through where
    ``convert`` refuses it. Integral values are stored only below 2**53, where an int and the
    float equal to it convert alike (``repr`` of such a float is exact); text keys are never
    stored because converters disagree on them (Kraken refuses text, Upbit parses it).
    """

    __slots__ = ("convert", "scale")

    def __init__(self, scale: int, convert: Callable[[Any, int], int] = from_float) -> None:
        super().__init__()
        self.scale = scale
        self.convert = convert
        _MEMOS.append(self)

    def __missing__(self, value: object) -> int:
        kind = type(value)
        if (kind is float or kind is int) and value == 0:
            return 0  # a deleted level's size: never stored (False == 0), so skip convert()
        result = self.convert(value, self.scale)
        if (kind is float or kind is int) and value != 1:
            assert isinstance(value, int | float)
            if -_EXACT_FLOAT < value < _EXACT_FLOAT:
                if len(self) >= CACHE_LIMIT:
                    self.clear()
                self[value] = result
        return result


TEXT: list[TextCache] = [TextCache(s) for s in range(len(_POW10))]
"""Shared text memos by scale: ``TEXT[8]["1.5"] == parse("1.5", 8)``."""
FLOAT: list[NumberCache] = [NumberCache(s) for s in range(len(_POW10))]
"""Shared JSON-number memos by scale: ``FLOAT[8][1.5] == from_float(1.5, 8)``."""


def parse_pairs(
    rows: Sequence[Sequence[str]], prices: TextCache, sizes: TextCache
) -> list[tuple[int, int]]:
    """``[[price, size], ...]`` text pairs -> ``[(price, size), ...]`` fixed-point ints.

    Same results and errors as ``[(parse(p, ps), parse(q, qs)) for p, q in rows]``: a row of
    another length is a ``ValueError``; a bad value raises what ``parse`` raises.
    """
    try:
        return [(prices[p], sizes[q]) for p, q in rows]
    except TypeError:  # an unhashable value: let parse() name it as it always did
        ps, qs = prices.scale, sizes.scale
        return [(parse(p, ps), parse(q, qs)) for p, q in rows]


def parse_rows(
    rows: Sequence[Sequence[str]], prices: TextCache, sizes: TextCache
) -> list[tuple[int, int]]:
    """Like ``parse_pairs`` for rows carrying more fields after price and size (OKX's
    ``[px, sz, "0", count]``): only the first two are read."""
    try:
        return [(prices[r[0]], sizes[r[1]]) for r in rows]
    except TypeError:
        ps, qs = prices.scale, sizes.scale
        return [(parse(r[0], ps), parse(r[1], qs)) for r in rows]


def parse_book(
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
    prices: TextCache,
    sizes: TextCache,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``parse_pairs`` of both sides of a book message in one call (``bids`` first)."""
    try:
        return [(prices[p], sizes[q]) for p, q in bids], [(prices[p], sizes[q]) for p, q in asks]
    except TypeError:
        return parse_pairs(bids, prices, sizes), parse_pairs(asks, prices, sizes)


def parse_book_rows(
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
    prices: TextCache,
    sizes: TextCache,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``parse_rows`` of both sides of a book message in one call (``bids`` first)."""
    try:
        return (
            [(prices[r[0]], sizes[r[1]]) for r in bids],
            [(prices[r[0]], sizes[r[1]]) for r in asks],
        )
    except TypeError:
        return parse_rows(bids, prices, sizes), parse_rows(asks, prices, sizes)
