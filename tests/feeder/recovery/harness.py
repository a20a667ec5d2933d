"""A feeder side and a receiver side across the veth topology, for A/B and recovery tests.

The feeder side (namespace a) is a real publisher on kernel UDP sending both lines, keeping
what it sends in retransmission buffers, with the recovery service on a real socket in an
asyncio loop. The receiver side (namespace b) is the real ``Receiver``. Loss is real too: the
kernel drops chosen packets at the receiver's sockets (``DropRule``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator

import pytest

from feeder.listen.books import ReceiverBooks
from feeder.listen.dropfilter import DropRule
from feeder.listen.receiver import Receiver, ReceiverConfig
from feeder.net.topology import TwoHostTopology
from feeder.publish.ab import both_lines
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import SendPath
from feeder.publish.transport import UdpTransport
from feeder.recovery.buffer import RetransmitStore
from feeder.recovery.server import (
    RecoveryLimits,
    RecoveryServer,
    RecoveryService,
    open_socket,
    serve,
)
from feeder.wire import (
    BID,
    BookAction,
    DeltaFlags,
    Packet,
    PacketHeader,
    decode_header,
    decode_packet,
)
from tests.privilege import require_root


@pytest.fixture
def topo(unique_prefix: str) -> Iterator[TwoHostTopology]:
    require_root("network namespaces and veth need root")
    t = TwoHostTopology.build(unique_prefix)
    try:
        yield t
    finally:
        t.close()


class FeederSide:
    def __init__(
        self,
        topo: TwoHostTopology,
        a: ChannelMap,
        b: ChannelMap | None,
        *,
        buffer_packets: int = 4096,
        limits: RecoveryLimits | None = None,
    ) -> None:
        self.topo = topo
        self.store = RetransmitStore.for_channels(a.channels, buffer_packets, 1400)
        self.path = SendPath()
        self.path.attach(UdpTransport.open(topo.a.address, both_lines(a, b), netns=topo.a.netns))
        self.pub = Publisher(self.path, a, line_b=b, retransmit=self.store)
        self.service = RecoveryService(self.store, self.pub.session_id, limits)
        self.server: RecoveryServer | None = None
        self.address: tuple[str, int] = ("", 0)
        self.sent_packets: dict[int, list[bytes]] = {ch: [] for ch in a.channels}

    async def start(self) -> None:
        sock = open_socket(self.topo.a.address, 0, netns=self.topo.a.netns)
        self.address = sock.getsockname()
        _, self.server = await serve(sock, self.service)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.path.close()

    def publish(self, batches: int, channels: Iterable[int]) -> int:
        """Book deltas that overwrite a few price levels again and again (so the order they are
        applied in matters), in packets of varied sizes. Returns messages published."""
        n = 0
        for i in range(batches):
            for ch in channels:
                for _ in range(1 + (i * 7 + ch) % 11):
                    n += 1
                    iid = ch * 10 + n % 3
                    action = BookAction.DELETE if n % 13 == 0 else BookAction.UPDATE
                    price, qty = 100 + n % 5, n
                    self.pub.book_delta(
                        ch, iid, BID, action, DeltaFlags.LAST_IN_EVENT, price, qty, n, 1, 2
                    )
            self.pub.poll()
        return n

    def packets(self, channel: int) -> list[tuple[PacketHeader, bytes]]:
        """Every data packet sent on ``channel`` (from a buffer big enough to hold them all)."""
        out = []
        for data in self.store[channel].find(1, 1 << 40, 1 << 20).packets:
            h = decode_header(data)
            assert isinstance(h, PacketHeader)
            out.append((h, data))
        return out

    def books(self) -> ReceiverBooks:
        """The books a receiver that lost nothing holds."""
        books = ReceiverBooks()
        for ch in self.store:
            for _, data in self.packets(ch):
                p = decode_packet(data)
                assert isinstance(p, Packet)
                books.apply(p)
        return books


def receiver(
    topo: TwoHostTopology,
    a: ChannelMap,
    b: ChannelMap | None = None,
    *,
    recovery: tuple[str, int] | None = None,
    drop_a: DropRule | None = None,
    drop_b: DropRule | None = None,
    iface_b: str | None = None,
) -> Receiver:
    return Receiver(
        ReceiverConfig(
            a.destinations,
            topo.b.address,
            netns=topo.b.netns,
            books=True,
            destinations_b=b.destinations if b is not None else (),
            iface_b=iface_b,
            recovery=recovery,
            drop_a=drop_a,
            drop_b=drop_b,
        )
    )


async def run_until_settled(rx: Receiver, timeout_s: float = 10.0) -> None:
    """Poll (letting the loop answer re-requests in between) until every channel ended and
    nothing is held or still recoverable."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rx.poll(0)
        chans = rx.tracker.channels.values()
        if chans and all(c.ended for c in chans) and not rx.settling:
            break
        await asyncio.sleep(0.001)
    rx.finish()


def lost(packets: list[tuple[PacketHeader, bytes]], *rules: DropRule | None) -> int:
    """Messages in the packets every given rule drops."""
    return sum(
        h.msg_count
        for h, _ in packets
        if all(r is not None and r.matches(h.first_seq) for r in rules)
    )


def same_books(got: ReceiverBooks, want: ReceiverBooks) -> bool:
    return got.top(50) == want.top(50) and bool(want.books)
