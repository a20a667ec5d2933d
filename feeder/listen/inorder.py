"""Books applied in sequence order while recovery fills holes.

A recovered packet arrives after the packets that followed it; applying it then would put an
old level quantity over a newer one. So, when recovery is on, a channel's packets after a hole
wait here (decoded) until the hole is filled, then everything is applied in order. A hole that
will not be filled (given up, or written off by the tracker) is skipped as soon as ``settle``
learns so; the wait is also bounded in messages. Without recovery nothing would ever fill a
hole, and the receiver applies packets as they come instead.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from feeder.listen.books import ReceiverBooks
from feeder.wire import Packet

#: (channel, start, end) -> whether that hole may still be filled
Pending = Callable[[int, int, int], bool]


@dataclass
class _Channel:
    session: int
    next: int
    waiting: list[tuple[int, int, int, Packet]] = field(default_factory=list)
    # (first, end, arrival order, packet), sorted
    waiting_messages: int = 0


class InOrderBooks:
    def __init__(self, books: ReceiverBooks, max_waiting: int = 200_000) -> None:
        self.books = books
        self.max_waiting = max_waiting
        self._channels: dict[int, _Channel] = {}
        self._order = 0
        self.waited_packets = 0  # packets that had to wait for a hole before them
        self.skipped_holes = 0  # holes applied past without their messages
        self.late_packets = 0  # filled a hole already skipped: too late for the books

    def offer(self, session: int, channel: int, first: int, end: int, packet: Packet) -> None:
        c = self._channels.get(channel)
        if c is None or c.session != session:
            if c is not None:
                self._apply_all(c)
            c = self._channels[channel] = _Channel(session, first)
        if first == c.next:
            self.books.apply(packet)
            c.next = end
            if c.waiting:
                self._drain(c)
        elif first > c.next:
            self._order += 1
            bisect.insort(c.waiting, (first, end, self._order, packet))
            c.waiting_messages += end - first
            self.waited_packets += 1
            if c.waiting_messages > self.max_waiting:
                self._skip(c)
        else:
            self.late_packets += 1

    def _drain(self, c: _Channel) -> None:
        while c.waiting and c.waiting[0][0] <= c.next:
            first, end, _, packet = c.waiting.pop(0)
            c.waiting_messages -= end - first
            if first == c.next:
                self.books.apply(packet)
                c.next = end
            else:
                self.late_packets += 1

    def _skip(self, c: _Channel) -> None:
        """Give up the hole before the first waiting packet and apply what follows it."""
        self.skipped_holes += 1
        c.next = c.waiting[0][0]
        self._drain(c)

    def _apply_all(self, c: _Channel) -> None:
        while c.waiting:
            self._skip(c)

    def settle(self, pending: Pending) -> None:
        """Skip every hole ``pending`` says will not be filled."""
        for ch, c in self._channels.items():
            while c.waiting and not pending(ch, c.next, c.waiting[0][0]):
                self._skip(c)

    def flush(self) -> None:
        """Apply everything still waiting, holes or not (end of run)."""
        for c in self._channels.values():
            self._apply_all(c)

    @property
    def waiting(self) -> int:
        return sum(len(c.waiting) for c in self._channels.values())
