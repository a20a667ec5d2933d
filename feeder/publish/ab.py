"""A/B feeds on the sending side: line B's destinations, and a transport per line.

The publisher frames each packet once and submits it twice: to its channel's line-A destination
index and to its line-B index. Line B's destinations follow line A's in one list (index
``len(a.destinations) + k``), so one socket can send both lines when they leave through the same
interface. When line B has its own interface, ``SplitTransport`` hands the line-B indexes to a
second transport opened on that interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from feeder.publish.channels import ChannelMap
from feeder.publish.transport import Transport, TxStamped


def line_b(a: ChannelMap, group_b: str, port_b: int) -> ChannelMap:
    """Line B laid out like line A (one group per channel, or one shared group:port), starting
    at ``group_b:port_b``; no destination may be one of line A's."""
    single = len(a.destinations) == 1 and len(a.channels) > 1
    make = ChannelMap.single if single else ChannelMap.multi
    b = make(group_b, port_b, len(a.channels))
    clash = set(a.destinations) & set(b.destinations)
    if clash:
        g, p = sorted(clash)[0]
        raise ValueError(
            f"line B would use {g}:{p}, which line A uses too: give line B its own groups "
            "(--group-b) or ports (--port-b)"
        )
    return b


def both_lines(a: ChannelMap, b: ChannelMap | None) -> tuple[tuple[str, int], ...]:
    """The destination list a transport sending both lines is opened with."""
    return a.destinations + (b.destinations if b is not None else ())


def b_index(a: ChannelMap, b: ChannelMap, k: int) -> int:
    """Destination index of the k-th channel's line-B copy in ``both_lines(a, b)``."""
    return len(a.destinations) + b.dest_of[k]


Opener = Callable[[str, Sequence[tuple[str, int]]], Transport]  # (interface, destinations)


def open_lines(
    open_one: Opener, iface: str, a: ChannelMap, b: ChannelMap | None, iface_b: str | None
) -> Transport:
    """One transport for both lines when they share an interface, else a ``SplitTransport``
    over one transport per interface."""
    if b is None or iface_b is None or iface_b == iface:
        return open_one(iface, both_lines(a, b))
    first = open_one(iface, a.destinations)
    try:
        second = open_one(iface_b, b.destinations)
    except BaseException:
        first.close()
        raise
    return SplitTransport(first, second, len(a.destinations))


class SplitTransport:
    """Line A's destination indexes go to one transport, line B's to another (its own
    interface). A failure of either is a failure of both: the send path falls back as one."""

    def __init__(self, a: Transport, b: Transport, split: int) -> None:
        self.a, self.b, self.split = a, b, split
        self.name = a.name if a.name == b.name else f"{a.name}+{b.name}"

    @property
    def pending(self) -> int:
        return self.a.pending + self.b.pending

    def offer(self, packet: bytes | memoryview, dest: int) -> bool:
        if dest < self.split:
            return self.a.offer(packet, dest)
        return self.b.offer(packet, dest - self.split)

    def flush(self) -> int:
        return self.a.flush() + self.b.flush()

    def take_unsent(self) -> list[tuple[bytes, int]]:
        return self.a.take_unsent() + [(d, i + self.split) for d, i in self.b.take_unsent()]

    def drain_tx(self, on_packet: Callable[[memoryview, int], None], limit: int = 4096) -> int:
        """TX timestamps from whichever line's transport has them."""
        n = 0
        for t in (self.a, self.b):
            if isinstance(t, TxStamped):
                n += t.drain_tx(on_packet, limit)
        return n

    def close(self) -> None:
        try:
            self.a.close()
        finally:
            self.b.close()

    def info(self) -> dict[str, object]:
        return {"transport": self.name, "line_a": self.a.info(), "line_b": self.b.info()}
