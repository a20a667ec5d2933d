"""The decoder never raises: random bytes, random payloads behind a valid header, and every
kind of damage to valid packets all come back as a Packet or a Reject."""

from __future__ import annotations

import dataclasses
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeder.wire import (
    HEADER_SIZE,
    BookDelta,
    BookLevels,
    DeltaFlags,
    InstrumentDefinition,
    Level,
    LevelsFlags,
    Message,
    Packet,
    PacketHeader,
    Reject,
    Side,
    Status,
    Trade,
    TradeFlags,
    decode_header,
    decode_packet,
    layout,
)
from tests.wire import strategies as wst
from tests.wire.helpers import pack

FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Structured inputs cost more to generate; fewer of them reach as deep.
STRUCTURED = settings(FUZZ, max_examples=800)


def check(data: bytes) -> Packet | Reject:
    """Decode both ways; they must agree on the header and never raise."""
    header = decode_header(data)
    packet = decode_packet(data)
    assert isinstance(header, PacketHeader | Reject)
    assert isinstance(packet, Packet | Reject)
    if isinstance(header, Reject):
        assert packet == header
    elif isinstance(packet, Packet):
        assert packet.header == header
        assert len(packet.messages) + packet.skipped == header.msg_count
    return packet


@FUZZ
@given(st.binary(max_size=1500))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@st.composite
def plausible_packets(draw: st.DrawFn) -> bytes:
    """A header that passes the cheap checks most of the time, then arbitrary message bytes."""
    payload = draw(st.binary(max_size=600))
    kind = draw(st.sampled_from([1, 1, 1, 2, 3, 0, 7]))
    count = draw(st.integers(0, 40))
    header_len = draw(st.sampled_from([HEADER_SIZE, HEADER_SIZE, 44, 39]))
    first_seq = draw(st.sampled_from([1, 2**64 - 1, 0]) | wst.seq)
    head = layout.HEADER.pack(
        layout.MAGIC_U32, 1, kind, header_len, 1, first_seq, 2, 3, count, draw(wst.u32)
    )
    return head + bytes(max(0, header_len - HEADER_SIZE)) + payload


# Body bytes (after the 4-byte message header) of each known template in version 1.
_BODY_SIZES = {1: 46, 2: 47, 3: 31, 4: 40, 5: 20}


@st.composite
def framed_messages(draw: st.DrawFn) -> bytes:
    """Valid framing (length, template) around random bodies, mostly of plausible size, so the
    per-template checks (enums, levels, symbols, exponents) see random field values."""
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        template = draw(st.integers(0, 7))
        base = _BODY_SIZES.get(template, 0)
        if draw(st.integers(0, 9)) == 0:
            body = draw(st.binary(max_size=base + 8))  # often too short
        else:
            fields = bytearray(draw(st.binary(min_size=base, max_size=base + 24)))
            if template == 3:  # BookLevels: a few levels, usually as many as it claims
                n_bids, n_asks = draw(st.integers(0, 3)), draw(st.integers(0, 3))
                fields[5], fields[6] = n_bids, n_asks
                need = 16 * (n_bids + n_asks)
                fields[base:] = draw(st.binary(min_size=max(0, need - 1), max_size=need + 8))
            body = bytes(fields)
        parts.append(struct.pack("<HH", 4 + len(body), template) + body)
    head = layout.HEADER.pack(layout.MAGIC_U32, 1, 1, HEADER_SIZE, 1, 1, 2, 3, len(parts), 0)
    return head + b"".join(parts)


@STRUCTURED
@given(plausible_packets())
def test_random_payload_behind_a_plausible_header(data: bytes) -> None:
    check(data)


@STRUCTURED
@given(framed_messages())
def test_random_message_bodies_with_valid_framing(data: bytes) -> None:
    result = check(data)
    if isinstance(result, Packet) and result.messages:
        # Whatever the decoder accepts, the encoder accepts too and writes back identically,
        # once flag bits this version does not define (kept by the decoder) are cleared.
        known = [_defined_flags_only(message) for message in result.messages]
        again = [decode_packet(packet) for packet in pack(known)]
        assert [m for p in again if isinstance(p, Packet) for m in p.messages] == known


def _defined_flags_only(message: Message) -> Message:
    masks = {Trade: TradeFlags, BookDelta: DeltaFlags, BookLevels: LevelsFlags}
    flag_type = masks.get(type(message))
    if flag_type is None or isinstance(message, InstrumentDefinition | Status):
        return message
    mask = sum(int(member) for member in flag_type)
    return dataclasses.replace(message, flags=message.flags & mask)


valid_packets = st.lists(wst.messages(max_levels=20), min_size=1, max_size=12).map(
    lambda messages: pack(messages)[0]
)


@settings(max_examples=200, deadline=None)
@given(valid_packets, st.data())
def test_mutations_of_valid_packets(data: bytes, draw: st.DataObject) -> None:
    assert isinstance(decode_packet(data), Packet)
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        position = draw.draw(st.integers(0, len(mutated) - 1))
        choice = draw.draw(st.sampled_from(["flip", "byte", "u16"]))
        if choice == "flip":
            mutated[position] ^= 1 << draw.draw(st.integers(0, 7))
        elif choice == "byte":
            mutated[position] = draw.draw(st.integers(0, 255))
        elif position + 2 <= len(mutated):
            struct.pack_into("<H", mutated, position, draw.draw(wst.u16))
    check(bytes(mutated))


@settings(max_examples=50, deadline=None)
@given(valid_packets)
def test_every_truncation_is_rejected(data: bytes) -> None:
    for end in range(len(data)):
        result = check(data[:end])
        assert isinstance(result, Reject), (end, result)


@settings(max_examples=50, deadline=None)
@given(valid_packets)
def test_every_wrong_count_is_rejected(data: bytes) -> None:
    packet = decode_packet(data)
    assert isinstance(packet, Packet)
    real = packet.header.msg_count
    for count in [*range(real + 5), 0xFFFF]:
        if count != real:
            result = check(data[:34] + struct.pack("<H", count) + data[36:])
            assert isinstance(result, Reject), (count, result)


def _message_offsets(data: bytes) -> list[int]:
    offsets, pos = [], HEADER_SIZE
    while pos < len(data):
        offsets.append(pos)
        pos += struct.unpack_from("<H", data, pos)[0]
    return offsets


@settings(max_examples=50, deadline=None)
@given(valid_packets)
def test_lengths_pointing_past_the_end_are_rejected(data: bytes) -> None:
    for pos in _message_offsets(data):
        remaining = len(data) - pos
        for length in (remaining + 1, remaining + 1000, 0xFFFF):
            result = check(data[:pos] + struct.pack("<H", length) + data[pos + 2 :])
            assert isinstance(result, Reject), (pos, length, result)
            assert result.code == "truncated_message"


def test_every_single_bit_flip_of_one_packet() -> None:
    messages: list[Message] = [
        Trade(1, Side.BUY, 1, 2, 3, 4, 5, 6),
        BookLevels(1, 1, 2, 3, 4, (Level(1, 2),), (Level(3, 4),)),
        InstrumentDefinition(1, 2, 3, 4, "ETH-USD"),
        Status(0, 1, 5, 6, 7),
    ]
    data = pack(messages)[0]
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        check(bytes(flipped))
