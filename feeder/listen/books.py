"""Books rebuilt at the receiver from the wire: what a downstream consumer would hold.

Fed fully decoded packets; applies instrument definitions, book deltas (clear/add/update/delete,
snapshot flags) and counts trades, so a run can compare the receiver's books with the
exchange's (the simulator's) level for level.
"""

from __future__ import annotations

from typing import Any

from feeder.book.orderbook import OrderBook
from feeder.normalize.decimal import render
from feeder.wire import BookAction, BookDelta, Exchange, InstrumentDefinition, Packet, Trade
from feeder.wire import Status as StatusMsg


class ReceiverBooks:
    def __init__(self) -> None:
        self.books: dict[int, OrderBook] = {}
        self.names: dict[int, tuple[str, str]] = {}
        self.trades: dict[int, int] = {}
        self.statuses: dict[int, int] = {}

    def apply(self, packet: Packet) -> None:
        for m in packet.messages:
            if isinstance(m, BookDelta):
                book = self.books.get(m.instrument_id)
                if book is None:
                    book = self.books[m.instrument_id] = OrderBook()
                if m.action is BookAction.CLEAR:
                    book.clear()
                else:
                    book.set(m.side == 1, m.price, 0 if m.action is BookAction.DELETE else m.qty)
            elif isinstance(m, Trade):
                self.trades[m.instrument_id] = self.trades.get(m.instrument_id, 0) + 1
            elif isinstance(m, InstrumentDefinition):
                try:
                    exchange = Exchange(m.exchange_id).name.lower()
                except ValueError:
                    exchange = str(m.exchange_id)
                self.names[m.instrument_id] = (exchange, m.symbol)
            elif isinstance(m, StatusMsg):
                self.statuses[int(m.status)] = self.statuses.get(int(m.status), 0) + 1

    def top(self, depth: int) -> dict[str, dict[str, dict[str, Any]]]:
        """exchange -> symbol -> best ``depth`` levels as decimal strings."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for iid, book in self.books.items():
            exchange, symbol = self.names.get(iid, ("unknown", str(iid)))
            out.setdefault(exchange, {})[symbol] = {
                "bids": [[render(p), render(q)] for p, q in book.top_bids(depth)],
                "asks": [[render(p), render(q)] for p, q in book.top_asks(depth)],
                "trades": self.trades.get(iid, 0),
            }
        return out
