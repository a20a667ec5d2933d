"""Sequence rules: may this book update follow what the book already holds?

Each exchange numbers its book updates differently; a rule turns that into one verdict:
``APPLY``, ``STALE`` (already covered by the book: drop it quietly) or ``GAP`` (something was
missed: resync the symbol). ``first`` is True for the first update after a snapshot.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol


class Verdict(IntEnum):
    APPLY = 0
    STALE = 1
    GAP = 2


# Module constants: reading an enum member off its class costs ~130 ns on CPython 3.11, and a
# rule is checked for every book update.
APPLY, STALE, GAP = Verdict.APPLY, Verdict.STALE, Verdict.GAP


class UpdateSeq(Protocol):
    first_seq: int
    last_seq: int
    prev_seq: int


class SequenceRule(Protocol):
    name: str

    def check(self, book_seq: int, u: UpdateSeq, first: bool) -> Verdict: ...


class NoSequence:
    """The exchange numbers nothing (Coinbase level2, Kraken, Upbit): every update applies;
    gaps show up only through checksums or a crossed book."""

    name = "none"

    def check(self, book_seq: int, u: UpdateSeq, first: bool) -> Verdict:
        return APPLY


class ContiguousRange:
    """Updates carry [first_seq, last_seq] and must chain: first == previous last + 1.

    After a snapshot with id S, updates with last <= S are stale and the first applied one
    must straddle S+1 (Binance ``U <= lastUpdateId+1 <= u``; KuCoin sequenceStart/End).
    """

    name = "contiguous-range"

    def check(self, book_seq: int, u: UpdateSeq, first: bool) -> Verdict:
        if u.last_seq <= book_seq:
            return STALE
        if first:
            return APPLY if u.first_seq <= book_seq + 1 else GAP
        return APPLY if u.first_seq == book_seq + 1 else GAP


class PrevLinked:
    """Each update names the sequence it follows (OKX ``prevSeqId`` -> ``seqId``)."""

    name = "prev-linked"

    def check(self, book_seq: int, u: UpdateSeq, first: bool) -> Verdict:
        if u.prev_seq == book_seq:
            return APPLY
        if u.last_seq <= book_seq:
            return STALE
        return GAP


class Increment:
    """Each update's id is the previous one plus one (Bybit ``u``)."""

    name = "increment"

    def check(self, book_seq: int, u: UpdateSeq, first: bool) -> Verdict:
        if u.last_seq == book_seq + 1:
            return APPLY
        if u.last_seq <= book_seq:
            return STALE
        return GAP
