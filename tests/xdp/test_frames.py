"""xdp.frames: Ethernet/IPv4/UDP frames checked field by field against scapy, batched header
writing over dirty frame slots, size limits and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from xdp.frames import (
    HEADER_LEN,
    FrameMemory,
    FrameTooLarge,
    UdpFrames,
    internet_checksum,
    multicast_mac,
    ones_sum,
    parse_mac,
)

SRC_MAC = "02:11:22:33:44:55"
DESTS = [("239.1.2.3", 31001), ("239.255.255.250", 9), ("224.0.0.1", 65535)]


def frames(**kw: object) -> UdpFrames:
    args: dict[str, object] = {"ttl": 1, "first_id": 0x1234}
    args.update(kw)
    return UdpFrames(parse_mac(SRC_MAC), "10.0.0.1", 40000, DESTS, **args)  # type: ignore[arg-type]


def scapy_frame(payload: bytes, dest: int, ip_id: int, ttl: int = 1) -> bytes:
    group, port = DESTS[dest]
    pkt = (
        Ether(src=SRC_MAC, dst=multicast_mac(group).hex(":"))
        / IP(src="10.0.0.1", dst=group, ttl=ttl, flags="DF", id=ip_id)
        / UDP(sport=40000, dport=port)
        / payload
    )
    return raw(pkt)


def test_multicast_mac_keeps_the_low_23_bits() -> None:
    assert multicast_mac("239.1.2.3") == bytes.fromhex("01005e010203")
    # The top bit of the second octet does not fit in the 23 bits: two groups, one MAC.
    assert multicast_mac("239.129.2.3") == multicast_mac("239.1.2.3")
    assert multicast_mac("224.0.0.251") == bytes.fromhex("01005e0000fb")
    with pytest.raises(ValueError, match="not a multicast group"):
        multicast_mac("10.0.0.1")


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 64, 511, 512, 1000, 1471, 1472])
@pytest.mark.parametrize("dest", [0, 1, 2])
def test_frame_equals_scapy(size: int, dest: int) -> None:
    f = frames()
    payload = os.urandom(size)
    built = f.build(payload, dest)
    assert built == scapy_frame(payload, dest, 0x1234)
    # And scapy, recomputing both checksums from scratch, agrees they are right.
    parsed = Ether(built)
    ip_sum, udp_sum = parsed[IP].chksum, parsed[UDP].chksum
    del parsed[IP].chksum, parsed[UDP].chksum
    again = Ether(raw(parsed))
    assert (again[IP].chksum, again[UDP].chksum) == (ip_sum, udp_sum)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=1472), ttl=st.integers(0, 255), ip_id=st.integers(0, 0xFFFF))
def test_any_payload_ttl_and_id_match_scapy(payload: bytes, ttl: int, ip_id: int) -> None:
    f = frames(ttl=ttl, first_id=ip_id)
    assert f.build(payload, 1) == scapy_frame(payload, 1, ip_id, ttl)


def test_udp_checksum_zero_is_sent_as_ffff() -> None:
    f = frames()
    base = f.build(b"\0\0", 0)
    udp_sum = int.from_bytes(base[40:42], "big")
    # Choose the payload word that makes the one's-complement sum 0xFFFF (checksum 0).
    word = udp_sum.to_bytes(2, "big")
    f.next_id = 0x1234
    frame = f.build(word, 0)
    assert frame[40:42] == b"\xff\xff"
    assert frame == scapy_frame(word, 0, 0x1234)


def pseudo_header_sum(group: str, udp_len: int) -> int:
    """The folded pseudo-header sum the kernel leaves for checksum offload."""
    words = bytes(IP(src="10.0.0.1", dst=group))[12:20] + bytes([0, 17]) + udp_len.to_bytes(2)
    r = sum(int.from_bytes(words[i : i + 2], "big") for i in range(0, 12, 2)) % 0xFFFF
    return r or 0xFFFF


@pytest.mark.parametrize("size", [0, 1, 64, 1472])
def test_partial_checksum_frames_leave_the_pseudo_header_sum(size: int) -> None:
    f = frames(udp_checksum="partial", headroom=24)
    assert f.max_payload == 1472
    payload = os.urandom(size)
    built = f.build(payload, 1)
    full = scapy_frame(payload, 1, 0x1234)
    assert built[:40] == full[:40] and built[42:] == full[42:]
    assert int.from_bytes(built[40:42], "big") == pseudo_header_sum(DESTS[1][0], size + 8)
    # Finished as the kernel does (sum from the UDP header on), it is the full checksum.
    finished = (0xFFFF - (ones_sum(built[34:]) or 0xFFFF)) or 0xFFFF
    assert finished == int.from_bytes(full[40:42], "big")


def test_ip_ids_count_up_and_wrap() -> None:
    f = frames(first_id=0xFFFE)
    ids = [int.from_bytes(f.build(b"x", 0)[18:20], "big") for _ in range(3)]
    assert ids == [0xFFFE, 0xFFFF, 0]


@pytest.mark.parametrize("checksum", ["full", "partial"])
@pytest.mark.parametrize("headroom", [0, 24])
def test_batch_over_dirty_slots_equals_single_frames(checksum: str, headroom: int) -> None:
    f = frames(udp_checksum=checksum, headroom=headroom)
    one = frames(udp_checksum=checksum, headroom=headroom)  # the same frames, one at a time
    size = 2048
    buf = bytearray(os.urandom(size * 16))  # slots full of old frames' bytes
    view = memoryview(buf)
    memory = FrameMemory(buf, size)
    payloads = [os.urandom(n) for n in (0, 5, 1472, 64, 63, 1, 1000, 2)]
    slots = [7, 3, 15, 0, 1, 2, 12, 9]
    dests = [i % 3 for i in range(len(payloads))]
    for slot, p in zip(slots, payloads, strict=True):
        f.place(view, slot * size + headroom, p)
    lengths = np.array([len(p) for p in payloads])
    f.write_headers(memory, np.array(slots), lengths, np.array(dests))
    for i, (slot, p) in enumerate(zip(slots, payloads, strict=True)):
        start = slot * size + headroom
        got = bytes(buf[start : start + HEADER_LEN + len(p)])
        assert got == one.build(p, dests[i]), f"frame {i} ({len(p)} bytes)"
        if checksum == "full":
            assert got == scapy_frame(p, dests[i], 0x1234 + i)
        assert f.destination_of(got) == dests[i]
        assert f.payload_of(got) == p
    memory.release()


def test_oversized_payload_is_refused_with_the_limit() -> None:
    f = frames()
    assert f.max_payload == 1472
    with pytest.raises(FrameTooLarge, match=r"1473 bytes exceeds the 1472-byte .* 1500-byte MTU"):
        f.build(bytes(1473), 0)
    jumbo = frames(mtu=9000)
    assert jumbo.max_payload == 2048 - 1 - HEADER_LEN
    with pytest.raises(FrameTooLarge, match="2048-byte frame slot"):
        jumbo.build(bytes(jumbo.max_payload + 1), 0)
    assert len(jumbo.build(bytes(jumbo.max_payload), 0)) == 2047


def test_internet_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is 220d.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"\0\0") == 0xFFFF


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"destinations": [("10.0.0.2", 5000)]}, "not a multicast group"),
        ({"destinations": []}, "no destinations"),
        ({"destinations": [("239.1.1.1", 0)]}, "port 0"),
        ({"src_port": 0}, "source port 0"),
        ({"ttl": 256}, "TTL 256"),
        ({"src_mac": b"\x01"}, "6 bytes"),
        ({"mtu": 20}, "no room"),
        ({"headroom": 3}, "headroom 3 must be even"),
        ({"udp_checksum": "none"}, "udp_checksum 'none'"),
    ],
)
def test_bad_construction_is_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "src_mac": parse_mac(SRC_MAC),
        "src_ip": "10.0.0.1",
        "src_port": 40000,
        "destinations": DESTS,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        UdpFrames(**args)  # type: ignore[arg-type]


def test_bad_mac_and_destination_index() -> None:
    with pytest.raises(ValueError, match="six hex pairs"):
        parse_mac("02:11:22:33:44")
    with pytest.raises(IndexError, match=r"destination 3 not in 0\.\.2"):
        frames().build(b"x", 3)
