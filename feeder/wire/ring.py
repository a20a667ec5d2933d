"""A ring of preallocated packet buffers, so many finished packets can go out in one sendmmsg.

All slots live in one contiguous ``bytearray``; ``acquire()`` hands out the next free slot in
ring order and ``release(n)`` frees the ``n`` oldest once the caller has sent them::

    ring = PacketRing(slots=32)
    batch: list[memoryview] = []
    enc.begin(ring.acquire(), seq)
    ...
    batch.append(enc.finish(now_ns))
    sent = sendmmsg(sock, batch)        # may send fewer than len(batch)
    ring.release(sent); del batch[:sent]

A slot is never handed out again while it is in use, so a finished packet's bytes stay valid
until it is released.
"""

from __future__ import annotations

from feeder.wire.layout import DEFAULT_MAX_PACKET_SIZE, MAX_UDP_PAYLOAD, MIN_PACKET_SIZE


class RingFull(Exception):
    """Every slot holds a packet not yet released: send and ``release()`` some first."""


class PacketRing:
    """``slots`` buffers of ``slot_size`` bytes, handed out and freed in FIFO order."""

    __slots__ = ("_head", "_memory", "_slot_size", "_used", "_views")

    def __init__(self, slots: int, slot_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        if not 1 <= slots <= 65536:
            raise ValueError(f"slots={slots!r} must be between 1 and 65536")
        if not MIN_PACKET_SIZE <= slot_size <= MAX_UDP_PAYLOAD:
            raise ValueError(
                f"slot_size={slot_size!r} must be between {MIN_PACKET_SIZE} and {MAX_UDP_PAYLOAD}"
            )
        self._slot_size = slot_size
        self._memory = bytearray(slots * slot_size)
        whole = memoryview(self._memory)
        self._views = tuple(whole[i * slot_size : (i + 1) * slot_size] for i in range(slots))
        self._head = 0  # oldest slot in use
        self._used = 0

    @property
    def slots(self) -> int:
        return len(self._views)

    @property
    def slot_size(self) -> int:
        return self._slot_size

    @property
    def in_use(self) -> int:
        return self._used

    @property
    def free(self) -> int:
        return len(self._views) - self._used

    def acquire(self) -> memoryview:
        """The next free slot, as a writable view of ``slot_size`` bytes."""
        slots = len(self._views)
        if self._used == slots:
            raise RingFull(f"all {slots} packet buffers are in use: send and release() some")
        index = self._head + self._used
        if index >= slots:
            index -= slots
        self._used += 1
        return self._views[index]

    def release(self, count: int) -> None:
        """Free the ``count`` oldest slots (the packets sent, in the order acquired)."""
        if not 0 <= count <= self._used:
            raise ValueError(f"release({count!r}): only {self._used} slots are in use")
        self._head = (self._head + count) % len(self._views)
        self._used -= count
