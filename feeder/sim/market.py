"""A deterministic market per symbol: a book that random-walks, and trades.

The simulator's truth. Prices and sizes are fixed-point ints (scale 8) on the instrument's tick
and lot grid, so every exchange protocol renders them as the exchange would (with its own
precision) and the feeder's parsed books can be compared level for level with this one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from feeder.book.orderbook import OrderBook

SCALE = 10**8


@dataclass(frozen=True)
class Instrument:
    symbol: str
    price_places: int = 2  # tick = 10**-price_places
    qty_places: int = 4  # lot = 10**-qty_places
    mid: int = 30_000 * SCALE
    depth: int = 25  # levels per side the market keeps

    @property
    def tick(self) -> int:
        return int(10 ** (8 - self.price_places))

    @property
    def lot(self) -> int:
        return int(10 ** (8 - self.qty_places))


@dataclass(frozen=True)
class LevelChange:
    is_bid: bool
    price: int
    qty: int  # new total; 0 deletes


@dataclass(frozen=True)
class Trade:
    price: int
    qty: int
    buyer_aggressor: bool
    trade_id: int


@dataclass
class Event:
    """What one market step produced: level changes (one book update) and/or a trade."""

    changes: list[LevelChange] = field(default_factory=list)
    trade: Trade | None = None


class SymbolMarket:
    def __init__(self, inst: Instrument, seed: int) -> None:
        self.inst = inst
        self.rng = random.Random(seed)
        self.book = OrderBook()
        self.trade_id = 0
        tick = inst.tick
        best_bid = inst.mid - tick
        for i in range(inst.depth):
            self.book.set(True, best_bid - i * tick, self._qty())
            self.book.set(False, inst.mid + tick + i * tick, self._qty())

    def _qty(self) -> int:
        return self.rng.randrange(1, 5000) * self.inst.lot

    def step(self) -> Event:
        """One market event; the book is already updated when it returns."""
        rng, book, tick = self.rng, self.book, self.inst.tick
        ev = Event()
        r = rng.random()
        bid = book.best_bid()
        ask = book.best_ask()
        assert bid is not None and ask is not None
        if r < 0.15:
            # A trade takes part of the best level on one side.
            buy = rng.random() < 0.5
            px, have = ask if buy else bid
            qty = min(have, self._qty())
            self.trade_id += 1
            ev.trade = Trade(px, qty, buy, self.trade_id)
            ev.changes.append(self._set(not buy, px, have - qty))
            if have - qty == 0:
                ev.changes.append(self._refill(not buy))
        elif r < 0.55:
            # Size changes at a random existing level.
            is_bid = rng.random() < 0.5
            top = book.top_bids(self.inst.depth) if is_bid else book.top_asks(self.inst.depth)
            px, _ = top[rng.randrange(len(top))]
            ev.changes.append(self._set(is_bid, px, self._qty()))
        elif r < 0.80:
            # A new level inside the spread, when there is room; else a new level behind.
            is_bid = rng.random() < 0.5
            if ask[0] - bid[0] > tick:
                px = bid[0] + tick if is_bid else ask[0] - tick
            else:
                behind = self.inst.depth * tick
                px = bid[0] - behind if is_bid else ask[0] + behind
            if (px in book.bids) if is_bid else (px in book.asks):
                ev.changes.append(self._set(is_bid, px, self._qty()))
            else:
                ev.changes.append(self._set(is_bid, px, self._qty()))
                ev.changes.extend(self._trim(is_bid))
        else:
            # A level is cancelled (never the last few on a side).
            is_bid = rng.random() < 0.5
            side = book.bids if is_bid else book.asks
            if len(side) > 5:
                top = book.top_bids(len(side)) if is_bid else book.top_asks(len(side))
                px, _ = top[rng.randrange(len(top))]
                ev.changes.append(self._set(is_bid, px, 0))
                ev.changes.append(self._refill(is_bid))
        return ev

    def _set(self, is_bid: bool, price: int, qty: int) -> LevelChange:
        self.book.set(is_bid, price, qty)
        return LevelChange(is_bid, price, qty)

    def _refill(self, is_bid: bool) -> LevelChange:
        """Add a level behind the worst one so the side keeps its depth."""
        book, tick = self.book, self.inst.tick
        side = book.top_bids(len(book.bids)) if is_bid else book.top_asks(len(book.asks))
        worst = side[-1][0] if side else self.inst.mid
        return self._set(is_bid, worst - tick if is_bid else worst + tick, self._qty())

    def _trim(self, is_bid: bool) -> list[LevelChange]:
        """Drop levels beyond the market's depth."""
        book = self.book
        levels = book.top_bids(len(book.bids)) if is_bid else book.top_asks(len(book.asks))
        return [self._set(is_bid, px, 0) for px, _ in levels[self.inst.depth :]]
