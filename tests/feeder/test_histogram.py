from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.metrics.histogram import Histogram


def exact(values: list[int], pct: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * pct / 100)) - 1]


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
def test_percentiles_within_relative_error(values: list[int]) -> None:
    h = Histogram(sub_bits=8)
    h.record_many(values)
    for pct in (0.1, 50, 95, 99, 99.9, 100):
        want, got = exact(values, pct), h.percentile(pct)
        # Bucket top is never below the true value and at most 1/128 above it.
        assert want <= got <= max(want, want + want / 128 + 1)
    assert h.min == min(values) and h.max == max(values) and h.count == len(values)


def test_small_values_are_exact() -> None:
    h = Histogram()
    h.record_many(range(256))
    assert h.percentile(50) == 127 and h.percentile(100) == 255


def test_negative_counts_as_zero_and_empty_is_zero() -> None:
    h = Histogram()
    assert h.percentile(99) == 0 and h.summary().count == 0
    h.record(-5)
    assert h.min == 0 and h.max == 0


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(7)
    a, b, both = Histogram(), Histogram(), Histogram()
    for _ in range(5000):
        v = rng.randint(0, 10**9)
        (a if rng.random() < 0.5 else b).record(v)
        both.record(v)
    a.merge(b)
    assert a.percentiles() == both.percentiles()
    assert (a.count, a.min, a.max, a.total) == (both.count, both.min, both.max, both.total)
    with pytest.raises(ValueError):
        a.merge(Histogram(sub_bits=4))


def test_summary_scaled_to_microseconds() -> None:
    h = Histogram()
    h.record_many([1_000, 2_000, 3_000])
    s = h.summary().scaled(1_000)
    assert s["p50"] == pytest.approx(2.0, rel=0.01) and s["max"] == 3.0 and s["count"] == 3
