"""A/B arbitration: first copy wins, line duplicates are not feed duplicates, gaps need both."""

from __future__ import annotations

from feeder.listen.arbiter import Arbiter
from feeder.listen.tracker import ChannelState, SequenceTracker
from feeder.wire import PacketEncoder, PacketHeader, PacketKind, decode_header

SESSION = 1_700_000_000_000_000_000
A, B = 0, 1


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


class Feed:
    """An arbiter in front of a real tracker; ``delivered`` is what reached the feed."""

    def __init__(self, max_hold_ns: int = 20_000_000, max_held: int = 4096) -> None:
        self.tracker = SequenceTracker()
        self.clock = Clock()
        self.delivered: list[tuple[PacketKind, int, int]] = []
        self.arbiter = Arbiter(
            self.tracker,
            self._deliver,
            max_hold_ns=max_hold_ns,
            max_held=max_held,
            clock=self.clock,
        )

    def _deliver(self, h: PacketHeader, data: bytes | bytearray | memoryview) -> None:
        assert decode_header(data) == h  # held packets are delivered as the original bytes
        self.delivered.append((h.kind, h.first_seq, h.msg_count))
        if h.kind is PacketKind.DATA:
            self.tracker.on_data(h.session_id, h.channel_id, h.first_seq, h.msg_count)
        else:
            self.tracker.on_heartbeat(
                h.session_id, h.channel_id, h.first_seq, end=h.kind is PacketKind.END_OF_SESSION
            )

    def send(self, line: int, data: bytes) -> None:
        h = decode_header(data)
        assert isinstance(h, PacketHeader)
        self.arbiter.offer(line, h, memoryview(data))

    @property
    def state(self) -> ChannelState:
        return self.tracker.channels[1]


def data(first: int, count: int = 3, session: int = SESSION, channel: int = 1) -> bytes:
    enc = PacketEncoder(session, channel)
    enc.begin(bytearray(1400), first)
    for i in range(count):
        enc.add_trade(7, 1, 0, 100 + i, 1, first + i, 0, 0)
    return bytes(enc.finish(first))


def heartbeat(next_seq: int, sent_ns: int, session: int = SESSION) -> bytes:
    return bytes(PacketEncoder(session, 1).heartbeat(bytearray(40), next_seq, sent_ns))


def end(next_seq: int) -> bytes:
    return bytes(PacketEncoder(SESSION, 1).end_of_session(bytearray(40), next_seq, 9))


PACKETS = [data(1 + 3 * k) for k in range(10)]  # seq 1..30, three messages each


def test_first_copy_wins_and_copies_are_line_duplicates() -> None:
    f = Feed()
    for k, p in enumerate(PACKETS):
        # The lines take turns being first.
        first, second = (A, B) if k % 2 == 0 else (B, A)
        f.send(first, p)
        f.send(second, p)
    st = f.state
    assert (st.messages, st.gaps, st.duplicates, st.out_of_order) == (30, 0, 0, 0)
    assert len(f.delivered) == 10
    s = f.arbiter.summary()
    a, b = s["lines"]["a"], s["lines"]["b"]
    assert (a["packets"], a["first"], a["duplicates"]) == (10, 5, 5)
    assert (b["packets"], b["first"], b["duplicates"]) == (10, 5, 5)
    assert s["lost_on_both_messages"] == 0 and a["lost_messages"] == b["lost_messages"] == 0


def test_loss_on_line_a_is_filled_by_line_b_without_a_gap() -> None:
    f = Feed()
    lost_on_a = {3, 4, 7}
    # Line B lags one packet behind: A's packet after each hole arrives before B's copy of
    # the lost one.
    for k, p in enumerate(PACKETS):
        if k not in lost_on_a:
            f.send(A, p)
        if k:
            f.send(B, PACKETS[k - 1])
    f.send(B, PACKETS[-1])
    st = f.state
    assert (st.messages, st.gaps, st.gap_messages, st.duplicates) == (30, 0, 0, 0)
    assert st.out_of_order == 0  # the feed saw an in-order stream
    assert [first for _, first, _ in f.delivered] == [1 + 3 * k for k in range(10)]
    s = f.arbiter.summary()
    assert s["lines"]["a"]["lost_messages"] == 9
    assert s["lines"]["a"]["filled_by_other_line"] == 9
    assert s["lines"]["b"]["lost_messages"] == 0
    assert s["lost_on_both_messages"] == 0
    assert s["held_packets"] == 2  # A's packets 5 and 8 waited for B's 3..4 and 7
    assert (s["lines"]["a"]["first"], s["lines"]["b"]["first"]) == (7, 3)


def test_hole_filled_when_the_other_line_is_ahead() -> None:
    f = Feed()
    for k, p in enumerate(PACKETS):
        f.send(B, p)  # B first, complete
        if k != 5:
            f.send(A, p)
    assert (f.state.messages, f.state.gaps) == (30, 0)
    assert f.arbiter.summary()["held_packets"] == 0  # nothing ever opened a hole in the feed


def test_loss_on_both_lines_is_a_gap_of_exactly_those_messages() -> None:
    f = Feed()
    lost_on_a, lost_on_b = {2, 5, 6}, {5, 8}
    for k, p in enumerate(PACKETS):
        if k not in lost_on_a:
            f.send(A, p)
        if k not in lost_on_b:
            f.send(B, p)
    st = f.state
    assert st.gaps == 1 and st.gap_messages == 3  # packet 5 (seq 16..18) only
    assert st.missing == [[16, 19]]
    assert st.messages == 27 and st.duplicates == 0
    s = f.arbiter.summary()
    assert s["lost_on_both_messages"] == 3
    assert s["lines"]["a"]["lost_messages"] == 9 and s["lines"]["b"]["lost_messages"] == 6
    assert s["lines"]["a"]["filled_by_other_line"] == 6
    assert s["lines"]["b"]["filled_by_other_line"] == 3


def test_a_silent_line_does_not_hold_the_feed_back() -> None:
    f = Feed()
    f.send(A, PACKETS[0])
    f.send(B, PACKETS[0])
    f.clock.ns += 2_000_000_000  # line B goes quiet: down
    f.send(A, PACKETS[1])
    f.send(A, PACKETS[3])  # packet 2 lost on A; B is silent: a gap at once
    assert f.state.gaps == 1 and f.state.missing == [[7, 10]]
    assert f.arbiter.holding == 0


def test_a_hold_ends_after_max_hold() -> None:
    f = Feed(max_hold_ns=5_000_000)
    f.send(A, PACKETS[0])
    f.send(A, PACKETS[1])
    f.send(B, PACKETS[0])  # B is alive but far behind
    f.send(A, PACKETS[3])  # packet 2 lost on A
    assert f.arbiter.holding == 1 and f.state.gaps == 0
    f.clock.ns += 3_000_000
    f.arbiter.expire()
    assert f.arbiter.holding == 1
    f.send(B, PACKETS[1])  # B still crawling
    f.clock.ns += 3_000_000
    f.arbiter.expire()
    assert f.arbiter.holding == 0 and f.state.gaps == 1
    assert f.arbiter.summary()["released_on_timeout"] == 1
    # B's copy arrives late: it still fills the hole (a late copy, not a line duplicate).
    f.send(B, PACKETS[2])
    assert f.state.missing == [] and f.state.messages == 12 and f.state.duplicates == 0


def test_holds_are_bounded() -> None:
    f = Feed(max_held=3)
    f.send(A, PACKETS[0])
    f.send(B, PACKETS[0])
    for p in PACKETS[2:5]:  # packet 1 lost on A while B stalls
        f.send(A, p)
    assert f.arbiter.holding == 3 and f.state.gaps == 0
    f.send(A, PACKETS[5])  # one more than allowed: the hole is given up, the rest follows
    assert f.arbiter.holding == 0
    assert f.arbiter.summary()["released_on_overflow"] == 1
    assert f.state.gaps == 1 and f.state.missing == [[4, 7]] and f.state.next_seq == 19


def test_heartbeats_count_once_per_heartbeat_not_once_per_line() -> None:
    f = Feed()
    f.send(A, PACKETS[0])
    f.send(B, PACKETS[0])
    for sent in (100, 200, 300):  # an idle channel: same next sequence, new heartbeat
        f.send(A, heartbeat(4, sent))
        f.send(B, heartbeat(4, sent))
    assert f.state.heartbeats == 3
    s = f.arbiter.summary()["lines"]
    assert s["a"]["heartbeats"] == s["b"]["heartbeats"] == 3


def test_heartbeat_after_a_burst_lost_on_one_line_waits_for_the_other() -> None:
    f = Feed()
    f.send(A, PACKETS[0])
    f.send(B, PACKETS[0])
    f.send(A, heartbeat(7, 100))  # A lost packet 1 (the end of a burst)
    assert f.state.gaps == 0 and f.arbiter.holding == 1
    f.send(B, PACKETS[1])
    f.send(B, heartbeat(7, 100))
    assert f.state.gaps == 0 and f.state.messages == 6 and f.arbiter.holding == 0
    f.send(A, end(7))
    f.send(B, end(7))
    assert f.state.ended and f.state.heartbeats == 2


def test_an_older_session_is_stale_and_a_newer_one_takes_over() -> None:
    f = Feed()
    new = SESSION + 1
    f.send(A, data(1, session=new))
    f.send(B, data(1, session=SESSION))  # a straggler from before the restart
    assert f.arbiter.summary()["lines"]["b"]["stale"] == 1
    assert f.state.session == new and f.state.sessions == 1
    f.send(B, data(1, session=new))
    f.send(A, data(4, session=new + 1))
    assert f.state.session == new + 1 and f.state.sessions == 2


def test_a_lower_session_takes_over_once_the_current_one_is_silent() -> None:
    f = Feed()
    f.send(A, data(1, session=SESSION))
    f.clock.ns += 3_000_000_000  # the publisher restarted after its clock stepped back
    f.send(A, data(1, session=SESSION - 5))
    f.send(B, data(1, session=SESSION - 5))
    assert f.state.session == SESSION - 5 and f.state.sessions == 2
    assert f.arbiter.summary()["lines"]["a"]["stale"] == 0


def test_channels_are_arbitrated_independently() -> None:
    f = Feed()
    for k in range(5):
        for ch in (1, 2):
            p = data(1 + 3 * k, channel=ch)
            if not (ch == 1 and k == 2):
                f.send(A, p)
            f.send(B, p)
    for ch in (1, 2):
        st = f.tracker.channels[ch]
        assert (st.messages, st.gaps) == (15, 0)
