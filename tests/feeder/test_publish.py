"""Publisher framing and the send path: sequences, heartbeats, late sender, fallback."""

from __future__ import annotations

import pytest

from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import BacklogFull, Candidate, SendPath
from feeder.publish.transport import TransportUnavailable
from feeder.wire import BID, BookAction, DeltaFlags, Packet, PacketKind, Side, decode_packet
from tests.feeder.fakes import MemoryTransport

CHANNELS = ChannelMap.multi("239.1.2.1", 40001, 2)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000_000

    def __call__(self) -> int:
        return self.t


def publish(pub: Publisher, n: int, channel: int = 1) -> None:
    for i in range(n):
        if i % 3 == 0:
            pub.trade(channel, 7, Side.BUY, 0, 100 + i, 5, i, 1, 2)
        else:
            pub.book_delta(
                channel, 7, BID, BookAction.UPDATE, DeltaFlags.LAST_IN_EVENT, 100 + i, 5, i, 1, 2
            )


def decoded(sent: list[tuple[bytes, int]]) -> list[Packet]:
    out = []
    for data, _ in sent:
        p = decode_packet(data)
        assert isinstance(p, Packet), p
        out.append(p)
    return out


def assert_contiguous(packets: list[Packet], channel: int, total: int) -> None:
    seq = 1
    got = 0
    for p in packets:
        h = p.header
        if h.channel_id != channel or h.kind is not PacketKind.DATA:
            continue
        assert h.first_seq == seq, f"expected seq {seq}, packet starts at {h.first_seq}"
        seq += h.msg_count
        got += len(p.messages)
    assert got == total


def test_sequences_contiguous_and_packets_fill_to_size() -> None:
    t = MemoryTransport(capacity=1000)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, CHANNELS, max_packet=1400)
    publish(pub, 1000)
    pub.poll()
    packets = decoded(t.sent)
    assert_contiguous(packets, 1, 1000)
    assert all(len(d) <= 1400 for d, _ in t.sent)
    # Size-bound flushes: all packets but the last are nearly full.
    assert all(len(d) > 1400 - 64 for d, _ in t.sent[:-1])
    assert {dest for _, dest in t.sent} == {0}


def test_heartbeat_on_idle_channel_carries_next_sequence() -> None:
    clock = Clock()
    t = MemoryTransport(capacity=100)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, CHANNELS, heartbeat_ns=1_000_000, clock=clock)
    publish(pub, 5, channel=1)
    pub.poll()
    t.sent.clear()
    clock.t += 2_000_000
    pub.poll()
    hbs = [p.header for p in decoded(t.sent)]
    assert {(h.channel_id, h.kind, h.first_seq) for h in hbs} == {
        (1, PacketKind.HEARTBEAT, 6),
        (2, PacketKind.HEARTBEAT, 1),
    }
    t.sent.clear()
    pub.poll()  # not idle long enough again
    assert t.sent == []


def test_close_sends_end_of_session_after_everything() -> None:
    t = MemoryTransport(capacity=100)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, CHANNELS)
    publish(pub, 10, channel=2)
    assert pub.close()
    hdrs = [p.header for p in decoded(t.sent)]
    assert hdrs[-2:] == sorted(hdrs[-2:], key=lambda h: h.channel_id)
    eos = {h.channel_id: h.first_seq for h in hdrs if h.kind is PacketKind.END_OF_SESSION}
    assert eos == {1: 1, 2: 11}


def test_late_sender_gets_everything_in_order() -> None:
    """Sources start before any transport exists: nothing is dropped, order is kept."""
    path = SendPath()
    pub = Publisher(path, CHANNELS)
    publish(pub, 500)
    pub.poll()
    assert path.name == "none" and path.backlog > 0
    assert path.stats.queued_without_sender == path.backlog
    late = MemoryTransport("late", capacity=16)
    path.attach(late)
    publish(pub, 500)
    pub.poll()
    assert path.backlog == 0
    assert_contiguous(decoded(late.sent), 1, 1000)


def test_failover_resends_what_the_failed_transport_never_sent() -> None:
    first = MemoryTransport("first", capacity=4, fail_after=3)
    second = MemoryTransport("second", capacity=4)
    path = SendPath([Candidate("first", lambda: first), Candidate("second", lambda: second)])
    path.start()
    pub = Publisher(path, CHANNELS, max_packet=256)
    publish(pub, 300)
    pub.poll()
    assert path.name == "second" and path.stats.fallbacks == 1 and first.closed
    # Every message arrives exactly once across the two transports, in sequence order.
    assert_contiguous(decoded(first.sent + second.sent), 1, 300)
    assert any("first failed" in e for e in path.stats.events)


def test_unavailable_candidates_are_reported_and_skipped() -> None:
    def broken() -> MemoryTransport:
        raise TransportUnavailable("zero-copy not supported by veth")

    ok = MemoryTransport("ok")
    path = SendPath([Candidate("xdp", broken), Candidate("ok", lambda: ok)])
    assert path.start() is ok
    assert any("xdp unavailable: zero-copy not supported" in e for e in path.stats.events)


def test_no_candidate_at_all_is_loud_and_queues() -> None:
    path = SendPath([])
    assert path.start() is None
    assert any("no transport available" in e for e in path.stats.events)


def test_backlog_limit_is_backpressure_not_loss() -> None:
    path = SendPath(max_backlog=3)
    pub = Publisher(path, CHANNELS, max_packet=256)
    with pytest.raises(BacklogFull):
        publish(pub, 1000)
    assert path.backlog == 3


def test_stalled_transport_keeps_packets_queued() -> None:
    t = MemoryTransport(capacity=2, stalled=True)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, CHANNELS, max_packet=256)
    publish(pub, 100)
    pub.poll()
    assert t.sent == [] and t.pending == 2 and path.backlog > 0
    t.stalled = False
    assert path.drain(timeout_s=1)
    assert_contiguous(decoded(t.sent), 1, 100)


def test_channel_map_multi_and_single() -> None:
    m = ChannelMap.multi("239.1.1.254", 5000, 3)
    assert m.destinations == (("239.1.1.254", 5000), ("239.1.1.255", 5001), ("239.1.2.0", 5002))
    s = ChannelMap.single("239.1.1.1", 5000, 3)
    assert s.destination(3) == ("239.1.1.1", 5000) and s.dest_of == (0, 0, 0)
    with pytest.raises(ValueError, match="multicast"):
        ChannelMap.multi("10.0.0.1", 5000, 2)
    with pytest.raises(ValueError):
        ChannelMap.multi("239.1.1.1", 65535, 2)
