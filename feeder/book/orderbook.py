"""One side-by-side price ladder with fixed-point prices and quantities.

Levels live in a dict (price -> qty) per side plus a sorted price list, so a level change is a
dict write and (only for a new or removed price) one bisect insert/delete; the top of book and
the top-N walk for checksums read the sorted list directly.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping

from feeder.wire import ASK, BID, BookAction

ADD, UPDATE, DELETE = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE
_ADD, _UPDATE, _DELETE = int(ADD), int(UPDATE), int(DELETE)
_BID, _ASK = int(BID), int(ASK)

Change = tuple[int, int, int, int]  # (side, action, price, qty) as the wire's BookDelta has them


class OrderBook:
    __slots__ = ("_ask_px", "_ask_txt", "_bid_px", "_bid_txt", "_text", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bid_px: list[int] = []  # ascending: best bid is the last
        self._ask_px: list[int] = []  # ascending: best ask is the first
        # Optional: each level's text (a checksum's), in the price lists' order; see level_texts.
        self._text: Mapping[tuple[int, int], str] | None = None
        self._bid_txt: list[str] = []
        self._ask_txt: list[str] = []

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid_px.clear()
        self._ask_px.clear()
        self._bid_txt.clear()
        self._ask_txt.clear()

    def level_texts(self, text: Mapping[tuple[int, int], str]) -> tuple[list[str], list[str]]:
        """Each level's ``text[(price, qty)]``, bids then asks, ascending by price like the price
        lists (the best bid is the last, the best ask the first). The lists are the book's own,
        kept in step with every change from now on (until another ``text`` is asked for), so a
        checksum over the top levels is a slice and a join, not a walk: read, don't modify.
        """
        if text is not self._text:
            self._text = text
            bids, asks = self.bids, self.asks
            self._bid_txt = [text[p, bids[p]] for p in self._bid_px]
            self._ask_txt = [text[p, asks[p]] for p in self._ask_px]
        return self._bid_txt, self._ask_txt

    def _set_text(self, is_bid: bool, price: int, qty: int) -> BookAction | None:
        """``set`` for a book keeping level texts: the text list changes where the price did."""
        if is_bid:
            levels, prices, texts = self.bids, self._bid_px, self._bid_txt
        else:
            levels, prices, texts = self.asks, self._ask_px, self._ask_txt
        assert self._text is not None
        if qty:
            if price in levels:
                levels[price] = qty
                texts[bisect_left(prices, price)] = self._text[price, qty]
                return UPDATE
            levels[price] = qty
            i = bisect_left(prices, price)
            prices.insert(i, price)
            texts.insert(i, self._text[price, qty])
            return ADD
        if price in levels:
            del levels[price]
            i = bisect_left(prices, price)
            del prices[i]
            del texts[i]
            return DELETE
        return None

    def set(self, is_bid: bool, price: int, qty: int) -> BookAction | None:
        """Set a level's total quantity (0 deletes); returns what happened, None for a no-op
        (deleting a level that is not there)."""
        if self._text is not None:
            return self._set_text(is_bid, price, qty)
        levels, prices = (self.bids, self._bid_px) if is_bid else (self.asks, self._ask_px)
        if qty:
            if price in levels:
                levels[price] = qty
                return UPDATE
            levels[price] = qty
            insort(prices, price)
            return ADD
        if price in levels:
            del levels[price]
            del prices[bisect_left(prices, price)]
            return DELETE
        return None

    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> list[Change]:
        """``set`` every (price, qty) of ``bids`` then ``asks``; returns what changed, in order,
        as (side, action, price, qty); no-op deletes are left out.

        The same as calling ``set`` per level, in one call: this runs for every book update.
        """
        if self._text is not None:
            return self._apply_text(bids, asks)
        changes: list[Change] = []
        add = changes.append
        # The two sides written out (not a loop over them): a third less time per update, and
        # one side is often empty.
        if bids:
            levels, prices = self.bids, self._bid_px
            for p, q in bids:
                if q:
                    if p in levels:
                        levels[p] = q
                        add((_BID, _UPDATE, p, q))
                    else:
                        levels[p] = q
                        insort(prices, p)
                        add((_BID, _ADD, p, q))
                elif p in levels:
                    del levels[p]
                    del prices[bisect_left(prices, p)]
                    add((_BID, _DELETE, p, q))
        if asks:
            levels, prices = self.asks, self._ask_px
            for p, q in asks:
                if q:
                    if p in levels:
                        levels[p] = q
                        add((_ASK, _UPDATE, p, q))
                    else:
                        levels[p] = q
                        insort(prices, p)
                        add((_ASK, _ADD, p, q))
                elif p in levels:
                    del levels[p]
                    del prices[bisect_left(prices, p)]
                    add((_ASK, _DELETE, p, q))
        return changes

    def _apply_text(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> list[Change]:
        """``apply`` for a book keeping level texts (``_set_text`` per level, inlined)."""
        changes: list[Change] = []
        add = changes.append
        text = self._text
        assert text is not None
        for side, levels, prices, texts, rows in (
            (_BID, self.bids, self._bid_px, self._bid_txt, bids),
            (_ASK, self.asks, self._ask_px, self._ask_txt, asks),
        ):
            for p, q in rows:
                if q:
                    if p in levels:
                        levels[p] = q
                        texts[bisect_left(prices, p)] = text[p, q]
                        add((side, _UPDATE, p, q))
                    else:
                        levels[p] = q
                        i = bisect_left(prices, p)
                        prices.insert(i, p)
                        texts.insert(i, text[p, q])
                        add((side, _ADD, p, q))
                elif p in levels:
                    del levels[p]
                    i = bisect_left(prices, p)
                    del prices[i]
                    del texts[i]
                    add((side, _DELETE, p, q))
        return changes

    def best_bid(self) -> tuple[int, int] | None:
        if not self._bid_px:
            return None
        p = self._bid_px[-1]
        return p, self.bids[p]

    def best_ask(self) -> tuple[int, int] | None:
        if not self._ask_px:
            return None
        p = self._ask_px[0]
        return p, self.asks[p]

    def crossed(self) -> bool:
        return bool(self._bid_px and self._ask_px and self._bid_px[-1] >= self._ask_px[0])

    def top_bids(self, n: int) -> list[tuple[int, int]]:
        """Best ``n`` bids, best first."""
        if n <= 0:
            return []
        bids = self.bids
        return [(p, bids[p]) for p in reversed(self._bid_px[-n:])]

    def top_asks(self, n: int) -> list[tuple[int, int]]:
        """Best ``n`` asks, best first."""
        asks = self.asks
        return [(p, asks[p]) for p in self._ask_px[:n]]

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (the exchange's subscribed depth)."""
        if len(self._bid_px) > depth:
            for p in self._bid_px[: len(self._bid_px) - depth]:
                del self.bids[p]
            if self._text is not None:
                del self._bid_txt[: len(self._bid_px) - depth]
            del self._bid_px[: len(self._bid_px) - depth]
        if len(self._ask_px) > depth:
            for p in self._ask_px[depth:]:
                del self.asks[p]
            del self._ask_px[depth:]
            if self._text is not None:
                del self._ask_txt[depth:]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderBook) and self.bids == other.bids and self.asks == other.asks

    __hash__ = None  # type: ignore[assignment]
