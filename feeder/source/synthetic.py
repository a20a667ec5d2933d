"""A deterministic synthetic market: trades and book deltas at a fixed rate.

Stands in for exchanges in the spine demo and tests: every message is valid, instruments are
spread over channels, and the same seed always produces the same stream.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from feeder.publish.publisher import Publisher
from feeder.wire import ASK, BID, BookAction, DeltaFlags, Side


class SyntheticSource:
    def __init__(self, publisher: Publisher, instruments: int = 16, seed: int = 1) -> None:
        self.pub = publisher
        self.channels = publisher.channels.channels
        self.instruments = instruments
        self._rng = random.Random(seed)
        self._mid = [50_000 * 10**8 + i * 10**8 for i in range(instruments)]
        self._seq = [0] * instruments
        self.produced = 0

    def emit(self, n: int, now_ns: int) -> None:
        """Produce ``n`` messages: roughly one trade per four book deltas."""
        pub, rng, chans = self.pub, self._rng, self.channels
        nchan = len(chans)
        for _ in range(n):
            i = rng.randrange(self.instruments)
            ch = chans[i % nchan]
            self._mid[i] += rng.randrange(-2, 3) * 10**6
            price = self._mid[i] + rng.randrange(1, 50) * 10**6
            qty = rng.randrange(1, 10_000) * 10**4
            self._seq[i] += 1
            if rng.random() < 0.2:
                pub.trade(
                    ch,
                    i + 1,
                    Side.BUY if rng.random() < 0.5 else Side.SELL,
                    0,
                    price,
                    qty,
                    self._seq[i],
                    now_ns,
                    now_ns,
                )
            else:
                pub.book_delta(
                    ch,
                    i + 1,
                    BID if rng.random() < 0.5 else ASK,
                    BookAction.UPDATE,
                    DeltaFlags.LAST_IN_EVENT,
                    price,
                    qty,
                    self._seq[i],
                    now_ns,
                    now_ns,
                )
        self.produced += n

    def run(
        self,
        rate: int,
        duration_s: float,
        *,
        tick_s: float = 0.001,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Emit at ``rate`` msgs/s for ``duration_s``, polling the publisher every tick."""
        start = clock()
        end = start + duration_s
        while True:
            now = clock()
            if now >= end:
                break
            due = int((now - start) * rate) - self.produced
            if due > 0:
                self.emit(due, time.time_ns())
            self.pub.poll()
            # Sleep the rest of the tick; a busy loop would only compete with the receiver for
            # this machine's two cores.
            slack = tick_s - (clock() - now)
            if slack > 0:
                time.sleep(slack)
        due = int(duration_s * rate) - self.produced
        if due > 0:
            self.emit(due, time.time_ns())
        self.pub.poll()
