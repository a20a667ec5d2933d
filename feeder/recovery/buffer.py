"""The retransmission buffer: the last N data packets of a channel, exactly as they were sent.

Memory is bounded and allocated once: ``capacity`` slots of ``slot_size`` bytes in one
bytearray, used as a ring (the oldest packet is overwritten). Adding a packet is one slice copy
plus three list stores, cheap enough for the publisher's hot path. Packets of a channel carry
contiguous sequence ranges, so a lookup is a binary search over the slots' first sequences.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from feeder.net import validate
from feeder.net.memory import prefault


@dataclass(frozen=True)
class Found:
    """What the buffer holds of a requested range: whole packets, in order."""

    packets: list[bytes]
    first: int  # sequence of the first message in ``packets`` (0 when none)
    count: int  # messages in ``packets``


class RetransmitBuffer:
    def __init__(self, capacity: int, slot_size: int) -> None:
        validate.int_in(capacity, 1, 1 << 20, "retransmission buffer capacity (packets)")
        validate.int_in(slot_size, 40, 65507, "retransmission buffer slot size (bytes)")
        self.capacity = capacity
        self.slot_size = slot_size
        self._memory = bytearray(capacity * slot_size)
        prefault(self._memory)  # written on every send: no first-touch faults then
        self._view = memoryview(self._memory)
        self._first = [0] * capacity
        self._count = [0] * capacity
        self._length = [0] * capacity
        self._head = 0  # slot of the oldest packet
        self._size = 0
        self.next_seq = 0  # one past the newest message held (0: nothing added yet)
        self.resets = 0

    def __len__(self) -> int:
        return self._size

    @property
    def oldest_seq(self) -> int:
        """First sequence still held (0 when empty)."""
        return self._first[self._head] if self._size else 0

    def clear(self) -> None:
        self._head = self._size = 0
        self.next_seq = 0

    def add(self, first: int, count: int, packet: bytes | bytearray | memoryview) -> None:
        """Keep a copy of one sent data packet carrying ``first .. first + count - 1``."""
        n = len(packet)
        if n > self.slot_size or (self._size and first != self.next_seq):
            # Cannot keep it (or the stream jumped): start over rather than hold a range with
            # a hole in it, which would make answers lie.
            self.resets += 1
            self.clear()
            if n > self.slot_size:
                return
        cap = self.capacity
        if self._size < cap:
            slot = self._head + self._size
            if slot >= cap:
                slot -= cap
            self._size += 1
        else:
            slot = self._head
            self._head = slot + 1 if slot + 1 < cap else 0
        start = slot * self.slot_size
        self._view[start : start + n] = packet
        self._first[slot] = first
        self._count[slot] = count
        self._length[slot] = n
        self.next_seq = first + count

    def _slot(self, k: int) -> int:
        """Slot of the k-th oldest packet."""
        return (self._head + k) % self.capacity

    def find(self, first: int, count: int, max_packets: int) -> Found:
        """The held packets that carry any of ``first .. first + count - 1``, oldest first, at
        most ``max_packets`` of them (the caller asks again for the rest)."""
        end = first + count
        if not self._size or count <= 0 or end <= self.oldest_seq or first >= self.next_seq:
            return Found([], 0, 0)
        firsts = self._first
        # The last packet starting at or before ``first`` (or the oldest one).
        k = bisect.bisect_right(range(self._size), first, key=lambda i: firsts[self._slot(i)])
        k = max(k - 1, 0)
        packets: list[bytes] = []
        served_first = firsts[self._slot(k)]
        served = 0
        while k < self._size and len(packets) < max_packets:
            slot = self._slot(k)
            if firsts[slot] >= end:
                break
            start = slot * self.slot_size
            packets.append(bytes(self._view[start : start + self._length[slot]]))
            served += self._count[slot]
            k += 1
        return Found(packets, served_first, served)


class RetransmitStore(dict[int, RetransmitBuffer]):
    """One buffer per channel id."""

    @classmethod
    def for_channels(
        cls, channels: Iterable[int], capacity: int, slot_size: int
    ) -> RetransmitStore:
        return cls({ch: RetransmitBuffer(capacity, slot_size) for ch in channels})

    def memory_bytes(self) -> int:
        return sum(b.capacity * b.slot_size for b in self.values())
