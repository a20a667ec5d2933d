"""Tick-to-wire read back from real kernel TX timestamps on loopback multicast."""

from __future__ import annotations

import time

from feeder.metrics.ticktowire import TickToWire
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import SendPath
from feeder.publish.transport import UdpTransport, udp_payload
from feeder.wire import BID, BookAction, Side


def test_every_market_message_gets_a_tick_to_wire_sample() -> None:
    chmap = ChannelMap.single("239.255.77.1", 45877, 1)
    t = UdpTransport.open("127.0.0.1", chmap.destinations, ttl=0, loop=False, tx_timestamps=True)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, chmap)
    ttw = TickToWire()
    rx = time.time_ns()
    for i in range(300):
        pub.trade(1, 1, Side.BUY, 0, 100, 1, i, 0, rx)
        pub.book_delta(1, 1, BID, BookAction.UPDATE, 0, 100, 1, i, 0, rx)
    pub.poll()
    deadline = time.monotonic() + 2
    while ttw.histogram.count < 600 and time.monotonic() < deadline:
        path.drain_tx(ttw.on_packet)
        time.sleep(0.01)
    h = ttw.histogram
    assert h.count == 600  # every message, none counted twice
    assert ttw.packets == pub.stats()[0].packets
    assert 0 < h.min <= h.max < 10 * 10**9  # later than the frame, and plausible
    path.close()


def test_payload_extraction_handles_ethernet_and_bare_ip() -> None:
    ip = bytes([0x45]) + bytes(19)
    udp = bytes(8)
    eth = bytes(12) + b"\x08\x00"
    assert bytes(udp_payload(memoryview(eth + ip + udp + b"DATA")) or b"") == b"DATA"
    assert bytes(udp_payload(memoryview(ip + udp + b"XY")) or b"") == b"XY"
    assert udp_payload(memoryview(b"\x00" * 10)) is None


def test_a_b_copies_are_counted_once() -> None:
    from feeder.publish.ab import line_b

    a = ChannelMap.single("239.255.77.2", 45878, 1)
    b = line_b(a, "239.255.78.2", 45879)
    t = UdpTransport.open(
        "127.0.0.1", [*a.destinations, *b.destinations], ttl=0, loop=False, tx_timestamps=True
    )
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, a, line_b=b)
    ttw = TickToWire()
    for i in range(100):
        pub.trade(1, 1, Side.BUY, 0, 100, 1, i, 0, time.time_ns())
    pub.poll()
    deadline = time.monotonic() + 2
    while ttw.histogram.count < 100 and time.monotonic() < deadline:
        path.drain_tx(ttw.on_packet)
        time.sleep(0.01)
    time.sleep(0.05)
    path.drain_tx(ttw.on_packet)
    assert ttw.histogram.count == 100
    path.close()


def test_messages_read_before_since_are_counted_not_timed() -> None:
    chmap = ChannelMap.single("239.255.77.3", 45880, 1)
    t = UdpTransport.open("127.0.0.1", chmap.destinations, ttl=0, loop=False, tx_timestamps=True)
    path = SendPath()
    path.attach(t)
    pub = Publisher(path, chmap)
    early = time.time_ns()
    ttw = TickToWire(since_ns=early + 1)  # books went live after the first frames were read
    for i in range(50):
        pub.trade(1, 1, Side.BUY, 0, 100, 1, i, 0, early)  # buffered during the sync
        pub.trade(1, 1, Side.BUY, 0, 100, 1, i, 0, early + 1)  # read once live
    pub.poll()
    deadline = time.monotonic() + 2
    while ttw.histogram.count + ttw.not_timed < 100 and time.monotonic() < deadline:
        path.drain_tx(ttw.on_packet)
        time.sleep(0.01)
    assert (ttw.histogram.count, ttw.not_timed) == (50, 50)
    path.close()
