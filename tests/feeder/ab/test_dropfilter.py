"""Loss injection: the kernel drops exactly the packets a rule names (a real socket filter)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from feeder.listen.dropfilter import DropRule, attach
from feeder.wire import PacketEncoder


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.2)
        tx.connect(rx.getsockname())
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def data(first: int) -> bytes:
    enc = PacketEncoder(1, 1)
    enc.begin(bytearray(1400), first)
    enc.add_trade(1, 1, 0, 100, 1, 1, 0, 0)
    return bytes(enc.finish(first))


def drain(rx: socket.socket) -> list[bytes]:
    out = []
    try:
        while True:
            out.append(rx.recv(2048))
            rx.settimeout(0.02)
    except TimeoutError:
        return out


def test_only_matching_data_packets_are_dropped(pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    rule = DropRule(7, 3)
    attach(rx, rule)
    seqs = [1, 3, 10, 11, 2**32 + 3, 2**40 + 5, 24, 65_539]
    heartbeat = bytes(PacketEncoder(1, 1).heartbeat(bytearray(40), 3, 1))
    garbage = [b"", b"xy", b"MDFW" + b"\x01" * 60]
    for seq in seqs:
        tx.send(data(seq))
    for g in (heartbeat, *garbage):
        tx.send(g)
    got = drain(rx)
    kept = [seq for seq in seqs if not rule.matches(seq)]
    assert kept == [1, 11, 2**40 + 5, 65_539]
    assert [int.from_bytes(d[16:24], "little") for d in got[: len(kept)]] == kept
    assert got[len(kept) :] == [heartbeat, *garbage]  # never judged: not DATA of our format


def test_rules_parse_and_refuse_nonsense() -> None:
    assert DropRule.parse("20:7") == DropRule(20, 7) and str(DropRule(20, 7)) == "20:7"
    for bad in ("20", "x:1", "1:0", "5:5", "-3:1", "70000:1"):
        with pytest.raises(ValueError, match="drop rule"):
            DropRule.parse(bad)
