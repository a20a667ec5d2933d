"""The retransmission buffer: bounded, original bytes, lookups by sequence."""

from __future__ import annotations

import pytest

from feeder.recovery.buffer import RetransmitBuffer, RetransmitStore
from feeder.wire import Packet, PacketEncoder, decode_packet


def packet(first: int, count: int) -> bytes:
    enc = PacketEncoder(42, 1)
    enc.begin(bytearray(1400), first)
    for i in range(count):
        enc.add_trade(1, 1, 0, first + i, 1, first + i, 0, 0)
    return bytes(enc.finish(first))


def filled(capacity: int, sizes: list[int]) -> tuple[RetransmitBuffer, list[bytes]]:
    buf = RetransmitBuffer(capacity, 1400)
    sent, seq = [], 1
    for n in sizes:
        p = packet(seq, n)
        buf.add(seq, n, p)
        sent.append(p)
        seq += n
    return buf, sent


def test_find_returns_the_original_packets_covering_a_range() -> None:
    buf, sent = filled(8, [3, 5, 2, 4])  # seq 1-3, 4-8, 9-10, 11-14
    found = buf.find(6, 4, 64)  # 6..9: inside packets 2 and 3
    assert found.packets == sent[1:3]
    assert (found.first, found.count) == (4, 7)
    assert buf.find(1, 1, 64).packets == [sent[0]]
    assert buf.find(14, 100, 64).packets == [sent[3]]
    assert buf.oldest_seq == 1 and buf.next_seq == 15


def test_answers_are_capped_in_packets() -> None:
    buf, sent = filled(8, [2] * 6)
    found = buf.find(1, 12, 4)
    assert found.packets == sent[:4] and (found.first, found.count) == (1, 8)


def test_oldest_packets_are_overwritten_and_reported_missing() -> None:
    buf, sent = filled(3, [2] * 5)  # holds seq 5..10 only
    assert len(buf) == 3 and buf.oldest_seq == 5
    assert buf.find(1, 4, 64).packets == []  # wholly older than the buffer
    partial = buf.find(3, 4, 64)  # 3..6: 3-4 are gone, 5-6 held
    assert partial.packets == [sent[2]] and partial.first == 5
    assert buf.find(11, 5, 64).packets == []  # not sent yet
    for p in buf.find(5, 6, 64).packets:
        assert isinstance(decode_packet(p), Packet)


def test_a_jump_in_sequence_starts_the_buffer_over() -> None:
    buf, _ = filled(8, [2, 2])
    buf.add(100, 1, packet(100, 1))
    assert buf.resets == 1 and buf.oldest_seq == 100 and len(buf) == 1
    buf.add(101, 1, b"x" * 1401)  # bigger than a slot: not kept, nothing inconsistent held
    assert buf.resets == 2 and len(buf) == 0 and buf.find(100, 2, 64).packets == []


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RetransmitBuffer(0, 1400)
    with pytest.raises(ValueError, match="slot size"):
        RetransmitBuffer(8, 10)


def test_store_has_one_bounded_buffer_per_channel() -> None:
    store = RetransmitStore.for_channels([1, 2, 3], 16, 1400)
    assert sorted(store) == [1, 2, 3]
    assert store.memory_bytes() == 3 * 16 * 1400
