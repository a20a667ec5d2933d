"""Where each channel goes: per-channel multicast groups/ports, or one shared group:port."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from feeder.net import validate


@dataclass(frozen=True)
class ChannelMap:
    """Channel id -> destination index, and the destinations themselves.

    Multi-port: channel ``i`` goes to ``group_base + i``, ``port_base + i``, so a receiver can
    join only what it needs. Single-port (the fallback for networks that allow one group, or
    receivers that want one socket): every channel shares one group:port and the channel id in
    the packet header tells them apart.
    """

    channels: tuple[int, ...]
    destinations: tuple[tuple[str, int], ...]
    dest_of: tuple[int, ...]  # dest_of[k] = destination index of channels[k]

    @classmethod
    def multi(cls, group_base: str, port_base: int, channels: int) -> ChannelMap:
        validate.group(group_base)
        validate.int_in(channels, 1, 1024, "channel count")
        validate.port(port_base)
        validate.port(port_base + channels - 1)
        base = ipaddress.IPv4Address(group_base)
        dests = tuple((str(base + i), port_base + i) for i in range(channels))
        for g, _ in dests:
            validate.group(g)
        return cls(tuple(range(1, channels + 1)), dests, tuple(range(channels)))

    @classmethod
    def single(cls, group: str, port: int, channels: int) -> ChannelMap:
        validate.group(group)
        validate.port(port)
        validate.int_in(channels, 1, 1024, "channel count")
        return cls(tuple(range(1, channels + 1)), ((group, port),), (0,) * channels)

    def destination(self, channel: int) -> tuple[str, int]:
        return self.destinations[self.dest_of[self.channels.index(channel)]]

    def describe(self) -> str:
        if len(self.destinations) == 1:
            g, p = self.destinations[0]
            return f"{len(self.channels)} channels on {g}:{p}"
        (g0, p0), (g1, p1) = self.destinations[0], self.destinations[-1]
        return f"{len(self.channels)} channels on {g0}:{p0} .. {g1}:{p1}"
