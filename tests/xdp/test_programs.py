"""The programs run in the kernel (BPF_PROG_TEST_RUN) on real frames built with scapy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from tests.privilege import require_root
from xdp import bpf, loader, programs
from xdp.bpf import MapType
from xdp.maps import Map, u32
from xdp.programs import XDP_DROP, XDP_PASS, FilterCounter, PortFilterMaps

pytestmark = pytest.mark.privileged

FEED_PORT = 31000


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root("loading BPF programs needs root")


@pytest.fixture
def port_filter() -> Iterator[tuple[PortFilterMaps, loader.Program]]:
    with PortFilterMaps.create() as pf:
        spec = programs.port_filter(pf.counts.fd, pf.rules.fd)
        with loader.load(spec) as prog:
            yield pf, prog


def frame(*layers: object, payload: bytes = b"market data") -> bytes:
    packet = Ether(src="02:00:00:00:00:01", dst="01:00:5e:01:02:03")
    for layer in layers:
        packet = packet / layer
    return bytes(packet / payload)


def udp(dport: int, **ip: Any) -> bytes:
    return frame(IP(src="10.199.0.1", dst="239.1.2.3", **ip), UDP(sport=40000, dport=dport))


def run(prog: loader.Program, data: bytes) -> int:
    return bpf.prog_test_run(prog.fd, data).retval


def test_udp_to_a_port_with_a_drop_rule_is_dropped_and_counted(
    port_filter: tuple[PortFilterMaps, loader.Program],
) -> None:
    pf, prog = port_filter
    pf.set_rule(FEED_PORT, XDP_DROP)
    assert [run(prog, udp(FEED_PORT)) for _ in range(3)] == [XDP_DROP] * 3
    assert run(prog, udp(FEED_PORT + 1)) == XDP_PASS
    assert pf.port_packets(FEED_PORT) == 3
    assert pf.port_packets(FEED_PORT + 1) == 0
    assert pf.counters() == {"packets": 4, "ipv4": 4, "udp": 4, "matched": 3, "dropped": 3}


def test_a_pass_rule_counts_without_dropping(
    port_filter: tuple[PortFilterMaps, loader.Program],
) -> None:
    pf, prog = port_filter
    pf.set_rule(FEED_PORT, XDP_PASS)
    assert run(prog, udp(FEED_PORT)) == XDP_PASS
    assert pf.port_packets(FEED_PORT) == 1
    assert pf.counters()["matched"] == 1 and pf.counters()["dropped"] == 0
    assert pf.clear_rule(FEED_PORT) is True and pf.clear_rule(FEED_PORT) is False
    assert run(prog, udp(FEED_PORT)) == XDP_PASS
    assert pf.counters()["matched"] == 1


def test_ip_options_move_the_udp_header_and_are_followed(
    port_filter: tuple[PortFilterMaps, loader.Program],
) -> None:
    pf, prog = port_filter
    pf.set_rule(FEED_PORT, XDP_DROP)
    with_options = udp(FEED_PORT, options=[b"\x01\x01\x01\x00"])  # NOP NOP NOP EOL: IHL 6
    assert IP(with_options[14:]).ihl == 6
    assert run(prog, with_options) == XDP_DROP


@pytest.mark.parametrize(
    ("name", "data", "counted"),
    [
        ("arp", frame(ARP(pdst="10.199.0.2"), payload=b""), {"packets": 1}),
        ("vlan", frame(Dot1Q(vlan=5), IP(dst="239.1.2.3"), UDP(dport=FEED_PORT)), {"packets": 1}),
        ("tcp", frame(IP(dst="10.199.0.2"), TCP(dport=FEED_PORT)), {"packets": 1, "ipv4": 1}),
        ("icmp", frame(IP(dst="10.199.0.2"), ICMP()), {"packets": 1, "ipv4": 1}),
        ("later fragment", udp(FEED_PORT, frag=100), {"packets": 1, "ipv4": 1}),
        ("truncated ip", udp(FEED_PORT)[: 14 + 19], {"packets": 1}),
        ("truncated udp", udp(FEED_PORT)[: 14 + 20 + 7], {"packets": 1, "ipv4": 1}),
    ],
)
def test_frames_the_rule_does_not_apply_to_pass(
    port_filter: tuple[PortFilterMaps, loader.Program],
    name: str,
    data: bytes,
    counted: dict[str, int],
) -> None:
    pf, prog = port_filter
    pf.set_rule(FEED_PORT, XDP_DROP)
    assert run(prog, data) == XDP_PASS, name
    expected = {c.name.lower(): 0 for c in FilterCounter} | counted
    assert pf.counters() == expected
    assert pf.port_packets(FEED_PORT) == 0


def test_rules_reject_bad_ports_and_actions() -> None:
    with PortFilterMaps.create() as pf:
        with pytest.raises(ValueError, match=r"0\.\.65535"):
            pf.set_rule(70000, XDP_DROP)
        with pytest.raises(ValueError, match="XDP_PASS or XDP_DROP"):
            pf.set_rule(FEED_PORT, programs.XDP_TX)
        assert list(pf.rules) == []


def test_xsk_redirect_passes_frames_of_queues_without_a_socket() -> None:
    with Map.create(MapType.XSKMAP, 4, 4, 4, name="t_xsks") as xsks:
        spec = programs.xsk_redirect(xsks.fd)
        assert spec.insn_count == 6
        with loader.load(spec) as prog:
            # The XSKMAP is empty, so bpf_redirect_map falls back to its flags: XDP_PASS.
            assert run(prog, udp(FEED_PORT)) == XDP_PASS
            assert bpf.prog_info(prog.fd).map_ids == (bpf.map_info(xsks.fd).id,)


def test_c_sources_name_the_same_maps_as_the_instructions() -> None:
    with PortFilterMaps.create() as pf, Map.create(MapType.XSKMAP, 4, 4, 4) as xsks:
        spec = programs.port_filter(pf.counts.fd, pf.rules.fd, name="pf2")
        assert f"bpf_pseudo_fd(1, {pf.counts.fd})" in spec.c_source
        assert f"bpf_pseudo_fd(1, {pf.rules.fd})" in spec.c_source
        assert "int pf2(struct xdp_md *ctx)" in spec.c_source
        redirect = programs.xsk_redirect(xsks.fd)
        assert f"bpf_pseudo_fd(1, {xsks.fd})" in redirect.c_source
        # Slot numbers in the C source follow the FilterCounter enum.
        assert f"count({int(FilterCounter.DROPPED)});" in spec.c_source
        assert u32(0) in pf.counts
