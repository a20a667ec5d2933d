"""The spine end to end across two network namespaces joined by veth (root; runs in CI)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from feeder.listen.receiver import Receiver, ReceiverConfig
from feeder.net.topology import TwoHostTopology
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import Candidate, SendPath
from feeder.publish.transport import UdpTransport
from feeder.wire import Packet, PacketEncoder, decode_packet
from tests.feeder.test_publish import publish
from tests.privilege import require_root


@pytest.fixture
def topo(unique_prefix: str) -> Iterator[TwoHostTopology]:
    require_root("network namespaces and veth need root")
    t = TwoHostTopology.build(unique_prefix)
    try:
        yield t
    finally:
        t.close()


def channels(port: int) -> ChannelMap:
    return ChannelMap.multi("239.77.0.1", port, 2)


def receiver(topo: TwoHostTopology, chmap: ChannelMap) -> Receiver:
    return Receiver(ReceiverConfig(chmap.destinations, topo.b.address, netns=topo.b.netns))


def udp(topo: TwoHostTopology, chmap: ChannelMap) -> UdpTransport:
    return UdpTransport.open(topo.a.address, chmap.destinations, netns=topo.a.netns)


def drain(rx: Receiver, until: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while rx.messages < until and time.monotonic() < deadline:
        rx.poll(0.05)
    rx.poll(0.05)  # and anything trailing (heartbeats, end of session)


def test_messages_cross_the_veth_without_gaps(topo: TwoHostTopology) -> None:
    chmap = channels(42001)
    rx = receiver(topo, chmap)
    try:
        path = SendPath([Candidate("udp", lambda: udp(topo, chmap))])
        path.start()
        pub = Publisher(path, chmap)
        for _ in range(20):
            publish(pub, 500, channel=1)
            publish(pub, 500, channel=2)
            pub.poll()
            rx.poll(0)
        assert pub.close()
        drain(rx, 20_000)
        s = rx.summary()
        assert s["received"] == 20_000 and s["gaps"] == 0 and s["duplicates"] == 0
        assert {c["channel"]: c["ended"] for c in s["channels"]} == {1: True, 2: True}
        assert s["latency_us"]["count"] == s["datagrams"]  # every datagram had an RX timestamp
        path.close()
    finally:
        rx.close()


class SkippingTransport:
    """Wraps a real transport and silently skips chosen data packets: injected loss."""

    def __init__(self, inner: UdpTransport, skip: set[int]) -> None:
        self.inner, self.skip, self.name = inner, skip, "skipping"
        self.index = 0
        self.skipped_messages = 0

    @property
    def pending(self) -> int:
        return self.inner.pending

    def offer(self, packet: bytes | memoryview, dest: int) -> bool:
        if self.index in self.skip:
            decoded = decode_packet(packet)
            assert isinstance(decoded, Packet)
            self.skipped_messages += decoded.header.msg_count
            self.index += 1
            return True
        if not self.inner.offer(packet, dest):
            return False
        self.index += 1
        return True

    def flush(self) -> int:
        return self.inner.flush()

    def take_unsent(self) -> list[tuple[bytes, int]]:
        return self.inner.take_unsent()

    def close(self) -> None:
        self.inner.close()

    def info(self) -> dict[str, object]:
        return {}


def test_injected_loss_is_reported_exactly(topo: TwoHostTopology) -> None:
    chmap = ChannelMap.single("239.77.1.1", 42101, 1)
    rx = receiver(topo, chmap)
    try:
        lossy = SkippingTransport(udp(topo, chmap), skip={3, 4, 10, 25})
        path = SendPath()
        path.attach(lossy)
        pub = Publisher(path, chmap)
        publish(pub, 3000)
        assert pub.close()
        drain(rx, 3000 - lossy.skipped_messages)
        s = rx.summary()
        assert lossy.skipped_messages > 0
        assert s["gap_messages"] == lossy.skipped_messages
        assert s["missing_messages"] == lossy.skipped_messages
        assert s["gaps"] == 3  # packets 3 and 4 are one contiguous hole
        assert s["received"] == 3000 - lossy.skipped_messages
    finally:
        rx.close()


def test_sender_created_after_sources_started(topo: TwoHostTopology) -> None:
    chmap = channels(42201)
    rx = receiver(topo, chmap)
    try:
        path = SendPath()  # no transport yet: the exchanges are already producing
        pub = Publisher(path, chmap)
        publish(pub, 2000, channel=1)
        pub.poll()
        assert path.name == "none" and path.backlog > 0
        path.attach(udp(topo, chmap), "sender came up late")
        publish(pub, 2000, channel=2)
        assert pub.close()
        drain(rx, 4000)
        s = rx.summary()
        assert s["received"] == 4000 and s["gaps"] == 0
        path.close()
    finally:
        rx.close()


def test_idle_channel_sends_heartbeats(topo: TwoHostTopology) -> None:
    chmap = channels(42301)
    rx = receiver(topo, chmap)
    try:
        path = SendPath()
        path.attach(udp(topo, chmap))
        pub = Publisher(path, chmap, heartbeat_ns=20_000_000)
        publish(pub, 10, channel=1)
        pub.poll()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            pub.poll()
            rx.poll(0.01)
            chans = rx.tracker.channels
            if 2 in chans and chans[2].heartbeats >= 2 and chans[1].heartbeats >= 1:
                break
        chans = rx.tracker.channels
        assert chans[2].heartbeats >= 2 and chans[2].next_seq == 1 and chans[2].gaps == 0
        assert chans[1].next_seq == 11 and chans[1].gaps == 0
        path.close()
    finally:
        rx.close()


def test_receiver_survives_garbage(topo: TwoHostTopology) -> None:
    from scapy.all import IP, UDP, Ether, Raw, conf, get_if_hwaddr, sendp

    chmap = ChannelMap.single("239.77.2.1", 42401, 1)
    rx = receiver(topo, chmap)
    try:
        path = SendPath()
        path.attach(udp(topo, chmap))
        pub = Publisher(path, chmap)
        publish(pub, 50)
        pub.poll()
        # A real packet of ours, cut short: valid header, messages missing.
        enc = PacketEncoder(pub.session_id, 1)
        buf = bytearray(1400)
        enc.begin(buf, 1)
        for i in range(10):
            enc.add_trade(1, 1, 0, 100, 1, i, 0, 0)
        cut = bytes(enc.finish(1)[:60])
        # Garbage crafted with scapy, sent from the feeder's namespace to the group's port:
        # random bytes, a truncated header, a valid header with a lying count.
        with topo.a.entered():
            conf.ifaces.reload()
            mac = get_if_hwaddr(topo.a.ifname)
            base = Ether(src=mac, dst="01:00:5e:4d:02:01") / IP(
                src=topo.a.address, dst="239.77.2.1", ttl=1
            )
            frames = [
                base / UDP(sport=5555, dport=42401) / Raw(b"\x00" * 3),
                base / UDP(sport=5555, dport=42401) / Raw(b"\xde\xad\xbe\xef" * 30),
                base / UDP(sport=5555, dport=42401) / Raw(cut),
            ]
            sendp(frames, iface=topo.a.ifname, verbose=False)
        publish(pub, 50)
        assert pub.close()
        drain(rx, 100)
        s = rx.summary()
        assert s["received"] == 100 and s["gaps"] == 0
        assert sum(s["rejected"].values()) == 3, s["rejected"]
        assert len(s["rejected"]) >= 2  # counted per reason
        path.close()
    finally:
        rx.close()
