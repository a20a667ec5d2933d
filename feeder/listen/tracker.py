"""Per-channel sequence tracking: gaps, duplicates, out-of-order, heartbeats, sessions.

Sequence numbers count messages (MoldUDP64 style): a packet with ``first`` and ``count`` carries
messages ``first .. first+count-1``. The tracker keeps the next expected sequence and the ranges
still missing, so a late copy of a lost packet (out-of-order, or a recovery) is told apart from a
duplicate of one already seen. All of it is a few integer operations per packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A pathological stream must not grow the missing list without bound; beyond this many
# ranges the oldest are given up (still counted in gap_messages, just no longer fillable).
MAX_MISSING_RANGES = 4096


@dataclass
class ChannelState:
    channel: int
    session: int | None = None
    next_seq: int | None = None
    first_seq: int | None = None
    missing: list[list[int]] = field(default_factory=list)  # [start, end) ranges, ascending
    packets: int = 0
    messages: int = 0
    heartbeats: int = 0
    gaps: int = 0
    gap_messages: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    filled_messages: int = 0
    sessions: int = 0
    ended: bool = False
    abandoned_messages: int = 0

    def outstanding(self) -> int:
        return sum(end - start for start, end in self.missing)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "session": self.session,
            "first_seq": self.first_seq,
            "next_seq": self.next_seq,
            "packets": self.packets,
            "messages": self.messages,
            "heartbeats": self.heartbeats,
            "gaps": self.gaps,
            "gap_messages": self.gap_messages,
            "missing_messages": self.outstanding() + self.abandoned_messages,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "sessions": self.sessions,
            "ended": self.ended,
        }


class SequenceTracker:
    """Tracks every channel seen; one instance per receiver, one writer."""

    def __init__(self) -> None:
        self.channels: dict[int, ChannelState] = {}

    def state(self, channel: int) -> ChannelState:
        st = self.channels.get(channel)
        if st is None:
            st = self.channels[channel] = ChannelState(channel)
        return st

    def on_data(self, session: int, channel: int, first: int, count: int) -> int:
        """Account a data packet; returns how many of its messages are new (not duplicates)."""
        st = self.channels.get(channel) or self.state(channel)
        if st.session != session:
            self._new_session(st, session, first)
        st.packets += 1
        end = first + count
        nxt = st.next_seq
        assert nxt is not None
        if first == nxt:
            st.next_seq = end
            st.messages += count
            return count
        if first > nxt:
            self._gap(st, nxt, first)
            st.next_seq = end
            st.messages += count
            return count
        # first < nxt: a late copy. New if it fills missing ranges or runs past next_seq.
        fresh = self._fill(st, first, min(end, nxt))
        if end > nxt:
            fresh += end - nxt
            st.next_seq = end
        if fresh:
            st.out_of_order += 1
            st.messages += fresh
        else:
            st.duplicates += 1
        return fresh

    def on_heartbeat(self, session: int, channel: int, next_seq: int, end: bool = False) -> None:
        """A heartbeat (or end of session) says which sequence comes next: anything before it
        that we never saw is a gap."""
        st = self.channels.get(channel) or self.state(channel)
        if st.session != session:
            self._new_session(st, session, next_seq)
        st.heartbeats += 1
        nxt = st.next_seq
        assert nxt is not None
        if next_seq > nxt:
            self._gap(st, nxt, next_seq)
            st.next_seq = next_seq
        if end:
            st.ended = True

    @staticmethod
    def _new_session(st: ChannelState, session: int, first: int) -> None:
        if st.session is not None:
            st.sessions += 1
            # What the old session never delivered is lost for good.
            st.abandoned_messages += st.outstanding()
            st.missing.clear()
            st.ended = False
        else:
            st.sessions = 1
        st.session = session
        st.next_seq = first
        st.first_seq = first

    @staticmethod
    def _gap(st: ChannelState, start: int, end: int) -> None:
        st.gaps += 1
        st.gap_messages += end - start
        st.missing.append([start, end])
        if len(st.missing) > MAX_MISSING_RANGES:
            s, e = st.missing.pop(0)
            st.abandoned_messages += e - s

    @staticmethod
    def _fill(st: ChannelState, start: int, end: int) -> int:
        """Remove [start, end) from the missing ranges; returns how many messages it filled."""
        filled = 0
        keep: list[list[int]] = []
        for s, e in st.missing:
            lo, hi = max(s, start), min(e, end)
            if lo >= hi:
                keep.append([s, e])
                continue
            filled += hi - lo
            if s < lo:
                keep.append([s, lo])
            if hi < e:
                keep.append([hi, e])
        if filled:
            st.missing = keep
            st.filled_messages += filled
        return filled
