"""Multicast across the veth pair: sender in namespace a, receiver in namespace b."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator

import pytest

from feeder.net import mcast, snmp
from feeder.net import timestamps as ts
from feeder.net.mmsg import (
    BatchReceiver,
    MmsgReceiver,
    MmsgSender,
    PlainReceiver,
    PlainSender,
)
from feeder.net.topology import TwoHostTopology

pytestmark = pytest.mark.privileged

GROUP = "239.77.0.1"
OTHER_GROUP = "239.77.0.2"
PORT = 31000
SECOND = 1_000_000_000
COUNT = 300


class Link:
    """A sender socket in a and a receiver socket in b, joined to GROUP:PORT."""

    def __init__(self, topo: TwoHostTopology, *, loop: bool = False) -> None:
        self.topo = topo
        self.tx = mcast.open_sender(topo.a.address, netns=topo.a.netns, loop=loop)
        self.rx = mcast.open_receiver(
            GROUP,
            PORT,
            topo.b.address,
            netns=topo.b.netns,
            rcvbuf=8 << 20,
            force_buffer=True,  # root: room for the whole test burst, whatever rmem_max is
            blocking=False,
        )

    def close(self) -> None:
        self.tx.sock.close()
        self.rx.sock.close()


@pytest.fixture
def link(topo: TwoHostTopology) -> Iterator[Link]:
    pair = Link(topo)
    try:
        yield pair
    finally:
        pair.close()


def _payload(seq: int) -> bytes:
    """Sequence number plus a length that varies with it, so reordering or mixing shows."""
    return seq.to_bytes(4, "big") + bytes([seq % 251]) * (seq % 97)


def _receive(receiver: BatchReceiver, sock: socket.socket, want: int) -> list[int]:
    """Indexes filled per recv, flattened into sequence numbers, checking content as we go."""
    seqs: list[int] = []
    while len(seqs) < want and select.select([sock], [], [], 2)[0]:
        n = receiver.recv(wait=False)
        for i in range(n):
            data = bytes(receiver.view(i))
            seq = int.from_bytes(data[:4], "big")
            assert data == _payload(seq), f"datagram {seq} corrupted"
            assert not receiver.truncated(i)
            seqs.append(seq)
    return seqs


def _send_all(sender: MmsgSender | PlainSender, count: int) -> None:
    seq = 0
    while seq < count:
        while sender.free and seq < count:
            sender.stage(_payload(seq))
            seq += 1
        while sender.pending:  # blocking socket: only a short send would leave entries
            sender.flush()


@pytest.mark.parametrize(
    ("sender_cls", "receiver_cls"),
    [
        (MmsgSender, MmsgReceiver),
        (PlainSender, PlainReceiver),
        (MmsgSender, PlainReceiver),
        (PlainSender, MmsgReceiver),
    ],
)
def test_datagrams_arrive_complete_and_in_order(
    link: Link,
    sender_cls: type[MmsgSender] | type[PlainSender],
    receiver_cls: type[MmsgReceiver] | type[PlainReceiver],
) -> None:
    topo = link.topo
    before_a = snmp.read_snmp_in(topo.a.netns)
    before_b = snmp.read_snmp_in(topo.b.netns)
    sender = sender_cls(link.tx.sock, 32, 256, [(GROUP, PORT)])
    receiver = receiver_cls(link.rx.sock, 64, 256, addresses=True)
    _send_all(sender, COUNT)
    seqs = _receive(receiver, link.rx.sock, COUNT)
    assert seqs == list(range(COUNT))
    assert receiver.source(0)[0] == topo.a.address
    sent = snmp.diff(before_a, snmp.read_snmp_in(topo.a.netns))
    got = snmp.diff(before_b, snmp.read_snmp_in(topo.b.netns))
    assert sent["Udp"]["OutDatagrams"] == COUNT
    assert got["Udp"]["InDatagrams"] == COUNT
    assert snmp.udp_losses(got) == {}


def test_buffer_read_back_is_reported(link: Link) -> None:
    report = link.rx.buffer
    assert report.option == "SO_RCVBUF" and report.forced and not report.capped
    assert report.granted == 2 * (8 << 20)
    assert report.granted == link.rx.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Inside the namespace the cap is the host's (read-only mirror there).
    assert report.limit == mcast.read_sysctl("net.core.rmem_max")


def test_receiver_gets_only_its_group(link: Link) -> None:
    topo = link.topo
    other = mcast.open_receiver(
        OTHER_GROUP, PORT, topo.b.address, netns=topo.b.netns, blocking=False
    )
    with other.sock:
        link.tx.sock.sendto(b"for-other", (OTHER_GROUP, PORT))
        link.tx.sock.sendto(b"for-main", (GROUP, PORT))
        assert select.select([other.sock], [], [], 2)[0]
        assert other.sock.recv(64) == b"for-other"
        assert select.select([link.rx.sock], [], [], 2)[0]
        assert link.rx.sock.recv(64) == b"for-main"  # not b"for-other": bound to its group


@pytest.mark.parametrize("loop", [False, True])
def test_multicast_loop_option(topo: TwoHostTopology, loop: bool) -> None:
    """A receiver in the sender's own namespace gets copies only with loop=True."""
    pair = Link(topo, loop=loop)
    local = mcast.open_receiver(GROUP, PORT, topo.a.address, netns=topo.a.netns, blocking=False)
    try:
        pair.tx.sock.sendto(b"first", (GROUP, PORT))
        pair.tx.sock.sendto(b"marker", (GROUP, PORT))
        # b receiving both proves the send is complete before we look at a.
        assert select.select([pair.rx.sock], [], [], 2)[0]
        assert pair.rx.sock.recv(64) == b"first"
        assert select.select([pair.rx.sock], [], [], 2)[0]
        assert pair.rx.sock.recv(64) == b"marker"
        looped = []
        while select.select([local.sock], [], [], 0.2)[0]:
            looped.append(local.sock.recv(64))
        assert looped == ([b"first", b"marker"] if loop else [])
    finally:
        local.sock.close()
        pair.close()


def test_rx_software_timestamps_are_plausible(link: Link) -> None:
    ts.enable_rx_software(link.rx.sock)
    assert ts.await_rx_stamping()
    sender = MmsgSender(link.tx.sock, 32, 256, [(GROUP, PORT)])
    receiver = MmsgReceiver(link.rx.sock, 64, 256, timestamps=True)
    _send_all(sender, 50)
    stamps: list[int] = []
    while len(stamps) < 50 and select.select([link.rx.sock], [], [], 2)[0]:
        n = receiver.recv(wait=False)
        for i in range(n):
            stamp = receiver.timestamp_ns(i)
            assert stamp is not None
            stamps.append(stamp)
    now = time.time_ns()
    assert len(stamps) == 50
    assert all(abs(now - s) < SECOND for s in stamps)
    assert stamps == sorted(stamps)


def test_tx_timestamps_have_consecutive_opt_ids(link: Link) -> None:
    ts.enable_tx_software(link.tx.sock)
    sender = MmsgSender(link.tx.sock, 32, 256, [(GROUP, PORT)])
    _send_all(sender, 100)
    records: list[ts.TxTimestamp] = []
    deadline = time.monotonic() + 5
    while len(records) < 100 and time.monotonic() < deadline:
        select.select([link.tx.sock], [], [], 0.1)
        records += ts.drain_tx_timestamps(link.tx.sock)
    now = time.time_ns()
    assert [r.id for r in records] == list(range(100))
    assert all(r.kind == ts.SCM_TSTAMP_SND for r in records)
    assert all(abs(now - r.ns) < SECOND for r in records)
    assert [r.ns for r in records] == sorted(r.ns for r in records)


@pytest.mark.parametrize("side", ["sender", "receiver"])
def test_address_of_the_other_namespace_is_a_clear_error(topo: TwoHostTopology, side: str) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(mcast.InterfaceAddressError, match=topo.b.netns):
        if side == "sender":
            mcast.open_sender(topo.a.address, netns=topo.b.netns)
        else:
            mcast.open_receiver(GROUP, PORT, topo.a.address, netns=topo.b.netns)
    assert len(os.listdir("/proc/self/fd")) == fds
