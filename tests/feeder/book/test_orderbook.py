from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from feeder.book.orderbook import ADD, DELETE, UPDATE, OrderBook


def test_set_reports_actions_and_keeps_sorted_tops() -> None:
    b = OrderBook()
    assert b.set(True, 100, 5) is ADD
    assert b.set(True, 101, 5) is ADD
    assert b.set(True, 100, 7) is UPDATE
    assert b.set(True, 99, 0) is None  # deleting an absent level is a no-op
    assert b.set(False, 105, 1) is ADD
    assert b.set(False, 103, 2) is ADD
    assert b.top_bids(5) == [(101, 5), (100, 7)]
    assert b.top_asks(1) == [(103, 2)]
    assert b.best_bid() == (101, 5) and b.best_ask() == (103, 2)
    assert b.set(True, 101, 0) is DELETE
    assert b.best_bid() == (100, 7)
    assert not b.crossed()
    b.set(True, 104, 1)
    assert b.crossed()


def test_truncate_keeps_the_best_levels() -> None:
    b = OrderBook()
    for p in range(1, 11):
        b.set(True, p, 1)
        b.set(False, 100 + p, 1)
    b.truncate(3)
    assert [p for p, _ in b.top_bids(10)] == [10, 9, 8]
    assert [p for p, _ in b.top_asks(10)] == [101, 102, 103]
    assert len(b) == 6


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50), st.integers(0, 3)), max_size=200))
def test_matches_a_plain_dict_model(ops: list[tuple[bool, int, int]]) -> None:
    b = OrderBook()
    model: dict[bool, dict[int, int]] = {True: {}, False: {}}
    for is_bid, p, q in ops:
        b.set(is_bid, p, q)
        if q:
            model[is_bid][p] = q
        else:
            model[is_bid].pop(p, None)
    assert b.top_bids(100) == sorted(model[True].items(), reverse=True)
    assert b.top_asks(100) == sorted(model[False].items())
