"""Batch senders/receivers on real local sockets (loopback UDP, AF_UNIX datagram pairs)."""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Iterator

import pytest

from feeder.net import mmsg
from feeder.net.mmsg import (
    BatchReceiver,
    BatchSender,
    MmsgReceiver,
    MmsgSender,
    PlainReceiver,
    PlainSender,
)

SENDERS = [MmsgSender, PlainSender]
RECEIVERS = [MmsgReceiver, PlainReceiver]


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A UDP sender and a non-blocking receiver bound to 127.0.0.1 (an ephemeral port)."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.setblocking(False)
    try:
        yield tx, rx
    finally:
        tx.close()
        rx.close()


@pytest.fixture
def unix_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected AF_UNIX datagram pair; the sender is non-blocking with a minimal SO_SNDBUF,
    so the kernel refuses more than a few in-flight datagrams (EAGAIN)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _drain(rx: BatchReceiver, sock: socket.socket, want: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < want and select.select([sock], [], [], 2)[0]:
        n = rx.recv(wait=False)
        got.extend(bytes(rx.view(i)) for i in range(n))
    return got


@pytest.mark.parametrize("sender_cls", SENDERS)
@pytest.mark.parametrize("receiver_cls", RECEIVERS)
def test_loopback_round_trip_preserves_content_order_and_source(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
    receiver_cls: type[MmsgReceiver] | type[PlainReceiver],
) -> None:
    tx, rx_sock = udp_pair
    sender = sender_cls(tx, 16, 256, [rx_sock.getsockname()])
    receiver = receiver_cls(rx_sock, 8, 256, addresses=True)
    payloads = [i.to_bytes(2, "big") * (1 + i % 40) for i in range(50)]
    for start in range(0, len(payloads), sender.capacity):
        for p in payloads[start : start + sender.capacity]:
            sender.stage(p)
        assert sender.flush() == len(payloads[start : start + sender.capacity])
        assert sender.pending == 0
    got = _drain(receiver, rx_sock, len(payloads))
    assert got == payloads
    assert receiver.source(0) == tx.getsockname()


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_full_queue_keeps_unsent_entries_for_retry(
    unix_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    a, b = unix_pair
    sender = sender_cls(a, 64, 1000)
    payloads = [bytes([i]) * 1000 for i in range(64)]
    for p in payloads:
        sender.stage(p)
    first = sender.flush()
    assert 0 < first < 64, "the small SO_SNDBUF should have stopped the batch early"
    assert sender.blocked == errno.EAGAIN
    assert sender.pending == 64 - first
    received: list[bytes] = []
    for _ in range(1000):
        while True:
            try:
                received.append(b.recv(2000))
            except BlockingIOError:
                break
        if not sender.pending:
            break
        sender.flush()
    assert received == payloads  # nothing lost, nothing duplicated, in order
    assert sender.free == 64  # fully flushed: slots reusable from the start


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_hard_error_raises_and_keeps_entries(
    unix_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    a, b = unix_pair
    b.close()
    sender = sender_cls(a, 4, 64)
    sender.stage(b"x")
    with pytest.raises(OSError) as info:
        sender.flush()
    assert info.value.errno == errno.ECONNREFUSED
    assert sender.pending == 1
    sender.clear()
    assert sender.pending == 0 and sender.free == 4


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_zero_copy_slot_commit(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    tx, rx = udp_pair
    sender = sender_cls(tx, 4, 64, [rx.getsockname()])
    slot = sender.slot()
    assert len(slot) == 64 and not slot.readonly
    slot[:5] = b"hello"
    sender.commit(5)
    assert sender.flush() == 1
    assert select.select([rx], [], [], 2)[0]
    assert rx.recv(100) == b"hello"


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_destination_index_selects_the_receiver(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    tx, rx0 = udp_pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx1:
        rx1.bind(("127.0.0.1", 0))
        sender = sender_cls(tx, 4, 64, [rx0.getsockname(), rx1.getsockname()])
        sender.stage(b"to-1", dest=1)
        sender.stage(b"to-0", dest=0)
        assert sender.flush() == 2
        rx1.settimeout(2)
        assert rx1.recv(64) == b"to-1"
        assert select.select([rx0], [], [], 2)[0]
        assert rx0.recv(64) == b"to-0"


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_one_datagram_flushes_go_to_their_destination_in_order(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    # MmsgSender sends a lone datagram with sendto rather than sendmmsg: same results.
    tx, rx0 = udp_pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx1:
        rx1.bind(("127.0.0.1", 0))
        sender = sender_cls(tx, 4, 64, [rx0.getsockname(), rx1.getsockname()])
        for i in range(6):
            sender.stage(f"{i}".encode(), dest=i % 2)
            assert sender.flush() == 1 and sender.pending == 0 and sender.free == 4
        rx0.settimeout(2)
        rx1.settimeout(2)
        assert [rx0.recv(64) for _ in range(3)] == [b"0", b"2", b"4"]
        assert [rx1.recv(64) for _ in range(3)] == [b"1", b"3", b"5"]


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_a_lone_datagram_hard_error_raises_and_keeps_it(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    tx, _ = udp_pair
    sender = sender_cls(tx, 4, 64, [("255.255.255.255", 9)])  # EACCES: no SO_BROADCAST
    sender.stage(b"x")
    with pytest.raises(OSError) as info:
        sender.flush()
    assert info.value.errno == errno.EACCES
    assert sender.pending == 1 and sender.unsent() == [(b"x", 0)]


@pytest.mark.parametrize("sender_cls", SENDERS)
def test_staging_errors(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
) -> None:
    tx, rx = udp_pair
    sender = sender_cls(tx, 2, 8, [rx.getsockname()])
    with pytest.raises(ValueError, match="exceeds"):
        sender.stage(b"123456789")
    with pytest.raises(IndexError, match="destination 1"):
        sender.stage(b"x", dest=1)
    with pytest.raises(ValueError, match="length"):
        sender.commit(9)
    sender.stage(b"a")
    sender.stage(b"b")
    with pytest.raises(BufferError, match="flush"):
        sender.stage(b"c")
    with pytest.raises(BufferError, match="flush"):
        sender.slot()
    assert sender.pending == 2  # failed calls staged nothing


@pytest.mark.parametrize("cls", [*SENDERS, *RECEIVERS])
@pytest.mark.parametrize(
    ("capacity", "slot_size", "message"),
    [(0, 64, "capacity"), (2000, 64, "capacity"), (4, 0, "slot size"), (4, 70000, "slot size")],
)
def test_bad_geometry(
    udp_pair: tuple[socket.socket, socket.socket],
    cls: type[object],
    capacity: int,
    slot_size: int,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        cls(udp_pair[0], capacity, slot_size)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "dest", [("239.1.1.1", 0), ("nope", 1), ("10.0.0.1",), "10.0.0.1:5", ("10.0.0.1", "5")]
)
@pytest.mark.parametrize("sender_cls", SENDERS)
def test_bad_destination(
    udp_pair: tuple[socket.socket, socket.socket],
    sender_cls: type[MmsgSender] | type[PlainSender],
    dest: object,
) -> None:
    with pytest.raises(ValueError, match=r"destination|port"):
        sender_cls(udp_pair[0], 4, 64, [dest])  # type: ignore[list-item]


@pytest.mark.parametrize("receiver_cls", RECEIVERS)
def test_empty_queue_returns_zero(
    udp_pair: tuple[socket.socket, socket.socket],
    receiver_cls: type[MmsgReceiver] | type[PlainReceiver],
) -> None:
    _tx, rx = udp_pair
    receiver = receiver_cls(rx, 4, 64)
    assert receiver.recv(wait=False) == 0
    assert receiver.recv(wait=True) == 0  # the socket itself is non-blocking


@pytest.mark.parametrize("receiver_cls", RECEIVERS)
def test_truncation_is_reported(
    udp_pair: tuple[socket.socket, socket.socket],
    receiver_cls: type[MmsgReceiver] | type[PlainReceiver],
) -> None:
    tx, rx = udp_pair
    receiver = receiver_cls(rx, 4, 16)
    tx.sendto(b"s" * 10, rx.getsockname())
    tx.sendto(b"L" * 100, rx.getsockname())
    got = _drain(receiver, rx, 2)
    assert got == [b"s" * 10, b"L" * 16]
    assert [receiver.truncated(0), receiver.truncated(1)] == [False, True]
    assert [receiver.length(0), receiver.length(1)] == [10, 16]


@pytest.mark.parametrize("receiver_cls", RECEIVERS)
def test_optional_features_must_be_requested(
    udp_pair: tuple[socket.socket, socket.socket],
    receiver_cls: type[MmsgReceiver] | type[PlainReceiver],
) -> None:
    receiver = receiver_cls(udp_pair[1], 4, 64)
    with pytest.raises(RuntimeError, match="timestamps=True"):
        receiver.timestamp_ns(0)
    with pytest.raises(RuntimeError, match="addresses=True"):
        receiver.source(0)


def test_factories_choose_the_implementation(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    tx, rx = udp_pair
    assert mmsg.mmsg_available()  # glibc on Linux has both calls
    sender: BatchSender = mmsg.make_sender(tx, 4, 64, [rx.getsockname()])
    receiver: BatchReceiver = mmsg.make_receiver(rx, 4, 64)
    assert isinstance(sender, MmsgSender) and isinstance(receiver, MmsgReceiver)
    assert isinstance(mmsg.make_sender(tx, 4, 64, prefer_mmsg=False), PlainSender)
    assert isinstance(mmsg.make_receiver(rx, 4, 64, prefer_mmsg=False), PlainReceiver)
