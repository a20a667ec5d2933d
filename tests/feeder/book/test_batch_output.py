"""One call per book update: OrderBook.apply, WireOutput.deltas and the encoder's batch add give
exactly what one call per level gave (same book, same wire bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.book.orderbook import OrderBook
from feeder.book.sequence import NoSequence
from feeder.book.sync import SymbolBook
from feeder.exchanges.base import BookUpdate
from feeder.instruments import Instrument
from feeder.publish.book_output import WireOutput
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import SendPath
from feeder.wire import ASK, BID, BookAction, DeltaFlags, PacketEncoder, PacketFull
from tests.feeder.fakes import MemoryTransport

LAST, SNAP = int(DeltaFlags.LAST_IN_EVENT), int(DeltaFlags.SNAPSHOT)
_levels = st.lists(st.tuples(st.integers(1, 12), st.integers(0, 3)), max_size=12)


@given(st.lists(st.tuples(_levels, _levels), max_size=8))
def test_apply_is_set_per_level(updates: list[tuple[list[tuple[int, int]], ...]]) -> None:
    batched, single = OrderBook(), OrderBook()
    for bids, asks in updates:
        expected = []
        for is_bid, side, levels in ((True, BID, bids), (False, ASK, asks)):
            for p, q in levels:
                done = single.set(is_bid, p, q)
                if done is not None:
                    expected.append((side, done, p, q))
        assert batched.apply(bids, asks) == expected
        assert batched == single
        assert batched.top_bids(20) == single.top_bids(20)
        assert batched.top_asks(20) == single.top_asks(20)


def _wire(max_packet: int = 1400) -> tuple[WireOutput, Publisher, MemoryTransport]:
    transport = MemoryTransport(capacity=10_000)
    path = SendPath()
    path.attach(transport, "memory")
    chmap = ChannelMap.single("239.1.2.1", 40001, 1)
    pub = Publisher(path, chmap, session_id=7, max_packet=max_packet, clock=lambda: 5)
    inst = Instrument(3, "binance", 1, "BTCUSDT", 1)
    return WireOutput(pub, [inst]), pub, transport


def _changes(n: int) -> list[tuple[int, int, int, int]]:
    return [(BID if i % 2 else ASK, 1 + i % 3, 1000 + i, (i * 7) % 5) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 17, 200])
@pytest.mark.parametrize("max_packet", [256, 1400])
def test_deltas_put_the_same_bytes_on_the_wire_as_level(n: int, max_packet: int) -> None:
    sent = []
    for batched in (False, True):
        out, pub, transport = _wire(max_packet)
        for event in range(3):  # several events, so batches start mid-packet
            changes = _changes(n + event)
            if batched:
                out.deltas(3, SNAP, SNAP | LAST, 9, 10, 11, changes)
            else:
                for i, (side, action, p, q) in enumerate(changes):
                    flags = SNAP | LAST if i == len(changes) - 1 else SNAP
                    out.level(3, side, action, flags, p, q, 9, 10, 11)
        pub.close()
        sent.append(transport.sent)
    assert sent[0] == sent[1] and len(sent[0]) > 1


def test_batch_add_stops_where_the_packet_is_full_and_refuses_bad_values() -> None:
    enc = PacketEncoder(1, 1, 256)
    enc.begin(bytearray(256), 1)
    changes = _changes(40)
    done = enc.add_book_deltas(3, 0, LAST, 1, 2, 3, changes)
    assert 0 < done < 40 and enc.count == done
    with pytest.raises(PacketFull):
        enc.add_book_deltas(3, 0, LAST, 1, 2, 3, changes, done)
    enc.finish(1)
    enc.begin(bytearray(256), 1)
    bad = [(BID, 2, 1, 1), (BID, 2, 2**63, 1), (BID, 2, 3, 1)]
    with pytest.raises(ValueError, match="price"):
        enc.add_book_deltas(3, 0, LAST, 1, 2, 3, bad)
    assert enc.count == 1  # the level before the bad one stays, as with add_book_delta
    with pytest.raises(ValueError, match="side"):
        enc.add_book_deltas(3, 0, LAST, 1, 2, 3, [(0, 2, 1, 1)])
    with pytest.raises(ValueError, match="flags"):
        enc.add_book_deltas(3, 0, 0x80, 1, 2, 3, [(BID, 2, 1, 1)])


class _Levels:
    """An output with ``level`` only (like the test recorders): SymbolBook falls back to it."""

    def __init__(self) -> None:
        self.levels: list[tuple[int, ...]] = []

    def level(self, *args: int) -> None:
        self.levels.append(args)

    def status(self, instrument_id: int, code: int, detail: int, ts_ns: int) -> None:
        pass


def test_symbol_book_publishes_through_deltas_as_through_level() -> None:
    out, pub, transport = _wire()
    recorder = _Levels()
    updates = [
        BookUpdate(True, [(10, 1), (9, 2)], [(11, 1)], last_seq=1),
        BookUpdate(False, [(10, 0), (8, 5)], [(12, 3), (13, 0)], last_seq=2),
        BookUpdate(False, [], [(11, 4)], last_seq=3),
        BookUpdate(True, [(9, 2)], [(11, 4), (12, 3)], last_seq=4),  # pushed: only the diff
    ]
    books = [SymbolBook("X", 3, NoSequence(), o, lambda s: None) for o in (out, recorder)]
    for u in updates:
        for b in books:
            b.on_update(u)
    pub.close()
    expected, _, expected_transport = _wire()
    for args in recorder.levels:
        expected.level(*args)
    expected.publisher.close()
    assert transport.sent == expected_transport.sent
    assert [a[2] for a in recorder.levels[:1]] == [BookAction.CLEAR]


def _old_replace_diff(
    book: OrderBook, u: BookUpdate, depth: int | None
) -> list[list[tuple[int, int]]]:
    """The pushed-snapshot diff as SymbolBook computed it through a second OrderBook."""
    new = OrderBook()
    for p, q in u.bids:
        if q:
            new.set(True, p, q)
    for p, q in u.asks:
        if q:
            new.set(False, p, q)
    if depth is not None:
        new.truncate(depth)
    diff = []
    for old_side, new_side in ((book.bids, new.bids), (book.asks, new.asks)):
        gone = [(p, 0) for p in old_side if p not in new_side]
        diff.append(gone + [(p, q) for p, q in new_side.items() if old_side.get(p) != q])
    return diff


@given(st.lists(st.tuples(_levels, _levels), min_size=1, max_size=6), st.sampled_from([None, 1, 3]))
def test_pushed_snapshots_publish_the_same_diff(
    frames: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]], depth: int | None
) -> None:
    recorder = _Levels()
    book = SymbolBook("X", 3, NoSequence(), recorder, lambda s: None, depth=depth)
    reference = OrderBook()
    for i, (bids, asks) in enumerate(frames):
        u = BookUpdate(True, bids, [(p + 20, q) for p, q in asks], last_seq=i + 1)
        before = len(recorder.levels)
        if i == 0:
            book.on_update(u)
            for p, q in u.bids:
                if q:
                    reference.set(True, p, q)
            for p, q in u.asks:
                if q:
                    reference.set(False, p, q)
            if depth is not None:
                reference.truncate(depth)
            continue
        diff_bids, diff_asks = _old_replace_diff(reference, u, depth)
        expected = reference.apply(diff_bids, diff_asks)
        if depth is not None:
            reference.truncate(depth)
        book.on_update(u)
        got = [(a[1], a[2], a[4], a[5]) for a in recorder.levels[before:]]
        assert got == expected
        assert book.book == reference
