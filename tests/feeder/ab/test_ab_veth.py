"""A/B feeds across two namespaces (root; runs in CI): loss on one line is filled by the other
with no gap, and line B can leave and arrive on interfaces of its own. The loss is real: the
kernel drops the chosen packets at the receiver's line-A sockets."""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pyroute2 import IPRoute

from feeder.listen.dropfilter import DropRule
from feeder.net.netns import open_netns
from feeder.net.topology import TwoHostTopology
from feeder.publish.ab import SplitTransport, line_b, open_lines
from feeder.publish.channels import ChannelMap
from feeder.publish.transport import Transport, UdpTransport
from tests.feeder.recovery.harness import FeederSide, lost, receiver, run_until_settled, same_books
from tests.feeder.recovery.harness import topo as topo  # the fixture

DROP_A = DropRule(4, 3)


def test_loss_on_line_a_only_is_filled_by_line_b(topo: TwoHostTopology) -> None:
    a = ChannelMap.multi("239.91.0.1", 44001, 2)
    b = line_b(a, "239.92.0.1", 44001)

    async def run() -> None:
        feed = FeederSide(topo, a, b)
        rx = receiver(topo, a, b, drop_a=DROP_A)
        try:
            sent = feed.publish(150, a.channels)
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            packets = [p for ch in a.channels for p in feed.packets(ch)]
            assert lost(packets, DROP_A) > 0
            assert s["received"] == sent
            assert s["gaps"] == 0 and s["missing_messages"] == 0
            assert s["duplicates"] == 0  # line copies are not feed duplicates
            ab = s["ab"]
            la, lb = ab["lines"]["a"], ab["lines"]["b"]
            n = len(packets)
            dropped = sum(DROP_A.matches(h.first_seq) for h, _ in packets)
            assert la["packets"] == n - dropped and lb["packets"] == n
            assert la["first"] + lb["first"] == n  # every packet reached the feed once
            assert la["duplicates"] + lb["duplicates"] == n - dropped
            assert la["lost_messages"] == la["filled_by_other_line"] == lost(packets, DROP_A)
            assert lb["lost_messages"] == 0 and ab["lost_on_both_messages"] == 0
            assert rx.books is not None and same_books(rx.books, feed.books())
        finally:
            rx.close()
            feed.close()

    asyncio.run(run())


@pytest.fixture
def second_link(topo: TwoHostTopology) -> Iterator[tuple[str, str, str]]:
    """A second veth pair between the two namespaces, for line B: (a address, b address,
    b-side interface name). Removed with the namespaces."""
    name_a, name_b = f"{topo.prefix}-a2", f"{topo.prefix}-b2"
    addr_a, addr_b = "10.199.1.1", "10.199.1.2"
    peer = open_netns(topo.b.netns)
    try:
        with topo.a.entered(), IPRoute() as ipr:
            ipr.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": peer})
    finally:
        os.close(peer)
    for host, name, addr in ((topo.a, name_a, addr_a), (topo.b, name_b, addr_b)):
        with host.entered(), IPRoute() as ipr:
            (idx,) = ipr.link_lookup(ifname=name)
            ipr.addr("add", index=idx, address=addr, prefixlen=30)
            ipr.link("set", index=idx, state="up")
    wait_for_link(topo, addr_a, addr_b)
    yield addr_a, addr_b, name_b


def wait_for_link(topo: TwoHostTopology, addr_a: str, addr_b: str) -> None:
    """A fresh link drops datagrams until it is really up: send probes until one arrives."""
    with topo.b.socket() as rx, topo.a.socket() as tx:
        rx.bind((addr_b, 0))
        tx.bind((addr_a, 0))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            tx.sendto(b"probe", rx.getsockname())
            if select.select([rx], [], [], 0.01)[0] and rx.recv(16) == b"probe":
                return
    raise AssertionError("the second link passed no datagram in 5 s")


def rx_packets(topo: TwoHostTopology, ifname: str) -> int:
    with topo.b.entered(), IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=ifname)
        return int(link.get_attr("IFLA_STATS64")["rx_packets"])


def test_line_b_on_its_own_interface(
    topo: TwoHostTopology, second_link: tuple[str, str, str]
) -> None:
    addr_a2, addr_b2, ifname_b2 = second_link
    a = ChannelMap.multi("239.93.0.1", 44101, 2)
    b = line_b(a, "239.94.0.1", 44101)

    def open_one(iface: str, dests: Sequence[tuple[str, int]]) -> Transport:
        return UdpTransport.open(iface, dests, netns=topo.a.netns)

    async def run() -> dict[str, Any]:
        feed = FeederSide(topo, a, b)
        feed.path.close()  # replace the one-socket transport with one per interface
        split = open_lines(open_one, topo.a.address, a, b, addr_a2)
        assert isinstance(split, SplitTransport)
        feed.path.attach(split)
        rx = receiver(topo, a, b, drop_a=DROP_A, iface_b=addr_b2)
        try:
            sent = feed.publish(100, a.channels)
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            packets = [p for ch in a.channels for p in feed.packets(ch)]
            assert s["received"] == sent and s["gaps"] == 0 and s["missing_messages"] == 0, s["ab"]
            assert s["ab"]["lines"]["b"]["packets"] == len(packets)
            assert s["ab"]["lines"]["a"]["filled_by_other_line"] == lost(packets, DROP_A) > 0
            return s
        finally:
            rx.close()
            feed.close()

    before = rx_packets(topo, ifname_b2)  # (pyroute2 runs its own event loop: not inside ours)
    lb = asyncio.run(run())["ab"]["lines"]["b"]
    # Line B really crossed the second link (its data packets, heartbeats and ends).
    assert rx_packets(topo, ifname_b2) - before >= lb["packets"] + lb["heartbeats"]


def test_receiver_without_line_b_traffic_still_delivers(topo: TwoHostTopology) -> None:
    """Line B configured at the receiver but never sent: line A alone flows, gaps are gaps."""
    a = ChannelMap.multi("239.95.0.1", 44201, 1)
    b = line_b(a, "239.96.0.1", 44201)

    async def run() -> None:
        feed = FeederSide(topo, a, None)
        rx = receiver(topo, a, b, drop_a=DROP_A)
        try:
            sent = feed.publish(60, a.channels)
            assert feed.pub.close()
            await run_until_settled(rx)
            s = rx.summary()
            packets = feed.packets(1)
            assert s["received"] == sent - lost(packets, DROP_A)
            assert s["gap_messages"] == lost(packets, DROP_A)
            assert s["ab"]["lines"]["b"]["packets"] == 0
        finally:
            rx.close()
            feed.close()

    asyncio.run(run())


__all__ = ["topo"]
