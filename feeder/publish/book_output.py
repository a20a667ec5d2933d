"""Book changes, trades and instrument facts -> the publisher, on each instrument's channel."""

from __future__ import annotations

import time

from feeder.instruments import Instrument
from feeder.publish.publisher import Publisher
from feeder.wire import LevelsFlags, PacketEncoder, PacketFull

TOP = int(LevelsFlags.TOP_OF_BOOK)
# Up to this many changes, one publisher call per change is cheaper than the batch's set-up
# (measured: batch ~1.3 us + 0.65 us per change, per-change ~1.1 us).
_FEW = 3


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

    def deltas(
        self,
        instrument_id: int,
        flags: int,
        last_flags: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        changes: list[tuple[int, int, int, int]],
    ) -> None:
        """One book event's (side, action, price, qty) changes: ``level`` for each, ``flags``
        on all but the last, which gets ``last_flags``."""
        n = len(changes)
        channel = self._channel[instrument_id]
        if n <= _FEW:
            last = n - 1
            publisher = self.publisher
            for i, (side, action, price, qty) in enumerate(changes):
                publisher.book_delta(
                    channel,
                    instrument_id,
                    side,
                    action,
                    last_flags if i == last else flags,
                    price,
                    qty,
                    seq,
                    exchange_ts_ns,
                    receive_ts_ns,
                )
            return
        self._batch(
            channel, instrument_id, flags, last_flags, seq, exchange_ts_ns, receive_ts_ns, changes
        )

    def _batch(
        self,
        channel: int,
        instrument_id: int,
        flags: int,
        last_flags: int,
        seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        changes: list[tuple[int, int, int, int]],
    ) -> None:
        # Apart from deltas(): the closure's cells would cost every call, batch or not.
        n = len(changes)
        done = 0

        def add(enc: PacketEncoder) -> None:
            nonlocal done
            done = enc.add_book_deltas(
                instrument_id, flags, last_flags, seq, exchange_ts_ns, receive_ts_ns, changes, done
            )
            if done < n:  # the packet filled up: the publisher ships it and calls again
                raise PacketFull(f"{n - done} of {n} book deltas left")

        while done < n:
            before = done
            try:
                self.publisher.message(channel, add)
            except PacketFull:
                # The retry after shipping filled a whole packet too (a large snapshot): go on
                # with a fresh one, unless nothing fits even in that.
                if done == before:
                    raise

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
