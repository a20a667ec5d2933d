"""Ethernet + IPv4 + UDP frames to multicast groups, written straight into packet memory.

AF_XDP bypasses the kernel's IP stack, so every header the kernel would have written is written
here, and made to match what a kernel UDP socket sends from the same interface:

- Ethernet: destination is the group's multicast MAC (01:00:5e + the low 23 bits of the group,
  RFC 1112), source is the interface's MAC, type IPv4.
- IPv4: no options, TOS 0, DF set (Linux sets it on UDP under the default path-MTU discovery),
  the socket's multicast TTL, an IP ID counting up from a random start, header checksum.
- UDP: the source port the caller reserved, and either the full checksum (``"full"``) or, for
  a sender that asks the kernel or NIC to finish it (AF_XDP TX metadata), the folded
  pseudo-header sum the kernel itself leaves there for checksum offload (``"partial"``).

Fields the kernel legitimately varies, and so are not compared with its frames: the IP ID
(Linux 6.x numbers DF datagrams with per-destination counters that start and jump at random;
older kernels sent 0) and with it the IP header checksum; the UDP source port (an unbound
kernel socket gets a random ephemeral one) and with it the UDP checksum. With the same source
port, every other byte is the kernel's (its UDP checksum too, when the sending device does not
offload checksums; with offload the kernel leaves only the pseudo-header sum in the field).

Headers are written once the payloads sit in their frame slots: for a batch, numpy builds all
of them, lengths and checksums included, in a fixed number of calls (``write_headers``); for a
few frames, whose batch call would cost more than it saves, one at a time (``write_header``).
Per datagram, Python then only copies the payload. The checksums rest on two
properties of the 16-bit one's-complement sum: it is the plain sum of the words modulo 0xFFFF
(0x10000 = 1 mod 0xFFFF), and summing byte-swapped words gives the byte-swapped sum (RFC 1071),
so payloads are summed as native little-endian words and the sum multiplied by 0x100.
"""

from __future__ import annotations

import ipaddress
import secrets
import struct
from collections.abc import Sequence
from typing import Literal

import numpy as np

#: Bytes of Ethernet (14) + IPv4 without options (20) + UDP (8) headers.
HEADER_LEN = 42
ETH_LEN = 14
IP_UDP_LEN = 28
ETHERTYPE_IPV4 = 0x0800
IPPROTO_UDP = 17
IP_DF = 0x4000

_ETH_IP = struct.Struct("!6s6sHBBHHHBBH4s4s")  # Ethernet + IPv4 header
_UDP = struct.Struct("!HHHH")
_IP_VARIABLE = struct.Struct("!HHHBBH")  # total length .. header checksum, at offset 16
_UDP_VARIABLE = struct.Struct("!HH")  # UDP length and checksum, at offset 38
#: Payload bytes from which numpy sums one frame faster than ``int.from_bytes`` (measured).
NUMPY_SUM_FROM = 512


class FrameTooLarge(ValueError):
    """The payload does not fit in one frame (the message gives the limit and why)."""


def parse_mac(text: str) -> bytes:
    """``"aa:bb:cc:dd:ee:ff"`` as 6 bytes; ``ValueError`` naming the bad input otherwise."""
    parts = text.split(":")
    try:
        if len(parts) != 6 or not all(len(p) == 2 for p in parts):
            raise ValueError
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(
            f"MAC address {text!r} must be six hex pairs like 02:00:00:00:00:01"
        ) from None


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def multicast_mac(group: str) -> bytes:
    """The Ethernet address IPv4 multicast ``group`` maps to: 01:00:5e + its low 23 bits."""
    addr = ipaddress.IPv4Address(group)
    if not addr.is_multicast:
        raise ValueError(
            f"{group} is not a multicast group (224.0.0.0/4): AF_XDP frames go to "
            "multicast groups only (no ARP for unicast)"
        )
    low = int(addr) & 0x7FFFFF
    return b"\x01\x00\x5e" + low.to_bytes(3, "big")


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words, modulo 0xFFFF (0..0xFFFE).

    An odd length is padded with a zero byte, as RFC 1071 says.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """The RFC 1071 checksum of ``data`` (what goes in an IPv4 header checksum field)."""
    r = ones_sum(data)
    # A sum of 0 mod 0xFFFF is 0xFFFF in one's complement (unless all data is zero).
    return 0xFFFF - r if r or not any(data) else 0


def _words(addr: bytes) -> int:
    return int.from_bytes(addr[:2], "big") + int.from_bytes(addr[2:], "big")


class FrameMemory:
    """A buffer of equal frame slots, seen as numpy bytes and little-endian words per slot.

    Slot ``i`` starts at byte ``i * frame_size``; a frame's payload starts at ``HEADER_LEN``.
    """

    def __init__(self, buffer: memoryview | bytearray, frame_size: int) -> None:
        if frame_size < HEADER_LEN + 2 or frame_size & 1:
            raise ValueError(f"frame size {frame_size} must be even and hold a header")
        if len(buffer) < frame_size or len(buffer) % frame_size:
            raise ValueError(f"buffer of {len(buffer)} bytes is no whole number of {frame_size}")
        self.frame_size = frame_size
        self.view = memoryview(buffer)
        self.bytes = np.frombuffer(buffer, dtype=np.uint8).reshape(-1, frame_size)
        self.words = self.bytes.view("<u2")
        self.flat_words = self.words.reshape(-1)  # same memory, cheaper to slice

    def release(self) -> None:
        """Drop the views (they pin the buffer)."""
        self.view.release()
        self.bytes = self.words = np.empty((0, 0), np.uint8)
        self.flat_words = np.empty(0, np.uint16)


class UdpFrames:
    """Frames from one source (MAC, IPv4, UDP port) to a fixed list of multicast destinations.

    Each destination's 42 header bytes and the constant parts of its two checksums are
    prebuilt. A frame starts ``headroom`` bytes into its slot (room the sender keeps in front,
    e.g. for TX metadata). ``max_payload`` follows the interface MTU and the slot size.
    """

    def __init__(
        self,
        src_mac: bytes,
        src_ip: str,
        src_port: int,
        destinations: Sequence[tuple[str, int]],
        *,
        ttl: int = 1,
        tos: int = 0,
        mtu: int = 1500,
        frame_size: int = 2048,
        first_id: int | None = None,
        headroom: int = 0,
        udp_checksum: Literal["full", "partial"] = "full",
    ) -> None:
        if len(src_mac) != 6:
            raise ValueError(f"source MAC must be 6 bytes, got {len(src_mac)}")
        if not destinations:
            raise ValueError("no destinations: give at least one (multicast group, port)")
        if not 0 <= ttl <= 255 or not 0 <= tos <= 255:
            raise ValueError(f"TTL {ttl} and TOS {tos} must be in 0..255")
        if not 1 <= src_port <= 65535:
            raise ValueError(f"UDP source port {src_port} must be in 1..65535")
        if headroom < 0 or headroom & 1:
            raise ValueError(f"headroom {headroom} must be even and not negative")
        if udp_checksum not in ("full", "partial"):
            raise ValueError(f"udp_checksum {udp_checksum!r} must be 'full' or 'partial'")
        src = ipaddress.IPv4Address(src_ip).packed
        self.src_mac = src_mac
        self.src_ip = src_ip
        self.src_port = src_port
        self.ttl = ttl
        self.mtu = mtu
        self.frame_size = frame_size
        self.headroom = headroom
        self.udp_checksum = udp_checksum
        self._partial = udp_checksum == "partial"
        #: IP ID of the next frame.
        self.next_id = secrets.randbits(16) if first_id is None else first_id & 0xFFFF
        by_mtu = mtu + ETH_LEN - HEADER_LEN
        # One byte of the slot stays free for the zero pad after an odd-length payload.
        by_frame = frame_size - headroom - 1 - HEADER_LEN
        #: Largest UDP payload one frame carries: the MTU's, or the frame slot's if smaller.
        self.max_payload = min(by_mtu, by_frame)
        if self.max_payload <= 0:
            raise ValueError(f"MTU {mtu} / frame size {frame_size} leave no room for a payload")
        self.limit_reason = (
            f"the {mtu}-byte MTU" if by_mtu <= by_frame else f"the {frame_size}-byte frame slot"
        )
        self.destinations = tuple((str(g), int(p)) for g, p in destinations)
        count = len(self.destinations)
        self.headers = np.zeros((count, HEADER_LEN), np.uint8)
        self._header_bytes: list[bytes] = []
        self._ip_sums = np.zeros(count, np.uint64)
        self._udp_sums = np.zeros(count, np.uint64)
        self._pseudo_sums = np.zeros(count, np.uint64)
        self._index: dict[tuple[bytes, int], int] = {}
        for i, (group, port) in enumerate(self.destinations):
            if not 1 <= port <= 65535:
                raise ValueError(f"destination port {port} must be in 1..65535")
            dst = ipaddress.IPv4Address(group).packed
            mac = multicast_mac(group)
            # Version 4 / 5-word header, TOS, length and ID (per frame), DF, TTL, UDP, checksum.
            ip = (0x45, tos, 0, 0, IP_DF, ttl, IPPROTO_UDP, 0, src, dst)
            eth_ip = _ETH_IP.pack(mac, src_mac, ETHERTYPE_IPV4, *ip)
            header = eth_ip + _UDP.pack(src_port, port, 0, 0)
            self._header_bytes.append(header)
            self.headers[i] = np.frombuffer(header, np.uint8)
            # Constant parts of the sums; the lengths are added per frame.
            self._ip_sums[i] = ones_sum(eth_ip[ETH_LEN:])
            self._pseudo_sums[i] = _words(src) + _words(dst) + IPPROTO_UDP
            self._udp_sums[i] = self._pseudo_sums[i] + src_port + port
            self._index[(dst, port)] = i
        self._ip_sum_list = [int(v) for v in self._ip_sums]
        self._udp_sum_list = [int(v) for v in self._udp_sums]
        self._pseudo_sum_list = [int(v) for v in self._pseudo_sums]

    def too_large(self, n: int) -> FrameTooLarge:
        """The error for an ``n``-byte payload over ``max_payload``."""
        return FrameTooLarge(
            f"datagram of {n} bytes exceeds the {self.max_payload}-byte UDP payload that "
            f"{self.limit_reason} allows"
        )

    @staticmethod
    def place(buffer: memoryview, offset: int, payload: bytes | memoryview) -> None:
        """Copy ``payload`` into the frame slot at ``offset``; pad an odd length with a zero."""
        start = offset + HEADER_LEN
        end = start + len(payload)
        buffer[start:end] = payload
        if end & 1:
            buffer[end] = 0

    def write_header(self, memory: FrameMemory, slot: int, length: int, dest: int) -> None:
        """Write the header of the frame in ``slot`` whose payload is already ``place``d (one
        frame at a time; ``write_headers`` is the batch version)."""
        offset = slot * memory.frame_size + self.headroom
        view = memory.view
        start = offset + HEADER_LEN
        ip_id = self.next_id
        self.next_id = (ip_id + 1) & 0xFFFF
        view[offset:start] = self._header_bytes[dest]
        ip_len = length + IP_UDP_LEN
        r = (self._ip_sum_list[dest] + ip_len + ip_id) % 0xFFFF
        ip_sum = 0xFFFF - r if r else 0
        _IP_VARIABLE.pack_into(
            view, offset + 16, ip_len, ip_id, IP_DF, self.ttl, IPPROTO_UDP, ip_sum
        )
        udp_len = length + 8
        if self._partial:
            # The pseudo-header's folded sum (never 0 for non-zero data), not complemented.
            udp_sum = (self._pseudo_sum_list[dest] + udp_len) % 0xFFFF or 0xFFFF
        else:
            if length < NUMPY_SUM_FROM:
                # With the zero pad after an odd length, the big-endian integer is the sum's.
                value = int.from_bytes(view[start : start + length + (length & 1)], "big")
            else:
                words = memory.flat_words[start >> 1 : (start + length + 1) >> 1]
                value = int(words.sum()) << 8
            # The UDP length is summed twice (pseudo-header and header). 0xFFFF - r is never
            # 0, as the kernel sends a computed checksum of 0 as 0xFFFF.
            udp_sum = 0xFFFF - (self._udp_sum_list[dest] + 2 * udp_len + value) % 0xFFFF
        _UDP_VARIABLE.pack_into(view, offset + 38, udp_len, udp_sum)

    def write_headers(
        self,
        memory: FrameMemory,
        slots: np.ndarray,
        lengths: np.ndarray,
        dests: np.ndarray,
    ) -> None:
        """Write the headers of the frames in ``slots`` whose payloads are already ``place``d.

        ``lengths``: payload bytes; ``dests``: destination numbers (all checked by the caller).
        """
        if not len(slots):
            return
        lengths = lengths.astype(np.uint64)
        head = self.headers[dests]
        fields = head.view(">u2")  # 21 big-endian words per header
        ip_len = lengths + IP_UDP_LEN
        ids = (np.arange(self.next_id, self.next_id + len(slots), dtype=np.uint64)) & 0xFFFF
        self.next_id = (self.next_id + len(slots)) & 0xFFFF
        r = (self._ip_sums[dests] + ip_len + ids) % 0xFFFF
        fields[:, 8] = ip_len
        fields[:, 9] = ids
        # A sum of 0 mod 0xFFFF is 0xFFFF in one's complement, whose complement is 0.
        fields[:, 12] = np.where(r == 0, 0, 0xFFFF - r)
        udp_len = lengths + 8
        fields[:, 19] = udp_len
        if self._partial:
            r = (self._pseudo_sums[dests] + udp_len) % 0xFFFF
            fields[:, 20] = np.where(r == 0, 0xFFFF, r)  # folded, not complemented
        else:
            sums = self._payload_sums(memory, slots, lengths)
            # The UDP length is summed twice (pseudo-header and header). 0xFFFF - r is never
            # 0, as the kernel sends a computed checksum of 0 as 0xFFFF.
            r = (self._udp_sums[dests] + 2 * udp_len + (sums << np.uint64(8))) % 0xFFFF
            fields[:, 20] = 0xFFFF - r
        memory.bytes[slots, self.headroom : self.headroom + HEADER_LEN] = head

    def _payload_sums(
        self, memory: FrameMemory, slots: np.ndarray, lengths: np.ndarray
    ) -> np.ndarray:
        """Per frame, the sum of its payload as little-endian words (zero-padded)."""
        words = (lengths + 1) >> 1
        widest = int(words.max())
        if not widest:
            return np.zeros(len(slots), np.uint64)
        # Payload words of every frame side by side, zero past each payload's end.
        first = (self.headroom + HEADER_LEN) // 2
        block = memory.words[slots, first : first + widest]
        if int(words.min()) != widest:
            block[np.arange(widest) >= words[:, None].astype(np.intp)] = 0
        sums: np.ndarray = block.sum(axis=1, dtype=np.uint64)
        return sums

    def build(self, payload: bytes, dest: int) -> bytes:
        """One frame as new bytes (tests, diagnostics)."""
        if len(payload) > self.max_payload:
            raise self.too_large(len(payload))
        if not 0 <= dest < len(self.destinations):
            raise IndexError(f"destination {dest} not in 0..{len(self.destinations) - 1}")
        buf = bytearray(self.frame_size)
        memory = FrameMemory(buf, self.frame_size)
        self.place(memory.view, self.headroom, payload)
        self.write_header(memory, 0, len(payload), dest)
        memory.release()
        return bytes(buf[self.headroom : self.headroom + HEADER_LEN + len(payload)])

    def destination_of(self, frame: bytes | memoryview) -> int:
        """The destination number of a frame this builder wrote; ``KeyError`` if none."""
        dst = bytes(frame[30:34])
        port = int.from_bytes(frame[36:38], "big")
        return self._index[(dst, port)]

    @staticmethod
    def payload_of(frame: bytes | memoryview) -> bytes:
        """The UDP payload of a frame (by the UDP length field)."""
        udp_len = int.from_bytes(frame[38:40], "big")
        return bytes(frame[HEADER_LEN : HEADER_LEN + udp_len - 8])
