"""A log-linear latency histogram in the manner of HdrHistogram.

Values (nanoseconds, or any non-negative integer) land in buckets whose width grows with the
value so the relative error stays below ``2 ** -(sub_bits - 1)`` (0.8 % with the default 8 bits)
from 1 ns to hours, in a fixed preallocated list. Recording is a bit_length, a shift, an add
and an index: no allocation beyond CPython's int boxing, no lock (one writer per histogram).
Percentiles walk the counts and are meant for the reporting path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class Summary:
    count: int
    min: int
    max: int
    mean: float
    p50: int
    p95: int
    p99: int
    p999: int

    def scaled(self, divisor: float, ndigits: int = 1) -> dict[str, float | int]:
        """The summary in other units (e.g. ns -> µs), as the JSON reports want it."""
        return {
            "count": self.count,
            "min": round(self.min / divisor, ndigits),
            "mean": round(self.mean / divisor, ndigits),
            "p50": round(self.p50 / divisor, ndigits),
            "p95": round(self.p95 / divisor, ndigits),
            "p99": round(self.p99 / divisor, ndigits),
            "p999": round(self.p999 / divisor, ndigits),
            "max": round(self.max / divisor, ndigits),
        }


class Histogram:
    __slots__ = ("_counts", "_half", "_sub_bits", "count", "max", "min", "total")

    def __init__(self, sub_bits: int = 8, max_bits: int = 64) -> None:
        if not 2 <= sub_bits <= 16:
            raise ValueError("sub_bits must be within 2..16")
        self._sub_bits = sub_bits
        self._half = 1 << (sub_bits - 1)
        size = (1 << sub_bits) + (max_bits - sub_bits + 1) * self._half
        self._counts = [0] * size
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Record one value; negative values (clock steps) count as 0."""
        if value < 0:
            value = 0
        shift = value.bit_length() - self._sub_bits
        if shift <= 0:
            self._counts[value] += 1
        else:
            self._counts[shift * self._half + (value >> shift)] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def record_many(self, values: Iterable[int]) -> None:
        for v in values:
            self.record(v)

    def _lower_bound(self, index: int) -> int:
        if index < (1 << self._sub_bits):
            return index
        shift, sub = divmod(index - (1 << self._sub_bits), self._half)
        shift += 1
        return (self._half + sub) << shift

    def _upper_bound(self, index: int) -> int:
        if index < (1 << self._sub_bits):
            return index
        shift = (index - (1 << self._sub_bits)) // self._half + 1
        return self._lower_bound(index) + (1 << shift) - 1

    def percentile(self, pct: float) -> int:
        """The value at or below which ``pct`` percent of recorded values fall (bucket top,
        clamped to the exact max)."""
        if self.count == 0:
            return 0
        rank = max(1, -(-self.count * pct // 100))
        seen = 0
        for index, c in enumerate(self._counts):
            if c:
                seen += c
                if seen >= rank:
                    return min(self._upper_bound(index), self.max)
        return self.max

    def percentiles(self, pcts: Sequence[float] = PERCENTILES) -> list[int]:
        return [self.percentile(p) for p in pcts]

    def merge(self, other: Histogram) -> None:
        if other._sub_bits != self._sub_bits or len(other._counts) != len(self._counts):
            raise ValueError("cannot merge histograms of different precision")
        for i, c in enumerate(other._counts):
            if c:
                self._counts[i] += c
        if other.count:
            self.min = other.min if self.count == 0 else min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def reset(self) -> None:
        for i in range(len(self._counts)):
            self._counts[i] = 0
        self.count = self.total = self.min = self.max = 0

    def summary(self) -> Summary:
        p50, p95, p99, p999 = self.percentiles()
        mean = self.total / self.count if self.count else 0.0
        return Summary(self.count, self.min, self.max, mean, p50, p95, p99, p999)
