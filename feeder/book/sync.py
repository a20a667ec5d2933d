"""One symbol's book kept in step with its exchange: snapshot, deltas, checks, resync.

States: ``WAITING`` (no usable snapshot: deltas are buffered) and ``LIVE``. A delta in LIVE is
checked by the exchange's sequence rule; a gap, a checksum mismatch or a crossed book resyncs
this symbol only: the book is cleared on the wire (with a status saying why), deltas are
buffered, and a fresh snapshot is requested. When it arrives the buffered deltas that follow it
are replayed and the symbol is LIVE again. Every transition is counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, cast

from feeder.book.orderbook import Change, OrderBook
from feeder.book.sequence import SequenceRule, Verdict
from feeder.exchanges.base import BookUpdate
from feeder.wire import ASK, BID, BookAction, DeltaFlags, StatusCode

LAST, SNAP = int(DeltaFlags.LAST_IN_EVENT), int(DeltaFlags.SNAPSHOT)
_CLEAR, _ADD = int(BookAction.CLEAR), int(BookAction.ADD)


class BookOutput(Protocol):
    """Where book changes go: the wire publisher (or a recorder in tests)."""

    def level(
        self,
        instrument_id: int,
        side: int,
        action: int,
        flags: int,
        price: int,
        qty: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None: ...

    def status(self, instrument_id: int, code: int, detail: int, ts_ns: int) -> None: ...

    def top(
        self,
        instrument_id: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
    ) -> None:
        """A bounded top-N view of the book after an update (when ``top_n`` is set)."""


class DeltasOutput(Protocol):
    """An output that takes one event's changes in one call (``WireOutput``: fewer calls per
    level, and a batch encode for many)."""

    def deltas(
        self,
        instrument_id: int,
        flags: int,
        last_flags: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        changes: list[Change],
    ) -> None:
        """``level`` for each (side, action, price, qty), ``flags`` on all but the last, which
        gets ``last_flags``."""


class _PerLevel:
    """``deltas`` for an output that has only ``level`` (test recorders, older outputs)."""

    __slots__ = ("output",)

    def __init__(self, output: BookOutput) -> None:
        self.output = output

    def deltas(
        self,
        instrument_id: int,
        flags: int,
        last_flags: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        changes: list[Change],
    ) -> None:
        last = len(changes) - 1
        for i, (side, action, p, q) in enumerate(changes):
            f = last_flags if i == last else flags
            self.output.level(
                instrument_id, side, action, f, p, q, seq, exchange_ts_ns, receive_ts_ns
            )


class State(Enum):
    WAITING = "waiting"
    LIVE = "live"


# Module constants: reading an enum member off its class costs ~130 ns on CPython 3.11, and
# these are read for every book update.
_WAITING, _LIVE = State.WAITING, State.LIVE
_STALE, _GAP = Verdict.STALE, Verdict.GAP


@dataclass
class BookCounters:
    updates: int = 0
    levels: int = 0
    snapshots: int = 0
    stale: int = 0
    gaps: int = 0
    checksum_errors: int = 0
    crossed: int = 0
    resyncs: int = 0
    buffered_dropped: int = 0
    superseded: int = 0  # buffered deltas older than a pushed snapshot, dropped


class SymbolBook:
    def __init__(
        self,
        symbol: str,
        instrument_id: int,
        rule: SequenceRule,
        output: BookOutput,
        request_snapshot: Callable[[str], None],
        *,
        checksum: Callable[[str, OrderBook], int | None] | None = None,
        depth: int | None = None,
        max_buffer: int = 10_000,
        top_n: int = 0,
    ) -> None:
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.rule = rule
        self.output = output
        # Called as self._out.deltas(...), not through a stored bound method: CPython 3.11
        # calls a method looked up at the call site faster.
        self._out: DeltasOutput = (
            cast(DeltasOutput, output) if hasattr(output, "deltas") else _PerLevel(output)
        )
        self.request_snapshot = request_snapshot
        self.checksum = checksum
        self.depth = depth
        self.top_n = top_n
        self.book = OrderBook()
        self.state = _WAITING
        self.seq = 0
        self._first = True
        self._buffer: deque[BookUpdate] = deque(maxlen=max_buffer)
        self.counters = BookCounters()
        self.last_resync_reason = ""

    # --- input --------------------------------------------------------------------------------

    def on_update(self, u: BookUpdate) -> None:
        if u.snapshot:
            # A snapshot in the stream comes after every delta buffered so far on this
            # connection, so those are older than it. Replaying them is only right for a REST
            # snapshot (load_snapshot called directly), where sequence rules sort them out.
            self.counters.superseded += len(self._buffer)
            self._buffer.clear()
            if self.state is _LIVE:
                self._replace(u)
            else:
                self.load_snapshot(u)
            return
        c = self.counters
        if self.state is _WAITING:
            if len(self._buffer) == self._buffer.maxlen:
                c.buffered_dropped += 1
            self._buffer.append(u)
            return
        # A delta on a live book (written here, not in a helper: one call less per update).
        verdict = self.rule.check(self.seq, u, self._first)
        if verdict is _STALE:
            c.stale += 1
            return
        if verdict is _GAP:
            c.gaps += 1
            got = f"{u.first_seq or u.prev_seq}..{u.last_seq}"
            self.resync(StatusCode.GAP, f"expected after {self.seq}, got {got}")
            self._buffer.append(u)
            return
        self._first = False
        if u.last_seq:
            self.seq = u.last_seq
        self._apply(u.bids, u.asks, u)

    def load_snapshot(self, u: BookUpdate) -> None:
        """A full book (pushed by the exchange or fetched over REST), then buffered deltas."""
        c = self.counters
        c.snapshots += 1
        book = self.book
        book.clear()
        for p, q in u.bids:
            if q:
                book.set(True, p, q)
        for p, q in u.asks:
            if q:
                book.set(False, p, q)
        if self.depth is not None:
            book.truncate(self.depth)
        self.seq = u.last_seq
        self._first = True
        self.state = _LIVE
        self._publish_snapshot(u)
        pending = list(self._buffer)
        self._buffer.clear()
        for d in pending:
            if self.state is not _LIVE:
                self._buffer.append(d)  # resynced again while replaying: keep the rest
                continue
            self.on_update(d)  # a delta (only deltas are buffered) on the live book

    def _replace(self, u: BookUpdate) -> None:
        """A pushed snapshot while live (Upbit and Bithumb send nothing else): publish only what
        changed, so the wire carries a few levels per update instead of the whole book."""
        c = self.counters
        c.snapshots += 1
        # The new book as plain dicts (what set() would leave: first position, last quantity,
        # no zeros), not a second OrderBook: this runs for every Upbit/Bithumb frame.
        new_bids = {p: q for p, q in u.bids if q}
        new_asks = {p: q for p, q in u.asks if q}
        depth = self.depth
        if depth is not None:  # keep the best ``depth``, in the same order
            if len(new_bids) > depth:
                cut = sorted(new_bids)[-depth] if depth > 0 else None
                new_bids = {p: q for p, q in new_bids.items() if cut is not None and p >= cut}
            if len(new_asks) > depth:
                cut = sorted(new_asks)[depth - 1] if depth > 0 else None
                new_asks = {p: q for p, q in new_asks.items() if cut is not None and p <= cut}
        diff: list[list[tuple[int, int]]] = []
        for old_side, new_side in ((self.book.bids, new_bids), (self.book.asks, new_asks)):
            gone = [(p, 0) for p in old_side if p not in new_side]
            diff.append(gone + [(p, q) for p, q in new_side.items() if old_side.get(p) != q])
        self.seq = u.last_seq
        self._first = False
        self._apply(diff[0], diff[1], u)

    # --- deltas -------------------------------------------------------------------------------

    def _apply(
        self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], u: BookUpdate
    ) -> None:
        """Apply (price, qty) levels, publish what changed, then check the book."""
        c = self.counters
        c.updates += 1
        book = self.book
        seq = self.seq
        changes = book.apply(bids, asks)
        depth = self.depth
        # Tested here, not by calling truncate(): most updates leave nothing to cut.
        if depth is not None and (len(book.bids) > depth or len(book.asks) > depth):
            book.truncate(depth)
        if changes:
            c.levels += len(changes)
            self._out.deltas(
                self.instrument_id, 0, LAST, seq, u.exchange_ts_ns, u.receive_ts_ns, changes
            )
        if u.checksum is not None and self.checksum is not None:
            mine = self.checksum(self.symbol, book)
            if mine is not None and mine != u.checksum:
                c.checksum_errors += 1
                self.resync(
                    StatusCode.CHECKSUM_MISMATCH, f"checksum {mine} != exchange {u.checksum}"
                )
                return
        if book.crossed():
            c.crossed += 1
            self.resync(
                StatusCode.CROSSED_BOOK, f"best bid {book.best_bid()} >= best ask {book.best_ask()}"
            )
            return
        if self.top_n and changes:
            n = self.top_n
            self.output.top(
                self.instrument_id,
                seq,
                u.exchange_ts_ns,
                u.receive_ts_ns,
                book.top_bids(n),
                book.top_asks(n),
            )

    def disconnected(self) -> None:
        """The connection is gone: the book and any buffered deltas belong to it."""
        if self.state is _LIVE:
            self.resync(StatusCode.DISCONNECTED, "connection lost")
        self._buffer.clear()

    # --- resync -------------------------------------------------------------------------------

    def resync(self, code: StatusCode, reason: str) -> None:
        """Drop this symbol's book (on the wire too) and ask for a new snapshot."""
        self.counters.resyncs += 1
        self.last_resync_reason = f"{code.name.lower()}: {reason}"
        self.state = _WAITING
        self.book.clear()
        self._buffer.clear()
        self._first = True
        self.output.status(self.instrument_id, int(code), self.counters.resyncs, 0)
        self.output.level(self.instrument_id, 0, BookAction.CLEAR, LAST, 0, 0, self.seq, 0, 0)
        self.request_snapshot(self.symbol)

    def _publish_snapshot(self, u: BookUpdate) -> None:
        """Clear, then every level flagged SNAPSHOT; the last one also LAST_IN_EVENT."""
        book = self.book
        events: list[Change] = [(0, _CLEAR, 0, 0)]
        events += [(BID, _ADD, p, q) for p, q in book.top_bids(len(book.bids))]
        events += [(ASK, _ADD, p, q) for p, q in book.top_asks(len(book.asks))]
        self._out.deltas(
            self.instrument_id,
            SNAP,
            SNAP | LAST,
            self.seq,
            u.exchange_ts_ns,
            u.receive_ts_ns,
            events,
        )
