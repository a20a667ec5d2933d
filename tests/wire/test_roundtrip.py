"""Property tests: whatever the encoder accepts, the decoder gives back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeder.wire import (
    HEADER_SIZE,
    MAX_UDP_PAYLOAD,
    MIN_PACKET_SIZE,
    Message,
    Packet,
    PacketEncoder,
    PacketKind,
    Side,
    Trade,
    decode_header,
    decode_packet,
    encoded_size,
    max_levels_per_message,
)
from tests.wire import strategies as wst
from tests.wire.helpers import pack

PER_TYPE: dict[str, st.SearchStrategy[Message]] = {
    "trade": wst.trades,
    "book_delta": wst.book_deltas(),
    "book_levels": wst.book_levels(max_levels_per_message(1400)),
    "instrument_definition": wst.instrument_definitions,
    "status": wst.statuses,
}


@pytest.mark.parametrize("kind", list(PER_TYPE))
@given(data=st.data(), session_id=wst.u64, channel_id=wst.u16, first_seq=wst.seq)
@settings(max_examples=150)
def test_each_message_type_round_trips(
    kind: str, data: st.DataObject, session_id: int, channel_id: int, first_seq: int
) -> None:
    message = data.draw(PER_TYPE[kind])
    encoder = PacketEncoder(session_id, channel_id)
    encoder.begin(bytearray(1400), first_seq)
    encoder.add(message)
    send_time = data.draw(wst.u64)
    packet_bytes = encoder.finish(send_time)

    assert len(packet_bytes) == HEADER_SIZE + encoded_size(message)
    packet = decode_packet(packet_bytes)
    assert isinstance(packet, Packet), packet
    assert packet.messages == (message,)
    assert type(packet.messages[0]) is type(message)
    header = packet.header
    assert header == decode_header(packet_bytes)
    assert (header.kind, header.session_id, header.channel_id) == (
        PacketKind.DATA,
        session_id,
        channel_id,
    )
    assert (header.first_seq, header.msg_count, header.send_time_ns) == (first_seq, 1, send_time)


@given(
    messages=st.lists(
        wst.messages(max_levels=max_levels_per_message(MIN_PACKET_SIZE)), min_size=1, max_size=80
    ),
    max_packet_size=st.sampled_from([MIN_PACKET_SIZE, 600, 1400, 9000, MAX_UDP_PAYLOAD]),
    first_seq=st.integers(1, 2**40),
    session_id=wst.u64,
    channel_id=wst.u16,
)
@settings(max_examples=300)
def test_mixed_messages_split_into_full_packets_with_contiguous_sequences(
    messages: list[Message],
    max_packet_size: int,
    first_seq: int,
    session_id: int,
    channel_id: int,
) -> None:
    packets = pack(
        messages,
        session_id=session_id,
        channel_id=channel_id,
        first_seq=first_seq,
        max_packet_size=max_packet_size,
    )
    decoded: list[Message] = []
    expected_seq = first_seq
    for index, raw in enumerate(packets):
        assert len(raw) <= max_packet_size
        packet = decode_packet(raw)
        assert isinstance(packet, Packet), packet
        assert packet.header.first_seq == expected_seq
        assert packet.header.msg_count == len(packet.messages) >= 1
        assert (packet.header.session_id, packet.header.channel_id) == (session_id, channel_id)
        expected_seq = packet.header.next_seq
        decoded.extend(packet.messages)
        if index + 1 < len(packets):
            # A packet is only cut when the next message would not fit.
            following = decode_packet(packets[index + 1])
            assert isinstance(following, Packet)
            assert len(raw) + encoded_size(following.messages[0]) > max_packet_size
    assert decoded == messages
    assert expected_seq == first_seq + len(messages)


@pytest.mark.parametrize("kind", [PacketKind.HEARTBEAT, PacketKind.END_OF_SESSION])
@given(session_id=wst.u64, channel_id=wst.u16, next_seq=wst.seq, send_time=wst.u64)
def test_control_packets_round_trip(
    kind: PacketKind, session_id: int, channel_id: int, next_seq: int, send_time: int
) -> None:
    encoder = PacketEncoder(session_id, channel_id)
    write = encoder.heartbeat if kind is PacketKind.HEARTBEAT else encoder.end_of_session
    raw = write(bytearray(HEADER_SIZE), next_seq, send_time)
    assert len(raw) == HEADER_SIZE
    header = decode_header(raw)
    packet = decode_packet(raw)
    assert isinstance(packet, Packet), packet
    assert packet.header == header
    assert packet.messages == ()
    assert header == (kind, session_id, channel_id, next_seq, 0, send_time, 1, HEADER_SIZE)
    assert header.next_seq == next_seq


@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_decoder_accepts_any_byte_buffer(buffer_type: type) -> None:
    raw = pack([Trade(1, Side.BUY, 0, 100, 2, 3, 4, 5)])[0]
    packet = decode_packet(buffer_type(raw))
    assert isinstance(packet, Packet)
    assert packet == decode_packet(raw)
