"""Damaged frames amid good ones, through the runtime's real path: router, books, wire.

What an adapter accepts does not stop at ``parse``: a book delta may wait in a buffer until its
REST snapshot arrives and be published only then, outside any ``parse`` call, where nothing
would count it. So here real corpora run through ``ExchangeRouter`` -> ``SymbolBook`` ->
``WireOutput`` -> ``Publisher``, a few frames replaced by mutated ones, with snapshots loaded
midway and on every resync as the runtime does. Only ``ParseError`` may leave ``parse``;
loading snapshots, publishing and closing must never raise; every packet sent must decode.
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.book.sync import SymbolBook
from feeder.exchanges import ADAPTERS, adapter_class
from feeder.exchanges.base import ParseError, SnapshotSource
from feeder.instruments import Registry
from feeder.publish.book_output import WireOutput
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import Candidate, SendPath
from feeder.runtime.router import ExchangeRouter
from feeder.sim.corpus import Corpus, generate
from feeder.wire import Packet, decode_packet
from tests.feeder.fakes import MemoryTransport
from tests.fuzz.budget import examples
from tests.fuzz.mutate import mutated_frame


@functools.cache
def corpus(exchange: str) -> Corpus:
    return generate(exchange, symbols=3, events=120, seed=11)


class Runtime:
    """The runtime's per-exchange objects, with an in-memory transport under the publisher."""

    def __init__(self, exchange: str, symbols: list[str]) -> None:
        self.adapter = adapter_class(exchange)()
        self.transport = MemoryTransport(capacity=1 << 20)
        path = SendPath([Candidate("memory", lambda: self.transport)])
        path.start()
        self.publisher = Publisher(path, ChannelMap.single("239.1.1.1", 31001, 1))
        registry = Registry()
        for s in symbols:
            registry.add(exchange, self.adapter.exchange_id, s, 1)
        output = WireOutput(self.publisher, list(registry))
        self.resyncs: list[str] = []
        self.books = {
            i.symbol: SymbolBook(
                i.symbol,
                i.instrument_id,
                self.adapter.sequence,
                output,
                self.resyncs.append,
                checksum=self.adapter.checksum,
                depth=self.adapter.book_depth,
            )
            for i in registry
        }
        instruments = {i.symbol: i for i in registry}
        self.router = ExchangeRouter(exchange, instruments, self.books, output, lambda _: None)
        self.parse_errors: Counter[str] = Counter()

    def frame(self, frame: str | bytes) -> None:
        """What ``ExchangeConnection._read`` does with one frame, then the flusher's poll."""
        try:
            self.adapter.parse(frame, 1_700_000_000_000_000_000, self.router)
        except ParseError as e:
            self.parse_errors[e.reason] += 1
        self.publisher.poll()

    def snapshots(self, bodies: dict[str, bytes], symbols: list[str]) -> None:
        """REST snapshots for ``symbols`` (what ``_fetch_snapshot`` does), replaying buffers."""
        for s in symbols:
            update = self.adapter.parse_snapshot(s, bodies[s], 1_700_000_000_000_000_000)
            self.books[s].load_snapshot(update)
        self.publisher.poll()


@pytest.mark.parametrize("exchange", sorted(ADAPTERS))
@examples(30)
@given(data=st.data())
def test_damaged_frames_never_break_the_runtime(exchange: str, data: st.DataObject) -> None:
    c = corpus(exchange)
    lines: list[str | bytes] = list(c.lines)
    damaged = data.draw(st.lists(st.integers(0, len(lines) - 1), max_size=6, unique=True))
    for i in damaged:
        lines[i] = data.draw(mutated_frame([c.lines[i]]))
    symbols = list(c.books)
    rt = Runtime(exchange, symbols)
    rest = rt.adapter.snapshot_source is SnapshotSource.REST
    half = len(lines) // 2
    for n, frame in enumerate(lines):
        if rest and n == half:  # deltas so far were buffered: the snapshot replays them
            rt.snapshots(c.snapshots, symbols)
        rt.frame(frame)
        if rest and rt.resyncs:
            wanted, rt.resyncs[:] = list(dict.fromkeys(rt.resyncs)), []
            rt.snapshots(c.snapshots, wanted)
    assert rt.publisher.close()
    packets = [p for p, _ in rt.transport.sent]
    assert packets
    for p in packets:
        assert isinstance(decode_packet(p), Packet), decode_packet(p)
    if not damaged:
        assert not rt.parse_errors
