"""Test helpers: pack message lists into packets the way a publisher would."""

from __future__ import annotations

from collections.abc import Sequence

from feeder.wire import PacketEncoder, encoded_size
from feeder.wire.messages import Message


def pack(
    messages: Sequence[Message],
    *,
    session_id: int = 1,
    channel_id: int = 0,
    first_seq: int = 1,
    max_packet_size: int = 1400,
    send_time_ns: int = 123,
) -> list[bytes]:
    """Encode ``messages`` in order, starting a new packet whenever the next one does not fit."""
    encoder = PacketEncoder(session_id, channel_id, max_packet_size)
    packets: list[bytes] = []
    seq = first_seq
    encoder.begin(bytearray(max_packet_size), seq)
    for message in messages:
        if not encoder.fits(encoded_size(message)):
            seq += encoder.count
            packets.append(bytes(encoder.finish(send_time_ns)))
            encoder.begin(bytearray(max_packet_size), seq)
        encoder.add(message)
    if encoder.count:
        packets.append(bytes(encoder.finish(send_time_ns)))
    return packets
