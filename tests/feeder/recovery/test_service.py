"""The feeder's re-request decisions: what is served, refused, rate-limited, never answered."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from feeder.recovery.buffer import RetransmitStore
from feeder.recovery.protocol import (
    Reply,
    ReplyStatus,
    decode_reply,
    encode_request,
)
from feeder.recovery.server import RecoveryLimits, RecoveryService
from tests.feeder.recovery.test_buffer import packet

SESSION = 77
ME = ("10.0.0.2", 40000)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def service(limits: RecoveryLimits | None = None) -> tuple[RecoveryService, list[bytes], Clock]:
    store = RetransmitStore.for_channels([1, 2], 4, 1400)
    sent, seq = [], 1
    for _ in range(6):  # seq 1..18 sent, 7..18 still held (4 packets of 3)
        p = packet(seq, 3)
        store[1].add(seq, 3, p)
        sent.append(p)
        seq += 3
    clock = Clock()
    return RecoveryService(store, SESSION, limits, clock), sent, clock


def ask(
    svc: RecoveryService,
    first: int,
    count: int,
    *,
    channel: int = 1,
    session: int = SESSION,
    rid: int = 1,
    source: tuple[str, int] = ME,
) -> tuple[list[bytes], Reply | None]:
    out = svc.handle(encode_request(channel, session, first, count, rid), source)
    if not out:
        return [], None
    reply = decode_reply(out[-1])
    assert isinstance(reply, Reply)
    assert reply.request_id == rid
    return out[:-1], reply


def test_served_with_the_original_bytes_then_a_reply() -> None:
    svc, sent, _ = service()
    packets, reply = ask(svc, 8, 5)  # 8..12: packets 7-9, 10-12
    assert packets == sent[2:4]
    assert reply is not None and reply.status is ReplyStatus.SERVED
    assert (reply.served_first, reply.served_count, reply.served_packets) == (7, 6, 2)
    assert (reply.oldest_seq, reply.next_seq, reply.session_id) == (7, 19, SESSION)
    c = svc.counters
    assert (c.requests, c.served, c.served_packets, c.served_messages) == (1, 1, 2, 6)


def test_older_than_the_buffer_is_not_available() -> None:
    svc, sent, _ = service()
    packets, reply = ask(svc, 1, 6)
    assert packets == [] and reply is not None
    assert reply.status is ReplyStatus.NOT_AVAILABLE and reply.oldest_seq == 7
    packets, reply = ask(svc, 4, 6)  # 4..9: 4-6 gone, 7-9 held
    assert packets == [sent[2]] and reply is not None and reply.served_first == 7
    assert svc.counters.not_available == 1


def status(
    svc: RecoveryService, first: int, count: int, *, channel: int = 1, session: int = SESSION
) -> ReplyStatus:
    reply = ask(svc, first, count, channel=channel, session=session)[1]
    assert reply is not None
    return reply.status


def test_wrong_session_unknown_channel_and_empty_ranges_are_refused() -> None:
    svc, _, _ = service()
    assert status(svc, 8, 1, session=SESSION - 1) is ReplyStatus.UNKNOWN_SESSION
    assert status(svc, 8, 1, channel=9) is ReplyStatus.BAD_REQUEST
    assert status(svc, 8, 0) is ReplyStatus.BAD_REQUEST
    assert status(svc, 0, 5) is ReplyStatus.BAD_REQUEST
    c = svc.counters
    assert (c.refused_session, c.refused_range, c.served) == (1, 3, 0)


def test_answers_are_capped_in_packets() -> None:
    svc, sent, _ = service(RecoveryLimits(max_packets=1))
    packets, reply = ask(svc, 7, 12)
    assert packets == [sent[2]] and reply is not None and reply.served_count == 3


def test_a_flooding_requester_is_cut_off_and_others_still_served() -> None:
    limits = RecoveryLimits(requester_rate=10, requester_burst=5, total_rate=100, total_burst=50)
    svc, _, clock = service(limits)
    answered = sum(bool(ask(svc, 8, 1, rid=i)[1]) for i in range(200))
    assert answered == 5  # the burst, then nothing: refused requests get no answer at all
    assert svc.counters.refused_rate == 195
    other = ("10.0.0.3", 40000)
    assert ask(svc, 8, 1, source=other)[1] is not None
    clock.t += 1.0  # ten tokens back for the flooder
    assert sum(bool(ask(svc, 8, 1, rid=i)[1]) for i in range(50)) == 5  # burst cap
    assert svc.counters.requests == 251


def test_the_global_budget_holds_against_many_requesters() -> None:
    limits = RecoveryLimits(requester_rate=10, requester_burst=5, total_rate=10, total_burst=20)
    svc, _, _ = service(limits)
    answered = sum(
        bool(ask(svc, 8, 1, source=(f"10.0.{i // 250}.{i % 250}", 1))[1]) for i in range(100)
    )
    assert answered == 20
    assert svc.counters.refused_rate == 80


def test_requester_buckets_are_bounded() -> None:
    svc, _, _ = service(RecoveryLimits(max_requesters=8, total_burst=10_000))
    for i in range(100):
        ask(svc, 8, 1, source=(f"10.1.0.{i}", 1))
    assert len(svc._requesters) == 8


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_garbage_is_counted_never_answered_never_raises(data: bytes) -> None:
    svc, _, _ = service()
    out = svc.handle(data, ME)
    c = svc.counters
    if c.requests == 0:
        assert out == [] and sum(c.malformed.values()) == 1
