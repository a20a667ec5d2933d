"""Tick-to-wire latency: exchange frame read -> kernel TX timestamp of the packet carrying it.

The kernel hands each sent datagram back on the socket's error queue with its TX software
timestamp (SO_TIMESTAMPING without OPT_TSONLY returns the packet itself). Every market message
in our packets carries ``receive_ts_ns`` (when its exchange frame was read), so the latency of
each message is read off the returned packet: nothing extra is done or stored on the hot path,
and the work happens when the error queue is drained (the publisher's tick).
"""

from __future__ import annotations

import struct

from feeder.metrics.histogram import Histogram
from feeder.wire import PacketHeader, PacketKind, decode_header
from feeder.wire.layout import (
    BOOK_DELTA_FIELDS,
    BOOK_LEVELS_FIELDS,
    MSG_HEADER,
    TRADE_FIELDS,
    Fields,
    Template,
)


def _offset(fields: Fields, name: str) -> int:
    """Byte offset of ``name`` inside a message (after its 4-byte length/template header)."""
    fmt = "<HH"
    for field_name, code in fields:
        if field_name == name:
            return struct.calcsize(fmt)
        fmt += code
    raise KeyError(name)


# Fields are only ever appended, so these offsets hold for every later version too.
RX_OFFSET = {
    int(Template.TRADE): _offset(TRADE_FIELDS, "receive_ts_ns"),
    int(Template.BOOK_DELTA): _offset(BOOK_DELTA_FIELDS, "receive_ts_ns"),
    int(Template.BOOK_LEVELS): _offset(BOOK_LEVELS_FIELDS, "receive_ts_ns"),
}
_U64 = struct.Struct("<Q")


class TickToWire:
    """``since_ns``: only messages whose frame was read at or after it are timed. The runtime
    sets it when every book is first live, so deltas buffered during the start-up snapshot
    procedure (whose wait is the REST round trip, not the hot path) stay out of the figure;
    they are counted in ``not_timed``. 0 times everything."""

    def __init__(self, histogram: Histogram | None = None, since_ns: int = 0) -> None:
        self.histogram = histogram or Histogram()
        self.packets = 0
        self.since_ns = since_ns
        self.not_timed = 0
        # With A/B lines every packet is sent (and stamped) twice, back to back: only the first
        # copy counts. Packets of a channel go out in sequence order, so "seen" is one number.
        self._last_first_seq: dict[tuple[int, int], int] = {}

    def on_packet(self, payload: memoryview, tx_ns: int) -> None:
        """One sent packet (our wire bytes) and its TX timestamp."""
        header = decode_header(payload)
        if type(header) is not PacketHeader or header.kind is not PacketKind.DATA:
            return
        key = (header.session_id, header.channel_id)
        if header.first_seq <= self._last_first_seq.get(key, 0):
            return  # the other line's copy
        self._last_first_seq[key] = header.first_seq
        self.packets += 1
        size = len(payload)
        pos = header.header_len
        record = self.histogram.record
        unpack_msg, unpack_u64 = MSG_HEADER.unpack_from, _U64.unpack_from
        offsets = RX_OFFSET
        since = self.since_ns
        while pos + 4 <= size:
            length, template = unpack_msg(payload, pos)
            if length < 4 or pos + length > size:
                return
            off = offsets.get(template)
            if off is not None and off + 8 <= length:
                rx = unpack_u64(payload, pos + off)[0]
                if rx >= since and rx:
                    record(tx_ns - rx)
                elif rx:
                    self.not_timed += 1
            pos += length
