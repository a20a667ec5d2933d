"""SO_TIMESTAMPING: constants checked on the running kernel (loopback), and the parsers."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from feeder.net import timestamps as ts
from feeder.net.mmsg import MmsgReceiver, MmsgSender, PlainReceiver

SECOND = 1_000_000_000


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    try:
        yield tx, rx
    finally:
        tx.close()
        rx.close()


def _cmsg(level: int, kind: int, payload: bytes) -> bytes:
    raw = ts.CMSGHDR.pack(ts.CMSGHDR.size + len(payload), level, kind) + payload
    return raw + b"\0" * (-len(raw) % ts.CMSG_ALIGN)


def _scm_timestamping(sec: int, nsec: int) -> bytes:
    return ts.SCM_TIMESTAMPING_STRUCT.pack(sec, nsec, 0, 0, 0, 0)


def test_flags_round_trip_on_this_kernel(pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    assert ts.flags(rx) == 0
    assert ts.enable_rx_software(rx) == ts.RX_SOFTWARE
    assert ts.flags(rx) == ts.RX_SOFTWARE
    assert ts.enable_tx_software(tx) == ts.TX_SOFTWARE
    assert ts.flags(tx) == ts.TX_SOFTWARE
    # enable() merges: adding RX keeps TX
    ts.enable_rx_software(tx)
    assert ts.flags(tx) == ts.TX_SOFTWARE | ts.RX_SOFTWARE


def test_rx_timestamps_on_loopback(pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    ts.enable_rx_software(rx)
    assert ts.await_rx_stamping()
    receiver = MmsgReceiver(rx, 8, 64, timestamps=True)
    for i in range(5):
        tx.sendto(bytes([i]), rx.getsockname())
    assert select.select([rx], [], [], 2)[0]
    n = receiver.recv(wait=False)
    now = time.time_ns()
    stamps = [receiver.timestamp_ns(i) for i in range(n)]
    assert n == 5 and all(s is not None for s in stamps)
    assert all(abs(now - s) < SECOND for s in stamps if s is not None)
    assert stamps == sorted(stamps)  # type: ignore[type-var]


def test_no_timestamp_when_not_enabled(pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    receiver = PlainReceiver(rx, 2, 64, timestamps=True)
    tx.sendto(b"x", rx.getsockname())
    assert select.select([rx], [], [], 2)[0]
    assert receiver.recv(wait=False) == 1
    assert receiver.timestamp_ns(0) is None


def test_tx_records_on_loopback_have_consecutive_ids(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    tx, rx = pair
    ts.enable_tx_software(tx)
    sender = MmsgSender(tx, 16, 64, [rx.getsockname()])
    for i in range(10):
        sender.stage(bytes([i]) * 8)
    assert sender.flush() == 10
    records: list[ts.TxTimestamp] = []
    deadline = time.monotonic() + 2
    while len(records) < 10 and time.monotonic() < deadline:
        select.select([tx], [], [], 0.1)  # error-queue data wakes POLLERR
        records += ts.drain_tx_timestamps(tx)
    now = time.time_ns()
    assert [r.id for r in records] == list(range(10))
    assert all(r.kind == ts.SCM_TSTAMP_SND for r in records)
    assert all(abs(now - r.ns) < SECOND for r in records)


def test_tsonly_records_carry_no_payload(pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    ts.enable_tx_software(tx)
    tx.sendto(b"payload", rx.getsockname())
    select.select([tx], [], [], 2)
    data, ancdata, _flags, _addr = tx.recvmsg(
        100, ts.TX_CONTROL_SIZE * 2, ts.MSG_ERRQUEUE | socket.MSG_DONTWAIT
    )
    assert data == b""
    record = ts.tx_record(ancdata)
    assert record is not None and record.id == 0


def test_drain_on_empty_queue_returns_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    tx, _rx = pair
    ts.enable_tx_software(tx)
    assert ts.drain_tx_timestamps(tx) == []


def test_parse_raw_control_buffer_skips_other_messages() -> None:
    other = _cmsg(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("@i", 64))
    stamp = _cmsg(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, _scm_timestamping(12, 345))
    buf = other + stamp
    assert ts.rx_timestamp_ns(buf, len(buf)) == 12 * SECOND + 345
    assert ts.rx_timestamp_ns(buf, len(other)) is None  # length cuts the timestamp off
    assert ts.rx_timestamp_ns(buf, len(buf) - 8) is None  # truncated message is not trusted


def test_parse_raw_control_buffer_that_starts_with_the_timestamp() -> None:
    stamp = _cmsg(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, _scm_timestamping(7, 8))
    other = _cmsg(socket.IPPROTO_IP, socket.IP_TTL, struct.pack("@i", 64))
    buf = stamp + other
    assert ts.rx_timestamp_ns(buf, len(buf)) == 7 * SECOND + 8
    assert ts.rx_timestamp_ns(stamp, len(stamp)) == 7 * SECOND + 8
    assert ts.rx_timestamp_ns(stamp, len(stamp) - 8) is None  # cut short: not trusted
    assert ts.rx_timestamp_ns(stamp, 0) is None


def test_parse_rejects_corrupt_lengths() -> None:
    corrupt = ts.CMSGHDR.pack(4, socket.SOL_SOCKET, ts.SCM_TIMESTAMPING) + b"\0" * 48
    assert ts.rx_timestamp_ns(corrupt, len(corrupt)) is None
    zero = _cmsg(socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, _scm_timestamping(0, 0))
    assert ts.rx_timestamp_ns(zero, len(zero)) is None  # all-zero ts[0]: no software stamp


def test_tx_record_needs_both_parts_and_the_timestamping_origin() -> None:
    stamp = (socket.SOL_SOCKET, ts.SCM_TIMESTAMPING, _scm_timestamping(1, 2))

    def ee(origin: int, ident: int) -> tuple[int, int, bytes]:
        err = ts.SOCK_EXTENDED_ERR.pack(42, origin, 0, 0, 0, ts.SCM_TSTAMP_SND, ident)
        return (socket.IPPROTO_IP, ts.IP_RECVERR, err + b"\0" * 16)

    assert ts.tx_record([stamp, ee(ts.SO_EE_ORIGIN_TIMESTAMPING, 7)]) == ts.TxTimestamp(
        7, SECOND + 2, ts.SCM_TSTAMP_SND
    )
    assert ts.tx_record([stamp]) is None
    assert ts.tx_record([ee(ts.SO_EE_ORIGIN_TIMESTAMPING, 7)]) is None
    assert ts.tx_record([stamp, ee(2, 7)]) is None  # an ICMP error, not a timestamp


def test_rx_control_size_is_one_cmsg_len() -> None:
    assert socket.CMSG_LEN(ts.SCM_TIMESTAMPING_STRUCT.size) == ts.RX_CONTROL_SIZE
