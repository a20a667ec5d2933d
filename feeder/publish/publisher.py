"""Sequenced framing per channel: messages in, finished packets out to the send path.

Each channel has its own encoder, buffer and sequence counter. A packet is shipped when the next
message does not fit (size bound) or at ``poll`` (time bound: the runtime polls after each batch
of input and on a timer). Idle channels send heartbeats carrying the next sequence; ``close``
sends end-of-session. Sequence numbers are assigned when a packet is shipped and never reused.
With a line B (A/B feeds) every packet, heartbeat and end-of-session is submitted twice, same
bytes; with a retransmission store every data packet is also kept there for re-requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from feeder.publish.ab import b_index
from feeder.publish.channels import ChannelMap
from feeder.publish.sendpath import SendPath
from feeder.recovery.buffer import RetransmitBuffer
from feeder.wire import HEADER_SIZE, PacketEncoder, PacketFull


@dataclass
class ChannelStats:
    channel: int
    next_seq: int = 1
    messages: int = 0
    packets: int = 0
    heartbeats: int = 0
    bytes: int = 0


class _Writer:
    __slots__ = ("buf", "dest", "dest_b", "enc", "keep", "last_ship_ns", "stats")

    def __init__(self, enc: PacketEncoder, dest: int, channel: int, size: int) -> None:
        self.enc = enc
        self.buf = bytearray(size)
        self.dest = dest
        self.dest_b = -1  # line B's destination index; -1: no line B
        self.keep: RetransmitBuffer | None = None
        self.stats = ChannelStats(channel)
        self.last_ship_ns = 0


class Publisher:
    def __init__(
        self,
        path: SendPath,
        channels: ChannelMap,
        *,
        session_id: int | None = None,
        max_packet: int = 1400,
        heartbeat_ns: int = 1_000_000_000,
        clock: Callable[[], int] = time.time_ns,
        line_b: ChannelMap | None = None,
        retransmit: Mapping[int, RetransmitBuffer] | None = None,
    ) -> None:
        """``line_b``: line B's destinations (``feeder.publish.ab.line_b``), whose indexes follow
        line A's (the transport is opened with ``both_lines``). ``retransmit``: channel ->
        buffer keeping every data packet sent on it."""
        self.path = path
        self.channels = channels
        self.line_b = line_b
        if line_b is not None and line_b.channels != channels.channels:
            raise ValueError("line B must carry the same channels as line A")
        self.session_id = session_id if session_id is not None else time.time_ns()
        self.heartbeat_ns = heartbeat_ns
        self._clock = clock
        size = max_packet
        self._writers: dict[int, _Writer] = {}
        for k, (ch, dest) in enumerate(zip(channels.channels, channels.dest_of, strict=True)):
            w = _Writer(PacketEncoder(self.session_id, ch, max_packet), dest, ch, size)
            if line_b is not None:
                w.dest_b = b_index(channels, line_b, k)
            if retransmit is not None:
                w.keep = retransmit.get(ch)
            w.enc.begin(w.buf, 1)
            w.last_ship_ns = clock()
            self._writers[ch] = w
        self._control = bytearray(HEADER_SIZE)
        self.closed = False

    # --- hot path: one call per message -------------------------------------------------------

    def trade(
        self,
        channel: int,
        instrument_id: int,
        side: int,
        flags: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        w = self._writers[channel]
        try:
            w.enc.add_trade(
                instrument_id, side, flags, price, qty, trade_id, exchange_ts_ns, receive_ts_ns
            )
        except PacketFull:
            self._ship(w)
            w.enc.add_trade(
                instrument_id, side, flags, price, qty, trade_id, exchange_ts_ns, receive_ts_ns
            )

    def book_delta(
        self,
        channel: int,
        instrument_id: int,
        side: int,
        action: int,
        flags: int,
        price: int,
        qty: int,
        exchange_seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        w = self._writers[channel]
        try:
            w.enc.add_book_delta(
                instrument_id,
                side,
                action,
                flags,
                price,
                qty,
                exchange_seq,
                exchange_ts_ns,
                receive_ts_ns,
            )
        except PacketFull:
            self._ship(w)
            w.enc.add_book_delta(
                instrument_id,
                side,
                action,
                flags,
                price,
                qty,
                exchange_seq,
                exchange_ts_ns,
                receive_ts_ns,
            )

    def message(self, channel: int, add: Callable[[PacketEncoder], None]) -> None:
        """Any other message (levels, definitions, status): ``add`` writes it into the encoder."""
        w = self._writers[channel]
        try:
            add(w.enc)
        except PacketFull:
            self._ship(w)
            add(w.enc)

    def _ship(self, w: _Writer) -> None:
        enc = w.enc
        n = enc.count
        if n == 0:
            return
        st = w.stats
        now = self._clock()
        packet = enc.finish(now)
        first = st.next_seq
        st.next_seq += n
        st.messages += n
        st.packets += 1
        st.bytes += len(packet)
        w.last_ship_ns = now
        self.path.submit(packet, w.dest)  # copies: the buffer is free again right away
        if w.dest_b >= 0:
            self.path.submit(packet, w.dest_b)
        if w.keep is not None:
            w.keep.add(first, n, packet)
        enc.begin(w.buf, st.next_seq)

    # --- time bound, heartbeats, end of session -------------------------------------------------

    def poll(self) -> None:
        """Ship every non-empty packet, heartbeat idle channels, then send."""
        now = self._clock()
        for w in self._writers.values():
            if w.enc.count:
                self._ship(w)
            elif now - w.last_ship_ns >= self.heartbeat_ns:
                hb = w.enc.heartbeat(self._control, w.stats.next_seq, now)
                self.path.submit(hb, w.dest)
                if w.dest_b >= 0:
                    self.path.submit(hb, w.dest_b)
                w.stats.heartbeats += 1
                w.last_ship_ns = now
        self.path.flush()

    def close(self, drain_timeout_s: float = 5.0) -> bool:
        """Ship everything, send end-of-session on every channel and drain the send path."""
        if self.closed:
            return True
        for w in self._writers.values():
            self._ship(w)
        now = self._clock()
        for w in self._writers.values():
            end = w.enc.end_of_session(self._control, w.stats.next_seq, now)
            self.path.submit(end, w.dest)
            if w.dest_b >= 0:
                self.path.submit(end, w.dest_b)
        self.closed = True
        return self.path.drain(drain_timeout_s)

    def stats(self) -> list[ChannelStats]:
        return [w.stats for w in self._writers.values()]

    @property
    def messages(self) -> int:
        return sum(w.stats.messages + w.enc.count for w in self._writers.values())
