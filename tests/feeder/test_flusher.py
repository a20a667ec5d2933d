"""When the runtime sends: once the loop is idle, or mid-burst once the oldest frame is old."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from feeder.runtime.app import Flusher


class CountingPublisher:
    def __init__(self) -> None:
        self.polls = 0

    def poll(self) -> None:
        self.polls += 1


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def turn(loop: asyncio.AbstractEventLoop) -> None:
    """Let the loop run what is ready (one idle turn)."""
    loop.run_until_complete(asyncio.sleep(0))


def make(
    loop: asyncio.AbstractEventLoop, max_delay_ns: int
) -> tuple[Flusher, CountingPublisher, Clock]:
    pub, clock = CountingPublisher(), Clock()
    return Flusher(pub, loop, max_delay_ns, clock), pub, clock  # type: ignore[arg-type]


def test_a_lone_frame_goes_out_on_the_next_loop_turn(loop: asyncio.AbstractEventLoop) -> None:
    f, pub, clock = make(loop, 50_000)
    f.request(clock.ns)
    clock.ns += 10_000
    f.request(clock.ns)  # within the bound: batched with the first
    assert pub.polls == 0
    turn(loop)
    assert pub.polls == 1 and f.bounded == 0


def test_a_burst_is_cut_when_its_oldest_frame_reaches_the_bound(
    loop: asyncio.AbstractEventLoop,
) -> None:
    f, pub, clock = make(loop, 50_000)
    for _ in range(5):  # the read loop takes 5 buffered frames, 20 µs each, without yielding
        read = clock.ns
        clock.ns += 20_000
        f.request(read)
    # ages when handled: 20, 40, 60 (send: the first three go), then 20, 40 (the last two wait)
    assert pub.polls == 1 and f.bounded == 1
    turn(loop)
    assert pub.polls == 2  # the idle turn sends the rest


def test_the_bound_counts_from_the_first_frame_after_a_send(
    loop: asyncio.AbstractEventLoop,
) -> None:
    f, pub, clock = make(loop, 50_000)
    f.request(clock.ns - 60_000)  # read 60 µs ago: over the bound at once
    assert pub.polls == 1
    f.request(clock.ns)  # read now: the previous frame's age does not carry over
    assert pub.polls == 1
    clock.ns += 49_999
    f.request(clock.ns - 1)
    assert pub.polls == 1
    clock.ns += 1
    f.request(clock.ns)
    assert pub.polls == 2


def test_zero_bound_sends_after_every_frame(loop: asyncio.AbstractEventLoop) -> None:
    f, pub, clock = make(loop, 0)
    for _ in range(3):
        f.request(clock.ns)
    assert pub.polls == 3 and f.bounded == 3


def test_idle_work_runs_after_the_idle_turns_send_only(loop: asyncio.AbstractEventLoop) -> None:
    pub, clock = CountingPublisher(), Clock()
    seen: list[int] = []
    f = Flusher(pub, loop, 0, clock, idle=lambda: seen.append(pub.polls))  # type: ignore[arg-type]
    f.request(clock.ns)  # bounded poll mid-burst: no idle work there
    assert pub.polls == 1 and seen == []
    turn(loop)
    assert seen == [2]  # after the idle turn's poll
