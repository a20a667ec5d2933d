"""Book changes, trades and instrument facts -> the publisher, on each instrument's channel."""

from __future__ import annotations

import time

from feeder.instruments import Instrument
from feeder.publish.publisher import Publisher
from feeder.wire import LevelsFlags, PacketEncoder

TOP = int(LevelsFlags.TOP_OF_BOOK)


class WireOutput:
    """Implements the book synchronizer's output (and trade/status publishing) for the wire."""

    def __init__(self, publisher: Publisher, instruments: list[Instrument]) -> None:
        self.publisher = publisher
        # Instrument ids are dense from 1: a list beats a dict on the hot path.
        self._channel = [0] * (max((i.instrument_id for i in instruments), default=0) + 1)
        for inst in instruments:
            self._channel[inst.instrument_id] = inst.channel
        self.instruments = instruments

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
    ) -> None:
        self.publisher.book_delta(
            self._channel[instrument_id],
            instrument_id,
            side,
            action,
            flags,
            price,
            qty,
            seq,
            exchange_ts_ns,
            receive_ts_ns,
        )

    def trade(
        self,
        instrument_id: int,
        side: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        self.publisher.trade(
            self._channel[instrument_id],
            instrument_id,
            side,
            0,
            price,
            qty,
            trade_id,
            exchange_ts_ns,
            receive_ts_ns,
        )

    def top(
        self,
        instrument_id: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
    ) -> None:
        def add(enc: PacketEncoder) -> None:
            enc.add_book_levels(instrument_id, TOP, seq, exchange_ts_ns, receive_ts_ns, bids, asks)

        self.publisher.message(self._channel[instrument_id], add)

    def status(self, instrument_id: int, code: int, detail: int, ts_ns: int) -> None:
        exchange_id = 0
        for inst in self.instruments:
            if inst.instrument_id == instrument_id:
                exchange_id = inst.exchange_id
                break
        now = ts_ns or time.time_ns()

        def add(enc: PacketEncoder) -> None:
            enc.add_status(instrument_id, exchange_id, code, detail, now)

        self.publisher.message(
            self._channel[instrument_id] or self.publisher.channels.channels[0], add
        )

    def definitions(self) -> None:
        """Publish every instrument's definition (at start, and periodically for late joiners)."""
        for inst in self.instruments:

            def add(enc: PacketEncoder, i: Instrument = inst) -> None:
                enc.add_instrument_definition(
                    i.instrument_id, i.exchange_id, i.price_exponent, i.qty_exponent, i.symbol
                )

            self.publisher.message(inst.channel, add)
