"""One exchange's parsed frames -> books and the wire (the adapter's Sink)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from feeder.book.sync import SymbolBook
from feeder.exchanges.base import BookUpdate
from feeder.instruments import Instrument
from feeder.publish.book_output import WireOutput


class ExchangeRouter:
    def __init__(
        self,
        exchange: str,
        instruments: dict[str, Instrument],
        books: dict[str, SymbolBook],
        output: WireOutput,
        reply: Callable[[str], None],
    ) -> None:
        self.exchange = exchange
        self.instruments = instruments
        self.books = books
        self.output = output
        self.reply = reply  # sends a frame back on the connection (app-level pongs)
        self.trades = 0
        self.book_updates = 0
        self.unknown_symbols: Counter[str] = Counter()
        self.controls: Counter[str] = Counter()
        self.errors: list[str] = []

    def trade(
        self,
        symbol: str,
        side: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        inst = self.instruments.get(symbol)
        if inst is None:
            self.unknown_symbols[symbol] += 1
            return
        self.trades += 1
        self.output.trade(
            inst.instrument_id, side, price, qty, trade_id, exchange_ts_ns, receive_ts_ns
        )

    def book(self, symbol: str, update: BookUpdate) -> None:
        book = self.books.get(symbol)
        if book is None:
            self.unknown_symbols[symbol] += 1
            return
        self.book_updates += 1
        book.on_update(update)

    def control(self, kind: str, detail: str) -> None:
        self.controls[kind] += 1
        if kind == "ping":
            self.reply(detail)
        elif kind == "error" and len(self.errors) < 100:
            self.errors.append(detail)
