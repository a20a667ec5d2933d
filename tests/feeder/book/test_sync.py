"""SymbolBook: snapshot + deltas, gap -> resync of that symbol only, checksum, crossed book."""

from __future__ import annotations

from feeder.book.orderbook import OrderBook
from feeder.book.sequence import ContiguousRange, NoSequence
from feeder.book.sync import State, SymbolBook
from feeder.exchanges.base import BookUpdate
from feeder.wire import BookAction, DeltaFlags, StatusCode


class Out:
    def __init__(self) -> None:
        self.levels: list[tuple[int, ...]] = []
        self.statuses: list[tuple[int, int]] = []

    def level(self, *args: int) -> None:
        self.levels.append(args)

    def status(self, instrument_id: int, code: int, detail: int, ts_ns: int) -> None:
        self.statuses.append((instrument_id, code))


def snap(seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> BookUpdate:
    return BookUpdate(True, bids, asks, last_seq=seq)


def delta(
    a: int, b: int, bids: list[tuple[int, int]] = (), asks: list[tuple[int, int]] = ()
) -> BookUpdate:  # type: ignore[assignment]
    return BookUpdate(False, list(bids), list(asks), first_seq=a, last_seq=b)


def make(symbol: str = "X", iid: int = 1, **kw: object) -> tuple[SymbolBook, Out, list[str]]:
    out, asked = Out(), []
    book = SymbolBook(symbol, iid, ContiguousRange(), out, asked.append, **kw)  # type: ignore[arg-type]
    return book, out, asked


def test_deltas_buffer_until_snapshot_then_replay_in_order() -> None:
    book, out, _ = make()
    book.on_update(delta(95, 100, bids=[(10, 1)]))  # older than the snapshot: stale
    book.on_update(delta(101, 102, bids=[(11, 2)]))
    assert book.state is State.WAITING and out.levels == []
    book.load_snapshot(snap(100, [(10, 5)], [(20, 5)]))
    assert book.state is State.LIVE
    assert book.book.top_bids(5) == [(11, 2), (10, 5)]
    assert book.counters.stale == 1 and book.counters.updates == 1
    # Snapshot on the wire: CLEAR then levels flagged SNAPSHOT, the last one LAST_IN_EVENT.
    first = out.levels[0]
    assert first[2] == BookAction.CLEAR and first[3] & DeltaFlags.SNAPSHOT


def test_gap_resyncs_this_symbol_only() -> None:
    a, out_a, asked_a = make("A", 1)
    b, _, asked_b = make("B", 2)
    for bk in (a, b):
        bk.load_snapshot(snap(10, [(1, 1)], [(5, 1)]))
    a.on_update(delta(12, 13, bids=[(2, 1)]))  # 11 missing
    assert a.state is State.WAITING and a.counters.gaps == 1 and a.counters.resyncs == 1
    assert asked_a == ["A"] and asked_b == []
    assert (1, int(StatusCode.GAP)) in out_a.statuses
    assert any(lv[2] == BookAction.CLEAR for lv in out_a.levels[-1:])
    b.on_update(delta(11, 11, asks=[(6, 1)]))
    assert b.state is State.LIVE and b.book.top_asks(2) == [(5, 1), (6, 1)]
    # The resync completes with a new snapshot; the gapped delta it buffered replays if it fits.
    a.load_snapshot(snap(11, [(1, 1)], [(5, 1)]))
    assert a.state is State.LIVE and a.book.top_bids(3) == [(2, 1), (1, 1)]


def test_checksum_mismatch_resyncs() -> None:
    out, asked = Out(), []

    def checksum(symbol: str, book: OrderBook) -> int:
        return sum(p * q for p, q in book.top_bids(10) + book.top_asks(10))

    bk = SymbolBook("K", 3, NoSequence(), out, asked.append, checksum=checksum)
    bk.load_snapshot(snap(0, [(1, 2)], [(5, 1)]))
    good = BookUpdate(False, [(2, 1)], [], checksum=1 * 2 + 2 * 1 + 5 * 1)
    bk.on_update(good)
    assert bk.counters.checksum_errors == 0 and bk.state is State.LIVE
    bad = BookUpdate(False, [(3, 1)], [], checksum=12345)
    bk.on_update(bad)
    assert bk.counters.checksum_errors == 1 and asked == ["K"] and bk.state is State.WAITING


def test_crossed_book_is_detected_and_resynced() -> None:
    bk, out, asked = make()
    bk.load_snapshot(snap(1, [(10, 1)], [(12, 1)]))
    bk.on_update(delta(2, 2, bids=[(13, 1)]))
    assert bk.counters.crossed == 1 and asked == ["X"]
    assert (1, int(StatusCode.CROSSED_BOOK)) in out.statuses


def test_depth_truncation() -> None:
    out = Out()
    bk = SymbolBook("D", 1, NoSequence(), out, lambda s: None, depth=2)
    bk.load_snapshot(snap(0, [(1, 1), (2, 1), (3, 1)], [(9, 1)]))
    assert bk.book.top_bids(5) == [(3, 1), (2, 1)]


def test_delta_levels_flag_last_in_event() -> None:
    bk, out, _ = make()
    bk.load_snapshot(snap(1, [], []))
    out.levels.clear()
    bk.on_update(delta(2, 2, bids=[(1, 1), (2, 1)], asks=[(5, 1)]))
    flags = [lv[3] for lv in out.levels]
    assert flags == [0, 0, int(DeltaFlags.LAST_IN_EVENT)]


def test_pushed_snapshot_supersedes_buffered_deltas_but_rest_snapshot_replays_them() -> None:
    out = Out()
    pushed = SymbolBook("P", 1, NoSequence(), out, lambda s: None)
    pushed.on_update(BookUpdate(False, [(1, 9)], []))  # from before the snapshot
    pushed.on_update(BookUpdate(True, [(1, 5)], [(3, 1)]))
    assert pushed.book.top_bids(1) == [(1, 5)] and pushed.counters.superseded == 1
    rest, _, _ = make("R")
    rest.on_update(delta(11, 11, bids=[(1, 9)]))
    rest.load_snapshot(snap(10, [(1, 5)], [(3, 1)]))
    assert rest.book.top_bids(1) == [(1, 9)]


class TopOut(Out):
    def __init__(self) -> None:
        super().__init__()
        self.tops: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = []

    def top(
        self,
        iid: int,
        seq: int,
        ets: int,
        rts: int,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
    ) -> None:
        self.tops.append((bids, asks))


def test_top_n_view_follows_each_update() -> None:
    out = TopOut()
    bk = SymbolBook("T", 1, NoSequence(), out, lambda s: None, top_n=2)
    bk.load_snapshot(snap(0, [(1, 1), (2, 1), (3, 1)], [(9, 1), (10, 1)]))
    bk.on_update(BookUpdate(False, [(4, 2)], []))
    bk.on_update(BookUpdate(False, [(99, 0)], []))  # deleting an absent level: nothing to show
    assert out.tops == [([(4, 2), (3, 1)], [(9, 1), (10, 1)])]


def test_pushed_snapshot_while_live_publishes_only_the_difference() -> None:
    out = Out()
    bk = SymbolBook("U", 1, NoSequence(), out, lambda s: None)
    bk.on_update(BookUpdate(True, [(1, 1), (2, 1)], [(5, 1), (6, 1)]))
    out.levels.clear()
    bk.on_update(BookUpdate(True, [(2, 3), (1, 1)], [(6, 1), (7, 2)]))
    changed = {(lv[1], lv[2], lv[4], lv[5]) for lv in out.levels}
    # bid 2 updated, ask 5 deleted, ask 7 added; unchanged levels are not republished
    assert changed == {
        (1, BookAction.UPDATE, 2, 3),
        (2, BookAction.DELETE, 5, 0),
        (2, BookAction.ADD, 7, 2),
    }
    assert bk.book.top_asks(5) == [(6, 1), (7, 2)] and bk.counters.snapshots == 2
    assert out.levels[-1][3] == DeltaFlags.LAST_IN_EVENT
