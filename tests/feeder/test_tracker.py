from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from feeder.listen.tracker import SequenceTracker

S = 42


def test_in_order_stream_has_no_gaps() -> None:
    t = SequenceTracker()
    for first in range(1, 100, 3):
        assert t.on_data(S, 1, first, 3) == 3
    st_ = t.channels[1]
    assert (st_.gaps, st_.duplicates, st_.messages, st_.next_seq) == (0, 0, 99, 100)


def test_gap_then_late_copy_fills_it() -> None:
    t = SequenceTracker()
    t.on_data(S, 1, 1, 5)
    t.on_data(S, 1, 11, 5)  # 6..10 missing
    c = t.channels[1]
    assert (c.gaps, c.gap_messages, c.outstanding()) == (1, 5, 5)
    assert t.on_data(S, 1, 6, 5) == 5
    assert (c.out_of_order, c.outstanding(), c.duplicates) == (1, 0, 0)
    assert t.on_data(S, 1, 6, 5) == 0  # now a true duplicate
    assert c.duplicates == 1


def test_partial_fill_splits_the_range() -> None:
    t = SequenceTracker()
    t.on_data(S, 1, 1, 1)
    t.on_data(S, 1, 20, 1)  # 2..19 missing
    assert t.on_data(S, 1, 5, 3) == 3
    assert t.channels[1].missing == [[2, 5], [8, 20]]


def test_heartbeat_reveals_trailing_loss_and_eos() -> None:
    t = SequenceTracker()
    t.on_data(S, 2, 1, 10)
    t.on_heartbeat(S, 2, 11)  # nothing lost
    assert t.channels[2].gaps == 0
    t.on_heartbeat(S, 2, 15, end=True)  # 11..14 were sent and lost
    c = t.channels[2]
    assert (c.gaps, c.gap_messages, c.ended, c.heartbeats) == (1, 4, True, 2)


def test_new_session_resets_without_a_false_gap() -> None:
    t = SequenceTracker()
    t.on_data(S, 1, 1, 10)
    t.on_data(S, 1, 15, 1)  # 4 missing in the old session
    t.on_data(S + 1, 1, 1, 10)  # restarted feeder: sequence restarts at 1
    c = t.channels[1]
    assert (c.sessions, c.gaps, c.abandoned_messages, c.next_seq) == (2, 1, 4, 11)
    assert c.to_json()["missing_messages"] == 4


def test_channels_are_independent() -> None:
    t = SequenceTracker()
    t.on_data(S, 1, 1, 1)
    t.on_data(S, 2, 1, 1)
    t.on_data(S, 2, 3, 1)
    assert t.channels[1].gaps == 0 and t.channels[2].gaps == 1


@given(st.lists(st.booleans(), min_size=1, max_size=200), st.randoms(use_true_random=False))
def test_lost_packets_are_counted_exactly(delivered: list[bool], rnd: object) -> None:
    """Drop a random subset of packets (never the last) and reorder nothing: the tracker's
    missing count equals the messages in dropped packets."""
    delivered[-1] = True
    t = SequenceTracker()
    lost = 0
    for i, ok in enumerate(delivered):
        first, count = 1 + i * 2, 2
        if ok:
            t.on_data(S, 1, first, count)
        elif any(delivered[:i]):
            lost += count
    c = t.channels[1]
    assert c.outstanding() == lost
