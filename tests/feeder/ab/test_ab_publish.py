"""A/B on the sending side: one framing, two submissions; line B's layout; split transports."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from feeder.publish.ab import SplitTransport, both_lines, line_b, open_lines
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import SendPath
from feeder.publish.transport import Transport, TransportError
from feeder.recovery.buffer import RetransmitStore
from feeder.wire import PacketHeader, PacketKind, decode_header
from tests.feeder.fakes import MemoryTransport
from tests.feeder.test_publish import Clock, decoded, publish

A = ChannelMap.multi("239.1.2.1", 40001, 3)


def test_line_b_mirrors_line_a_layout() -> None:
    b = line_b(A, "239.9.0.1", 40001)
    assert b.destinations == (("239.9.0.1", 40001), ("239.9.0.2", 40002), ("239.9.0.3", 40003))
    single = ChannelMap.single("239.1.2.1", 40001, 3)
    assert line_b(single, "239.9.0.1", 40001).destinations == (("239.9.0.1", 40001),)
    assert both_lines(A, b) == A.destinations + b.destinations


def test_line_b_must_not_reuse_line_a() -> None:
    with pytest.raises(ValueError, match="line A uses too"):
        line_b(A, "239.1.2.3", 40003)
    with pytest.raises(ValueError, match="not a multicast address"):
        line_b(A, "10.0.0.1", 40001)


def test_every_packet_goes_to_both_lines_with_the_same_bytes() -> None:
    b = line_b(A, "239.9.0.1", 41001)
    t = MemoryTransport(capacity=10_000)
    path = SendPath()
    path.attach(t)
    clock = Clock()
    pub = Publisher(path, A, line_b=b, clock=clock, heartbeat_ns=10)
    publish(pub, 500, channel=2)
    pub.poll()
    clock.t += 100
    pub.poll()  # heartbeats on every channel
    assert pub.close()
    by_dest: dict[int, list[bytes]] = {}
    for data, dest in t.sent:
        by_dest.setdefault(dest, []).append(data)
    # Channel 2 is destination 1 on line A and 3 + 1 on line B.
    assert by_dest[1] == by_dest[4]
    assert by_dest[0] == by_dest[3] and by_dest[2] == by_dest[5]
    headers = [decode_header(d) for d in by_dest[4]]
    kinds = [h.kind for h in headers if isinstance(h, PacketHeader)]
    assert len(kinds) == len(headers)
    assert kinds.count(PacketKind.DATA) == pub.stats()[1].packets
    assert PacketKind.HEARTBEAT in kinds and kinds[-1] is PacketKind.END_OF_SESSION
    assert sum(p.header.msg_count for p in decoded([(d, 4) for d in by_dest[4]])) == 500


def test_sent_packets_are_kept_for_re_requests() -> None:
    store = RetransmitStore.for_channels(A.channels, 64, 1400)
    t = MemoryTransport(capacity=10_000)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, A, retransmit=store)
    publish(pub, 300, channel=1)
    pub.poll()
    data = [d for d, dest in t.sent if dest == 0]
    assert store[1].find(1, 300, 64).packets == data
    assert store[1].next_seq == 301 and len(store[2]) == 0


def test_a_line_b_with_other_channels_is_refused() -> None:
    with pytest.raises(ValueError, match="same channels"):
        Publisher(SendPath(), A, line_b=ChannelMap.multi("239.9.0.1", 40001, 2))


def test_split_transport_routes_each_line_to_its_own_transport() -> None:
    ta, tb = MemoryTransport("a"), MemoryTransport("b")
    split = SplitTransport(ta, tb, 3)
    for dest in range(6):
        assert split.offer(bytes([dest]), dest)
    assert split.pending == 6
    assert split.flush() == 6
    assert ta.sent == [(b"\x00", 0), (b"\x01", 1), (b"\x02", 2)]
    assert tb.sent == [(b"\x03", 0), (b"\x04", 1), (b"\x05", 2)]
    assert split.name == "a+b"


def test_split_transport_hands_back_unsent_with_line_b_indexes() -> None:
    ta, tb = MemoryTransport("udp", fail_after=0), MemoryTransport("udp")
    split = SplitTransport(ta, tb, 2)
    split.offer(b"a", 1)
    split.offer(b"b", 3)
    with pytest.raises(TransportError):
        split.flush()
    assert split.take_unsent() == [(b"a", 1), (b"b", 3)]
    split.close()
    assert ta.closed and tb.closed


def test_open_lines_uses_one_transport_per_interface() -> None:
    opened: list[tuple[str, tuple[tuple[str, int], ...]]] = []

    def open_one(iface: str, dests: Sequence[tuple[str, int]]) -> Transport:
        opened.append((iface, tuple(dests)))
        return MemoryTransport(iface)

    b = line_b(A, "239.9.0.1", 40001)
    one = open_lines(open_one, "10.0.0.1", A, b, None)
    assert isinstance(one, MemoryTransport) and opened == [("10.0.0.1", both_lines(A, b))]
    opened.clear()
    two = open_lines(open_one, "10.0.0.1", A, b, "10.0.1.1")
    assert isinstance(two, SplitTransport)
    assert opened == [("10.0.0.1", A.destinations), ("10.0.1.1", b.destinations)]
