from __future__ import annotations

import pytest

from feeder.runtime.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_paced() -> None:
    c = Clock()
    b = TokenBucket(rate=2.0, burst=3, clock=c)
    assert [b.try_take() for _ in range(4)] == [True, True, True, False]
    assert b.delay() == pytest.approx(0.5)
    c.t += 0.5
    assert b.try_take() and not b.try_take()
    c.t += 100  # long idle: saved tokens capped at the burst
    assert sum(b.try_take() for _ in range(10)) == 3


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)
