"""The receiver's side of recovery: the tracker's missing ranges become re-requests.

``tick`` walks the channels' missing ranges and asks the feeder for every part not already
asked for nor given up, paced by a token bucket and at most ``max_in_flight`` at a time. An
unanswered request is retried after a timeout that doubles each time; after ``retries`` tries
the range is given up. A reply that says part of a range is older than the feeder's buffer
(or belongs to a session it no longer runs) gives that part up at once. Recovered packets are
the feeder's original bytes: the receiver feeds them through its normal decode/track path,
where they fill the missing ranges; what is given up stays missing and is reported as
unrecoverable, by reason.
"""

from __future__ import annotations

import errno
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from feeder.listen.tracker import ChannelState, SequenceTracker
from feeder.recovery.protocol import (
    REPLY_MAGIC,
    U32_MAX,
    Malformed,
    Reply,
    ReplyStatus,
    decode_reply,
    encode_request,
)
from feeder.runtime.ratelimit import TokenBucket

Range = tuple[int, int]  # [start, end)


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with overlapping and touching ranges joined."""
    out: list[Range] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def subtract(ranges: Iterable[Sequence[int]], taken: Sequence[Range]) -> list[Range]:
    """The parts of ``ranges`` outside ``taken``. Both sorted by start, ``taken`` without
    overlaps (``merge``): one pass over each, however many ranges a lossy stream piles up."""
    out: list[Range] = []
    j = 0
    for s, e in ranges:
        while j < len(taken) and taken[j][1] <= s:
            j += 1
        cur, k = s, j
        while k < len(taken) and taken[k][0] < e:
            a, b = taken[k]
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
            k += 1
        if cur < e:
            out.append((cur, e))
    return out


def intersect(start: int, end: int, ranges: Iterable[Sequence[int]]) -> list[Range]:
    """The parts of ``[start, end)`` inside ``ranges``."""
    out = []
    for s, e in ranges:
        lo, hi = max(s, start), min(e, end)
        if lo < hi:
            out.append((lo, hi))
    return out


@dataclass
class _InFlight:
    channel: int
    session: int
    first: int
    end: int
    deadline: float


@dataclass
class _Channel:
    session: int
    unrecoverable: list[Range] = field(default_factory=list)
    tries: dict[int, int] = field(default_factory=dict)  # range start -> requests sent


@dataclass(frozen=True)
class ClientSettings:
    timeout_s: float = 0.05  # first retry after this; doubles with each try
    retries: int = 5  # requests per range before it is given up
    max_in_flight: int = 16
    max_count: int = 1 << 16  # messages per request (the feeder caps packets per answer too)
    rate: float = 200.0  # requests/s, with ...
    burst: int = 50  # ... this many at once (stay under the feeder's per-requester limit)


class RecoveryClient:
    def __init__(
        self,
        sock: socket.socket,
        server: tuple[str, int],
        settings: ClientSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sock = sock
        self.server = server
        self.settings = s = settings or ClientSettings()
        self._clock = clock
        self._bucket = TokenBucket(s.rate, s.burst, clock)
        self._in_flight: dict[int, _InFlight] = {}
        self._channels: dict[int, _Channel] = {}
        self._next_id = 1
        self._buf = bytearray(65536)
        self.requests = 0
        self.retries = 0
        self.timeouts = 0
        self.replies = 0
        self.stale_replies = 0
        self.send_errors = 0
        self.recovered_messages = 0
        self.recovered_packets = 0
        self.late_packets = 0  # recovery packets that filled nothing (already had them)
        self.foreign = 0  # datagrams from anyone but the feeder's recovery address
        self.malformed: Counter[str] = Counter()
        self.unrecoverable: Counter[str] = Counter()

    # --- bookkeeping per channel --------------------------------------------------------------

    def _chan(self, st: ChannelState) -> _Channel | None:
        if st.session is None:
            return None
        c = self._channels.get(st.channel)
        if c is None or c.session != st.session:
            # A new session: the tracker wrote the old one's missing off; so do we.
            c = self._channels[st.channel] = _Channel(st.session)
        return c

    def _given_up(self, st: ChannelState, c: _Channel, start: int, end: int, why: str) -> None:
        """Give up what of ``[start, end)`` is still missing and not given up already."""
        new = subtract(intersect(start, end, st.missing), c.unrecoverable)
        if new:
            self.unrecoverable[why] += sum(b - a for a, b in new)
            c.unrecoverable = merge(c.unrecoverable + new)

    @staticmethod
    def _prune(st: ChannelState, c: _Channel) -> None:
        """Forget tries and give-ups for ranges the tracker no longer lists as missing."""
        c.unrecoverable = [r for r in c.unrecoverable if intersect(*r, st.missing)]
        c.tries = {a: n for a, n in c.tries.items() if intersect(a, a + 1, st.missing)}

    def outstanding(self, st: ChannelState) -> list[Range]:
        """The channel's missing ranges that may still be recovered."""
        c = self._chan(st)
        return [] if c is None else subtract(st.missing, c.unrecoverable)

    def may_recover(self, st: ChannelState, start: int, end: int) -> bool:
        """Whether some of ``[start, end)`` is missing and not given up."""
        c = self._chan(st)
        return c is not None and bool(subtract(intersect(start, end, st.missing), c.unrecoverable))

    def busy(self, tracker: SequenceTracker) -> bool:
        """Whether anything missing may still be recovered (or a request is unanswered)."""
        return bool(self._in_flight) or any(
            self.outstanding(st) for st in tracker.channels.values() if st.missing
        )

    # --- asking ---------------------------------------------------------------------------------

    def tick(self, tracker: SequenceTracker) -> None:
        """Expire unanswered requests, then ask for what is missing, within the pacing."""
        now = self._clock()
        s = self.settings
        for rid in [r for r, f in self._in_flight.items() if f.deadline <= now]:
            del self._in_flight[rid]
            self.timeouts += 1
        for st in tracker.channels.values():
            if not st.missing:
                continue
            c = self._chan(st)
            if c is None:
                continue
            if len(c.tries) + len(c.unrecoverable) > 1024:
                self._prune(st, c)
            asked = merge(
                (f.first, f.end)
                for f in self._in_flight.values()
                if f.channel == st.channel and f.session == c.session
            )
            for a, b in subtract(self.outstanding(st), asked):
                b = min(b, a + s.max_count)
                tries = c.tries.get(a, 0)
                if tries >= s.retries:
                    self._given_up(st, c, a, b, "no_answer")
                    continue
                if len(self._in_flight) >= s.max_in_flight or not self._bucket.try_take():
                    return
                self._send(st.channel, c, a, b, tries, now)

    def _send(
        self, channel: int, c: _Channel, first: int, end: int, tries: int, now: float
    ) -> None:
        rid = self._next_id
        self._next_id = rid + 1 if rid < U32_MAX else 1
        try:
            self.sock.sendto(
                encode_request(channel, c.session, first, end - first, rid), self.server
            )
        except OSError as e:
            # A full queue, or an ICMP error from an earlier request: the timeout retries.
            self.send_errors += 1
            if e.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED):
                raise
        self.requests += 1
        if tries:
            self.retries += 1
        c.tries[first] = tries + 1
        timeout = self.settings.timeout_s * (1 << tries)
        self._in_flight[rid] = _InFlight(channel, c.session, first, end, now + timeout)

    # --- answers --------------------------------------------------------------------------------

    def receive(self, tracker: SequenceTracker, packet: Callable[[memoryview], int]) -> int:
        """Read everything queued on the socket: replies are handled here, data packets go to
        ``packet`` (which returns how many messages they filled). Returns datagrams read."""
        view = memoryview(self._buf)
        n = 0
        while True:
            try:
                size, source = self.sock.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return n
            except OSError:
                # ICMP port unreachable from a request to a feeder that is not (yet) up.
                self.send_errors += 1
                continue
            n += 1
            if source != self.server:
                self.foreign += 1
                continue
            data = view[:size]
            if bytes(data[:4]) == REPLY_MAGIC:
                reply = decode_reply(data)
                if isinstance(reply, Malformed):
                    self.malformed[reply.reason] += 1
                else:
                    self.on_reply(reply, tracker)
                continue
            filled = packet(data)
            if filled:
                self.recovered_packets += 1
                self.recovered_messages += filled
            else:
                self.late_packets += 1

    def on_reply(self, r: Reply, tracker: SequenceTracker) -> None:
        if self._in_flight.pop(r.request_id, None) is None:
            self.stale_replies += 1
        self.replies += 1
        st = tracker.channels.get(r.channel_id)
        if st is None:
            return
        c = self._chan(st)
        if c is None:
            return
        first, end = r.first_seq, r.first_seq + r.count
        if r.status is ReplyStatus.SERVED:
            if r.served_first > first:
                self._given_up(st, c, first, r.served_first, "older_than_buffer")
        elif r.status is ReplyStatus.NOT_AVAILABLE:
            if r.oldest_seq and first < r.oldest_seq:
                self._given_up(st, c, first, min(end, r.oldest_seq), "older_than_buffer")
            else:
                self._given_up(st, c, first, end, "not_available")
        elif r.status is ReplyStatus.UNKNOWN_SESSION:
            if r.session_id != c.session:
                self._given_up(st, c, first, end, "session_ended")
        else:
            self._given_up(st, c, first, end, "refused")

    def summary(self, tracker: SequenceTracker) -> dict[str, Any]:
        return {
            "server": f"{self.server[0]}:{self.server[1]}",
            "requests": self.requests,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "replies": self.replies,
            "recovered_messages": self.recovered_messages,
            "recovered_packets": self.recovered_packets,
            "unrecoverable_messages": sum(self.unrecoverable.values()),
            "unrecoverable": dict(self.unrecoverable),
            "pending_messages": sum(
                b - a for st in tracker.channels.values() for a, b in self.outstanding(st)
            ),
            "late_packets": self.late_packets,
            "foreign_datagrams": self.foreign,
            "malformed_replies": dict(self.malformed),
            "send_errors": self.send_errors,
        }
