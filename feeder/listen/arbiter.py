"""A/B line arbitration in front of the sequence tracker: first copy wins, gaps need both lines.

The publisher sends every packet twice, on line A and line B (same bytes). For each packet the
arbiter decides before the tracker sees anything:

- the first copy of a sequence range goes to the feed (``deliver``); a later copy of it, from
  either line, is a *line duplicate*: counted for its line, never a feed duplicate;
- a packet that would open a hole in the feed is *held* (copied) while the other line may still
  bring the missing messages: it has not yet passed the hole (or not yet sent anything on this
  channel) and it is not down (heard from within ``line_down_ns``). When it brings them, the
  hole closes and the held packets follow in order: no gap. When both lines have passed the
  hole, it was lost on both: the held packet is released and the tracker records the gap.
- a hold ends after ``max_hold_ns`` (a slow line must not stall the feed), judged by ``expire``
  between reads against the packet's kernel receive time: a receiver working through a backlog
  has read both lines' queues by then, so a line is never given up just because its socket was
  read second. Holds never grow past ``max_held`` packets.

Each line keeps its own expected sequence, so what a line skipped is known per line; at the end
the ranges skipped by both lines are intersected: those were lost on both, the rest was lost on
one line only and filled by the other. Packets from an older session than the feed's are
stragglers from before a publisher restart and dropped, while the newer session is alive (a
publisher whose clock stepped back may restart with a lower session id).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from feeder.listen.tracker import ChannelState, SequenceTracker
from feeder.wire import PacketHeader, PacketKind

LINE_NAMES = ("a", "b")
MAX_SKIPPED_RANGES = 4096  # per line and channel; older ones only count, no intersection
SESSION_ALIVE_NS = 2_000_000_000  # two heartbeat intervals
DATA = PacketKind.DATA

ReadableBuffer = bytes | bytearray | memoryview
Deliver = Callable[[PacketHeader, ReadableBuffer], object]


@dataclass
class LineCounters:
    packets: int = 0  # data packets received on this line
    heartbeats: int = 0  # heartbeat / end-of-session packets received on this line
    first: int = 0  # data packets whose copy from this line reached the feed first
    duplicates: int = 0  # data packets that had already come on the other line (dropped)
    stale: int = 0  # packets of an older session (dropped)
    skipped_messages: int = 0  # messages this line never brought (lost on it)


class _Held(NamedTuple):
    first: int
    arrival: int  # ns; also keeps equal ``first`` in arrival order
    line: int
    header: PacketHeader
    data: bytes


@dataclass
class _Channel:
    session: int
    created_ns: int
    last_ns: int = 0  # last packet of this session, either line
    next: list[int | None] = field(default_factory=lambda: [None, None])
    skipped: list[list[tuple[int, int]]] = field(default_factory=lambda: [[], []])
    held: list[_Held] = field(default_factory=list)
    last_control: tuple[int, int, int] | None = None  # (kind, seq, send time) last delivered


def _overlap_size(x: list[tuple[int, int]], y: list[tuple[int, int]]) -> int:
    """Messages in both sorted range lists."""
    i = j = total = 0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if lo < hi:
            total += hi - lo
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return total


def novel(st: ChannelState, first: int, end: int) -> bool:
    """Whether ``[first, end)`` brings the feed anything: past its next sequence, or into a
    range it is missing."""
    nxt = st.next_seq
    if nxt is None or end > nxt:
        return True
    missing = st.missing
    return bool(missing) and any(s < end and first < e for s, e in missing)


class Arbiter:
    def __init__(
        self,
        tracker: SequenceTracker,
        deliver: Deliver,
        *,
        max_hold_ns: int = 20_000_000,
        max_held: int = 4096,
        line_down_ns: int = 1_000_000_000,
        clock: Callable[[], int] = time.time_ns,  # the clock of kernel RX timestamps
    ) -> None:
        self.tracker = tracker
        self._deliver = deliver
        self.max_hold_ns = max_hold_ns
        self.max_held = max_held
        self.line_down_ns = line_down_ns
        self._clock = clock
        self._channels: dict[int, _Channel] = {}
        self._heard_ns = [0, 0]  # last packet on each line, any channel
        self.lines = (LineCounters(), LineCounters())
        self.held = 0  # packets ever held
        self.held_peak = 0
        self.released_on_timeout = 0
        self.released_on_overflow = 0
        self._lost_on_both = 0  # from retired sessions / ranges

    # --- per packet -----------------------------------------------------------------------------

    def offer(
        self, line: int, h: PacketHeader, data: ReadableBuffer, arrived_ns: int | None = None
    ) -> None:
        """One valid packet received on ``line`` (0 = A, 1 = B) at ``arrived_ns`` (its kernel
        RX timestamp; None: now)."""
        ch = h.channel_id
        now = self._clock()
        c = self._channels.get(ch)
        if c is None:
            c = self._channels[ch] = _Channel(h.session_id, now)
        elif h.session_id != c.session:
            if h.session_id < c.session and now - c.last_ns < SESSION_ALIVE_NS:
                self.lines[line].stale += 1
                return
            self._new_session(c, h.session_id, now)
        c.last_ns = now
        lc = self.lines[line]
        first = h.first_seq
        if h.kind is DATA:
            lc.packets += 1
            end = first + h.msg_count
        else:
            lc.heartbeats += 1
            end = first
        self._heard_ns[line] = now
        ln = c.next[line]
        if ln is None or end > ln:
            if ln is not None and first > ln:
                self._skipped(c, line, ln, first)
            c.next[line] = end
        st = self.tracker.channels.get(ch)
        fn = st.next_seq if st is not None and st.session == c.session else None
        if fn is None or first <= fn:
            self._pass(c, st, line, h, data)
        else:
            self._hold(c, line, h, data, now if arrived_ns is None else arrived_ns)
        if c.held:
            self._drain(c, now, None)

    def _skipped(self, c: _Channel, line: int, start: int, end: int) -> None:
        self.lines[line].skipped_messages += end - start
        ranges = c.skipped[line]
        ranges.append((start, end))
        if len(ranges) > MAX_SKIPPED_RANGES:
            ranges.pop(0)

    def _pass(
        self,
        c: _Channel,
        st: ChannelState | None,
        line: int,
        h: PacketHeader,
        data: ReadableBuffer,
    ) -> None:
        """Deliver the packet if it is the first copy, else count a line duplicate."""
        if h.kind is DATA:
            if st is None or st.session != c.session or novel(st, h.first_seq, h.next_seq):
                self.lines[line].first += 1
                self._deliver(h, data)
            else:
                self.lines[line].duplicates += 1
            return
        # Heartbeats repeat the same sequence while a channel is idle; the copies of one
        # heartbeat on both lines share its send time.
        key = (int(h.kind), h.first_seq, h.send_time_ns)
        if key != c.last_control:
            c.last_control = key
            self._deliver(h, data)

    def _hold(
        self, c: _Channel, line: int, h: PacketHeader, data: ReadableBuffer, now: int
    ) -> None:
        if len(c.held) >= self.max_held:
            self.released_on_overflow += 1
            self._release(c, c.held.pop(0))
        bisect.insort(c.held, _Held(h.first_seq, now, line, h, bytes(data)))
        self.held += 1
        self.held_peak = max(self.held_peak, len(c.held))

    def _release(self, c: _Channel, held: _Held) -> None:
        st = self.tracker.channels.get(held.header.channel_id)
        self._pass(c, st, held.line, held.header, held.data)

    def _may_still_come(self, c: _Channel, seq: int, now: int) -> bool:
        """Whether a line that is not down has not yet passed ``seq`` (may still bring it)."""
        for line in (0, 1):
            ln = c.next[line]
            up = now - max(self._heard_ns[line], c.created_ns) < self.line_down_ns
            if up and (ln is None or ln <= seq):
                return True
        return False

    def _drain(self, c: _Channel, now: int, cutoff: int | None) -> None:
        """Release held packets that no longer open a hole, whose hole is lost for good, or
        (with a ``cutoff``) that arrived before it."""
        while c.held:
            head = c.held[0]
            st = self.tracker.channels.get(head.header.channel_id)
            fn = st.next_seq if st is not None and st.session == c.session else None
            if fn is not None and head.first > fn and self._may_still_come(c, fn, now):
                if cutoff is None or head.arrival > cutoff:
                    return
                self.released_on_timeout += 1
            c.held.pop(0)
            self._release(c, head)

    # --- time, sessions, end of run -------------------------------------------------------------

    def expire(self) -> None:
        """Release holds that waited ``max_hold_ns`` (call it between reads, regularly)."""
        now = self._clock()
        for c in self._channels.values():
            if c.held:
                self._drain(c, now, now - self.max_hold_ns)

    def flush(self) -> None:
        """Release every hold now (end of run): their holes are gaps."""
        for c in self._channels.values():
            while c.held:
                self._release(c, c.held.pop(0))

    @property
    def holding(self) -> int:
        return sum(len(c.held) for c in self._channels.values())

    def _new_session(self, c: _Channel, session: int, now: int) -> None:
        while c.held:  # the old session's packets first, in order
            self._release(c, c.held.pop(0))
        self._lost_on_both += _overlap_size(*c.skipped)
        c.session = session
        c.created_ns = now
        c.next = [None, None]
        c.skipped = [[], []]
        c.last_control = None

    def summary(self) -> dict[str, Any]:
        both = self._lost_on_both + sum(_overlap_size(*c.skipped) for c in self._channels.values())
        lines = {}
        for name, lc in zip(LINE_NAMES, self.lines, strict=True):
            lines[name] = {
                "packets": lc.packets,
                "first": lc.first,
                "duplicates": lc.duplicates,
                "heartbeats": lc.heartbeats,
                "stale": lc.stale,
                "lost_messages": lc.skipped_messages,
                # Lost here but seen on the other line: what arbitration saved.
                "filled_by_other_line": max(lc.skipped_messages - both, 0),
            }
        return {
            "lines": lines,
            "lost_on_both_messages": both,
            "held_packets": self.held,
            "held_peak": self.held_peak,
            "released_on_timeout": self.released_on_timeout,
            "released_on_overflow": self.released_on_overflow,
        }
