"""PacketRing: preallocated slots handed out in FIFO order and reused after release."""

from __future__ import annotations

import pytest

from feeder.wire import (
    MIN_PACKET_SIZE,
    Packet,
    PacketEncoder,
    PacketRing,
    RingFull,
    Status,
    decode_packet,
)


def fill(encoder: PacketEncoder, ring: PacketRing, seq: int, detail: int) -> memoryview:
    encoder.begin(ring.acquire(), seq)
    encoder.add(Status(0, 1, 1, detail, 0))
    return encoder.finish(0)


def detail_of(packet: memoryview) -> int:
    decoded = decode_packet(packet)
    assert isinstance(decoded, Packet)
    status = decoded.messages[0]
    assert isinstance(status, Status)
    return status.detail


def test_slots_are_distinct_views_into_one_preallocated_block() -> None:
    ring = PacketRing(slots=4, slot_size=1400)
    views = [ring.acquire() for _ in range(4)]
    assert all(len(view) == 1400 and not view.readonly for view in views)
    assert len({id(view.obj) for view in views}) == 1  # one bytearray behind all slots
    for index, view in enumerate(views):
        view[:] = bytes([index]) * 1400
    assert [view[0] for view in views] == [0, 1, 2, 3]  # no overlap
    assert (ring.in_use, ring.free) == (4, 0)


def test_full_ring_refuses_until_packets_are_released() -> None:
    ring = PacketRing(slots=2)
    ring.acquire()
    ring.acquire()
    with pytest.raises(RingFull, match="all 2 packet buffers are in use"):
        ring.acquire()
    ring.release(1)
    ring.acquire()
    assert ring.in_use == 2


def test_batch_of_packets_stays_intact_until_released_then_slots_are_reused() -> None:
    ring = PacketRing(slots=3)
    encoder = PacketEncoder(1, 1)
    batch = [fill(encoder, ring, seq, detail=seq) for seq in (1, 2, 3)]
    assert [detail_of(packet) for packet in batch] == [1, 2, 3]  # a sendmmsg batch

    # The sender sent the first two; their slots are reused, in order, for new packets.
    ring.release(2)
    newer = [fill(encoder, ring, seq, detail=seq) for seq in (4, 5)]
    assert [detail_of(packet) for packet in newer] == [4, 5]
    assert [detail_of(packet) for packet in batch] == [4, 5, 3]  # same memory, rewritten
    assert newer[0].obj is batch[0].obj
    with pytest.raises(RingFull):
        ring.acquire()  # slot 3 still holds an unsent packet


def test_wraps_around_many_times() -> None:
    ring = PacketRing(slots=3, slot_size=MIN_PACKET_SIZE)
    encoder = PacketEncoder(1, 1, max_packet_size=MIN_PACKET_SIZE)
    pending: list[memoryview] = []
    seen = []
    for seq in range(1, 50):
        if ring.free == 0:
            seen.append(detail_of(pending.pop(0)))
            ring.release(1)
        pending.append(fill(encoder, ring, seq, detail=seq))
    seen.extend(detail_of(packet) for packet in pending)
    assert seen == list(range(1, 50))


@pytest.mark.parametrize("count", [-1, 2])
def test_release_more_than_in_use_is_refused(count: int) -> None:
    ring = PacketRing(slots=4)
    ring.acquire()
    with pytest.raises(ValueError, match="only 1 slots are in use"):
        ring.release(count)
    assert ring.in_use == 1


@pytest.mark.parametrize(
    ("slots", "slot_size", "message"),
    [(0, 1400, "slots=0"), (1, 100, "slot_size=100"), (1, 70000, "slot_size=70000")],
)
def test_bad_ring_configuration(slots: int, slot_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PacketRing(slots, slot_size)


def test_encoder_refuses_a_slot_smaller_than_its_packet_size() -> None:
    ring = PacketRing(slots=1, slot_size=MIN_PACKET_SIZE)
    with pytest.raises(ValueError, match="needs at least 1400"):
        PacketEncoder(1, 1).begin(ring.acquire(), 1)
