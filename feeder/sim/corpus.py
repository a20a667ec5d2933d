"""Recorded-style corpora without a network: an exchange's frames for N market events.

Used by replay tests and ``bench/pipeline``: the frames are exactly what the simulator would
send on a connection subscribed to every symbol (a pushed snapshot first, or a REST snapshot
body alongside), and the corpus knows the true final books and traded quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

from feeder.book.orderbook import OrderBook
from feeder.exchanges import adapter_class
from feeder.exchanges.base import SnapshotSource
from feeder.sim.catalog import instruments
from feeder.sim.protocols import PROTOCOLS
from feeder.sim.server import SimExchange


@dataclass
class Corpus:
    exchange: str
    lines: list[str]
    snapshots: dict[str, bytes]  # REST snapshot bodies (exchanges that need them)
    books: dict[str, OrderBook]  # the true books at the end
    traded_qty: dict[str, int]
    trades: dict[str, int]


def generate(exchange: str, symbols: int, events: int, seed: int = 7) -> Corpus:
    ex = SimExchange(exchange, PROTOCOLS[exchange], instruments(exchange, symbols), seed=seed)
    proto = ex.protocol
    lines: list[str] = []
    snapshots: dict[str, bytes] = {}
    rest = adapter_class(exchange).snapshot_source is SnapshotSource.REST
    for sym, market in ex.markets.items():
        if rest:
            snapshots[sym] = proto.rest_snapshot(sym, market)
        else:
            lines.extend(proto.snapshot_frames(sym, market))
    traded = dict.fromkeys(ex.markets, 0)
    trades = dict.fromkeys(ex.markets, 0)
    names = list(ex.markets)
    for i in range(events):
        sym = names[i % len(names)]
        market = ex.markets[sym]
        ev = market.step()
        if ev.trade is not None:
            lines.extend(proto.trade_frames(sym, market, ev.trade))
            traded[sym] += ev.trade.qty
            trades[sym] += 1
        if ev.changes:
            lines.extend(proto.book_frames(sym, market, ev.changes))
    books = {}
    for sym, market in ex.markets.items():
        b = OrderBook()
        for p, q in market.book.top_bids(len(market.book.bids)):
            b.set(True, p, q)
        for p, q in market.book.top_asks(len(market.book.asks)):
            b.set(False, p, q)
        books[sym] = b
    one_per_line = [line.replace("\n", " ") for line in lines]
    return Corpus(exchange, one_per_line, snapshots, books, traded, trades)
