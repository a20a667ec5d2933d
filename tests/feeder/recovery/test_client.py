"""The receiver's re-request logic against a real UDP socket on loopback standing in for the
feeder: what is asked, paced, retried, given up, and how replies are read."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.listen.tracker import SequenceTracker
from feeder.recovery.client import ClientSettings, RecoveryClient, intersect, merge, subtract
from feeder.recovery.protocol import (
    Reply,
    ReplyStatus,
    Request,
    decode_request,
    encode_reply,
)
from tests.feeder.recovery.test_buffer import packet

SESSION = 5


class Clock:
    def __init__(self) -> None:
        self.t = 10.0

    def __call__(self) -> float:
        return self.t


class Feeder:
    """The feeder's end: reads requests, sends whatever the test wants back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(1.0)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.peer: tuple[str, int] | None = None

    def requests(self, wait_s: float = 0.05) -> list[Request]:
        """What arrived: waits up to ``wait_s`` for the first, then takes what is queued."""
        out = []
        self.sock.settimeout(wait_s)
        try:
            while True:
                data, self.peer = self.sock.recvfrom(100)
                req = decode_request(data)
                assert isinstance(req, Request)
                out.append(req)
                self.sock.settimeout(0.001)
        except TimeoutError:
            return out

    def send(self, data: bytes) -> None:
        assert self.peer is not None
        self.sock.sendto(data, self.peer)


@pytest.fixture
def feeder() -> Iterator[Feeder]:
    f = Feeder()
    try:
        yield f
    finally:
        f.sock.close()


@pytest.fixture
def client_sock() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    try:
        yield s
    finally:
        s.close()


def tracker_with_holes(*holes: tuple[int, int], upto: int = 100) -> SequenceTracker:
    """A tracker that saw 1..upto-1 except the given [start, end) holes."""
    t = SequenceTracker()
    seq = 1
    for start, end in sorted(holes):
        if start > seq:
            t.on_data(SESSION, 1, seq, start - seq)
        seq = end
    t.on_data(SESSION, 1, seq, upto - seq)
    return t


def reply(
    req: Request,
    status: ReplyStatus,
    served_first: int = 0,
    served: int = 0,
    oldest: int = 1,
    session: int = SESSION,
) -> bytes:
    return encode_reply(
        Reply(
            status,
            req.channel_id,
            session,
            req.first_seq,
            req.count,
            req.request_id,
            served_first,
            served,
            1 if served else 0,
            oldest,
            100,
        )
    )


def test_range_helpers() -> None:
    assert subtract([(0, 10)], [(2, 4), (6, 8)]) == [(0, 2), (4, 6), (8, 10)]
    assert subtract([(0, 10)], [(0, 10)]) == []
    assert subtract([[0, 3], [5, 9], [12, 13]], [(2, 6), (8, 20)]) == [(0, 2), (6, 8)]
    assert subtract([(5, 9)], []) == [(5, 9)]
    assert merge([(5, 7), (0, 2), (2, 3), (6, 9)]) == [(0, 3), (5, 9)]
    assert intersect(5, 15, [[0, 7], [9, 10], [14, 20]]) == [(5, 7), (9, 10), (14, 15)]


@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)), max_size=8),
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)), max_size=8),
)
def test_subtract_is_set_difference(raw: list[tuple[int, int]], cut: list[tuple[int, int]]) -> None:
    ranges = merge((s, s + n) for s, n in raw)
    taken = merge((s, s + n) for s, n in cut)
    got = subtract(ranges, taken)
    covered = {x for s, e in ranges for x in range(s, e)}
    removed = {x for s, e in taken for x in range(s, e)}
    assert {x for s, e in got for x in range(s, e)} == covered - removed
    assert all(a[1] < b[0] for a, b in itertools.pairwise(got))  # sorted, apart


def test_each_missing_range_is_asked_once_then_filled(
    feeder: Feeder, client_sock: socket.socket
) -> None:
    t = tracker_with_holes((10, 13), (40, 41))
    clock = Clock()
    c = RecoveryClient(client_sock, feeder.addr, clock=clock)
    c.tick(t)
    c.tick(t)  # in flight: not asked again
    reqs = feeder.requests()
    assert [(r.channel_id, r.session_id, r.first_seq, r.count) for r in reqs] == [
        (1, SESSION, 10, 3),
        (1, SESSION, 40, 1),
    ]
    assert c.busy(t)
    # The feeder answers the first with the packet, then the reply.
    feeder.send(packet(10, 3))
    feeder.send(reply(reqs[0], ReplyStatus.SERVED, 10, 3))
    filled: list[int] = []

    def deliver(data: memoryview) -> int:
        filled.append(len(data))
        return t.on_data(SESSION, 1, 10, 3)

    deadline = 50
    while c.replies < 1 and deadline:
        c.receive(t, deliver)
        deadline -= 1
        feeder.sock.settimeout(0.01)
    assert c.recovered_messages == 3 and c.recovered_packets == 1 and len(filled) == 1
    assert t.channels[1].missing == [[40, 41]]
    s = c.summary(t)
    assert s["requests"] == 2 and s["pending_messages"] == 1 and s["unrecoverable_messages"] == 0


def test_unanswered_requests_are_retried_with_backoff_then_given_up(
    feeder: Feeder, client_sock: socket.socket
) -> None:
    t = tracker_with_holes((10, 12))
    clock = Clock()
    c = RecoveryClient(client_sock, feeder.addr, ClientSettings(timeout_s=0.1, retries=3), clock)
    sent_at = []
    for _ in range(100):
        c.tick(t)
        if feeder.requests(wait_s=0.005):
            sent_at.append(round(clock.t - 10.0, 2))
        clock.t += 0.05
    assert sent_at == [0.0, 0.1, 0.3]  # timeouts 0.1, 0.2, then 0.4 and no fourth try
    assert c.retries == 2 and c.timeouts == 3
    assert c.unrecoverable == {"no_answer": 2}
    assert not c.busy(t)  # nothing left that could still come
    assert t.channels[1].missing == [[10, 12]]  # still missing: reported, not hidden


def test_older_than_the_buffer_is_given_up_at_once(
    feeder: Feeder, client_sock: socket.socket
) -> None:
    t = tracker_with_holes((5, 8), (50, 52))
    c = RecoveryClient(client_sock, feeder.addr, clock=Clock())
    c.tick(t)
    reqs = feeder.requests()
    feeder.send(reply(reqs[0], ReplyStatus.NOT_AVAILABLE, oldest=30))
    feeder.send(reply(reqs[1], ReplyStatus.SERVED, 51, 1, oldest=51))  # 50 is gone, 51 served
    for _ in range(50):
        c.receive(t, lambda data: 0)
        if c.replies == 2:
            break
        feeder.sock.settimeout(0.01)
    assert c.unrecoverable == {"older_than_buffer": 4}
    assert c.outstanding(t.channels[1]) == [(51, 52)]  # 51 may still come (its packet)


def test_requests_are_paced(feeder: Feeder, client_sock: socket.socket) -> None:
    t = tracker_with_holes(*[(10 * k, 10 * k + 1) for k in range(1, 9)])
    clock = Clock()
    c = RecoveryClient(
        client_sock,
        feeder.addr,
        ClientSettings(timeout_s=10, rate=10, burst=3, max_in_flight=5),
        clock,
    )
    c.tick(t)
    assert len(feeder.requests()) == 3  # the burst
    clock.t += 0.11
    c.tick(t)
    assert len(feeder.requests()) == 1  # one token per 0.1 s
    clock.t += 1.0
    c.tick(t)
    assert len(feeder.requests()) == 1  # in-flight cap (5) reached


def test_replies_from_anyone_else_are_ignored(feeder: Feeder, client_sock: socket.socket) -> None:
    t = tracker_with_holes((10, 13))
    c = RecoveryClient(client_sock, feeder.addr, clock=Clock())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.sendto(packet(10, 3), client_sock.getsockname())
    for _ in range(50):
        if c.receive(t, lambda data: 99):
            break
        feeder.sock.settimeout(0.01)
    assert c.foreign == 1 and c.recovered_messages == 0
