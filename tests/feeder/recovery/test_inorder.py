"""Books are applied in sequence order while holes wait to be recovered."""

from __future__ import annotations

from feeder.listen.books import ReceiverBooks
from feeder.listen.inorder import InOrderBooks
from feeder.wire import BID, BookAction, DeltaFlags, Packet, PacketEncoder, decode_packet


def level(first: int, qty: int) -> Packet:
    """One delta setting the bid at 100 to ``qty`` (0 deletes it)."""
    enc = PacketEncoder(1, 1)
    enc.begin(bytearray(1400), first)
    action = BookAction.DELETE if qty == 0 else BookAction.UPDATE
    enc.add_book_delta(7, BID, action, DeltaFlags.LAST_IN_EVENT, 100, qty, first, 0, 0)
    p = decode_packet(enc.finish(1))
    assert isinstance(p, Packet)
    return p


def bid(books: ReceiverBooks) -> list[tuple[int, int]]:
    return list(books.books[7].top_bids(1)) if 7 in books.books else []


def test_a_recovered_packet_is_applied_before_the_ones_that_overtook_it() -> None:
    books = ReceiverBooks()
    ordered = InOrderBooks(books)
    ordered.offer(1, 1, 1, 2, level(1, 5))
    ordered.offer(1, 1, 3, 4, level(3, 0))  # seq 2 lost: this waits
    assert bid(books) == [(100, 5)] and ordered.waiting == 1
    ordered.offer(1, 1, 2, 3, level(2, 9))  # recovered
    assert bid(books) == []  # 9 then delete: the delete wins, as it did at the exchange
    assert ordered.waiting == 0 and ordered.waited_packets == 1


def test_a_hole_given_up_is_skipped() -> None:
    books = ReceiverBooks()
    ordered = InOrderBooks(books)
    ordered.offer(1, 1, 1, 2, level(1, 5))
    ordered.offer(1, 1, 3, 4, level(3, 8))
    ordered.settle(lambda ch, start, end: True)  # still recoverable: keep waiting
    assert bid(books) == [(100, 5)]
    ordered.settle(lambda ch, start, end: not (ch == 1 and (start, end) == (2, 3)))
    assert bid(books) == [(100, 8)] and ordered.skipped_holes == 1
    ordered.offer(1, 1, 2, 3, level(2, 9))  # too late now: not applied over newer state
    assert bid(books) == [(100, 8)] and ordered.late_packets == 1


def test_waiting_is_bounded_and_flush_applies_the_rest() -> None:
    books = ReceiverBooks()
    ordered = InOrderBooks(books, max_waiting=2)
    ordered.offer(1, 1, 1, 2, level(1, 1))
    ordered.offer(1, 1, 3, 4, level(3, 3))
    ordered.offer(1, 1, 5, 6, level(5, 5))
    assert ordered.waiting == 2
    ordered.offer(1, 1, 7, 8, level(7, 7))  # over the bound: the first hole is given up
    assert ordered.skipped_holes == 1 and bid(books) == [(100, 3)]
    ordered.flush()
    assert bid(books) == [(100, 7)] and ordered.waiting == 0


def test_a_new_session_starts_over() -> None:
    books = ReceiverBooks()
    ordered = InOrderBooks(books)
    ordered.offer(1, 1, 1, 2, level(1, 1))
    ordered.offer(1, 1, 3, 4, level(3, 3))
    ordered.offer(2, 1, 1, 2, level(1, 4))  # restart: the old session's waiting go first
    assert bid(books) == [(100, 4)] and ordered.waiting == 0
