"""/proc/net/snmp parsing (fake files), diffs, and real reads per namespace."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from feeder.net import snmp
from feeder.net.topology import TwoHostTopology

UDP_NAMES = (
    "InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors "
    "IgnoredMulti MemErrors"
)
FAKE = f"""\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1000
Tcp: RtoAlgorithm MaxConn
Tcp: 1 -1
Udp: {UDP_NAMES}
Udp: 500 2 7 480 7 0 0 0 0
"""


def test_parse_fake_file(tmp_path: Path) -> None:
    path = tmp_path / "snmp"
    path.write_text(FAKE)
    parsed = snmp.read_snmp(path)
    assert list(parsed) == ["Ip", "Tcp", "Udp"]
    assert parsed["Tcp"]["MaxConn"] == -1
    assert parsed["Udp"]["RcvbufErrors"] == 7
    assert parsed["Udp"]["InDatagrams"] == 500


def test_diff_and_losses() -> None:
    before = snmp.parse_snmp(FAKE)
    after = snmp.parse_snmp(
        FAKE.replace("Udp: 500 2 7 480 7 0 0 0 0", "Udp: 800 2 9 480 9 0 0 0 0")
    )
    delta = snmp.diff(before, after)
    assert delta["Udp"]["InDatagrams"] == 300
    assert delta["Ip"]["InReceives"] == 0
    assert snmp.udp_losses(delta) == {"RcvbufErrors": 2, "InErrors": 2}
    assert snmp.udp_losses(snmp.diff(before, before)) == {}


def test_diff_ignores_counters_missing_on_one_side() -> None:
    delta = snmp.diff({"Udp": {"A": 1}}, {"Udp": {"A": 3, "B": 5}, "Ip": {"C": 1}})
    assert delta == {"Udp": {"A": 2}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Udp: InDatagrams\n", "odd number"),
        ("Udp: InDatagrams NoPorts\nUdp: 1\n", "2 counter names but 1 values"),
        ("Udp: InDatagrams\nIp: 1\n", "expected two 'Udp:' lines"),
        ("Udp: InDatagrams\nUdp: x\n", "non-integer"),
        ("garbage\nmore garbage\n", "expected two"),
    ],
)
def test_malformed_files_are_clear_errors(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "snmp"
    path.write_text(text)
    with pytest.raises(snmp.SnmpFormatError, match=message) as info:
        snmp.read_snmp(path)
    assert str(path) in str(info.value)


def test_real_read_counts_a_loopback_datagram() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        before = snmp.read_snmp()
        tx.sendto(b"x", rx.getsockname())
        rx.recv(10)
        after = snmp.read_snmp_of_pid(os.getpid())
    # Other processes may add traffic concurrently: at least ours was counted.
    assert snmp.diff(before, after)["Udp"]["InDatagrams"] >= 1
    assert {"InDatagrams", "RcvbufErrors", "SndbufErrors", "NoPorts"} <= set(after["Udp"])


@pytest.mark.privileged
def test_counters_are_per_namespace(topo: TwoHostTopology) -> None:
    before_b = snmp.read_snmp_in(topo.b.netns)
    before_a = snmp.read_snmp_in(topo.a.netns)
    with topo.b.socket() as rx, topo.a.socket() as tx:
        rx.bind((topo.b.address, 40000))
        rx.settimeout(2)
        # Unheard datagram first: receiving the later ones proves it was processed (in order).
        tx.sendto(b"x", (topo.b.address, 40001))
        for _ in range(3):
            tx.sendto(b"x", (topo.b.address, 40000))
            rx.recv(10)
        in_b = snmp.diff(before_b, snmp.read_snmp_in(topo.b.netns))["Udp"]
        in_a = snmp.diff(before_a, snmp.read_snmp_in(topo.a.netns))["Udp"]
    assert (in_b["InDatagrams"], in_b["NoPorts"], in_b["OutDatagrams"]) == (3, 1, 0)
    assert (in_a["OutDatagrams"], in_a["InDatagrams"]) == (4, 0)
