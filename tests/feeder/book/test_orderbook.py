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


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.booleans(), st.integers(1, 15), st.integers(0, 3)),
        st.tuples(
            st.just("apply"),
            st.lists(st.tuples(st.integers(1, 15), st.integers(0, 3)), max_size=5),
            st.lists(st.tuples(st.integers(1, 15), st.integers(0, 3)), max_size=5),
        ),
        st.tuples(st.just("truncate"), st.integers(0, 6)),
        st.tuples(st.just("clear")),
        st.tuples(st.just("texts")),
    ),
    max_size=40,
)


@given(_ops)
def test_level_texts_stay_in_step_with_the_book(ops: list[tuple[object, ...]]) -> None:
    """Kept level texts always equal the texts of the levels, in price order, whatever changed
    the book; and a book keeping them changes exactly like one that does not."""
    texts = {(p, q): f"{p}:{q}" for p in range(1, 16) for q in range(1, 4)}
    kept, plain = OrderBook(), OrderBook()
    kept.level_texts(texts)
    for op in ops:
        if op[0] == "set":
            _, is_bid, p, q = op
            assert kept.set(is_bid, p, q) == plain.set(is_bid, p, q)  # type: ignore[arg-type]
        elif op[0] == "apply":
            assert kept.apply(op[1], op[2]) == plain.apply(op[1], op[2])  # type: ignore[arg-type]
        elif op[0] == "truncate":
            kept.truncate(op[1])  # type: ignore[arg-type]
            plain.truncate(op[1])  # type: ignore[arg-type]
        elif op[0] == "clear":
            kept.clear()
            plain.clear()
        else:
            texts = dict(texts)  # another memo: the lists are rebuilt from it
        bids, asks = kept.level_texts(texts)
        assert bids == [texts[p, q] for p, q in reversed(plain.top_bids(99))]
        assert asks == [texts[level] for level in plain.top_asks(99)]
        assert kept == plain
