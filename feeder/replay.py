"""``feeder replay``: recorded raw frames through the same parse -> book -> encode path.

Input is one WebSocket text frame per line, exactly as the exchange sent it (``feeder record``
writes that format). ``--snapshot SYMBOL=FILE`` supplies the REST depth snapshot exchanges like
Binance need. Runs as fast as it can and reports throughput plus, per symbol, trades, traded
quantity, book updates, gaps, resyncs and the final top of book.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeder.book.sync import SymbolBook
from feeder.exchanges import adapter_class
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.instruments import Registry
from feeder.normalize.decimal import render
from feeder.publish.book_output import WireOutput
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import SendPath
from feeder.publish.transport import Transport, UdpTransport


class NullTransport:
    """Counts datagrams and drops them: measures everything up to the socket."""

    name = "null"

    def __init__(self) -> None:
        self.datagrams = 0
        self.bytes = 0

    @property
    def pending(self) -> int:
        return 0

    def offer(self, packet: bytes | memoryview, dest: int) -> bool:
        self.datagrams += 1
        self.bytes += len(packet)
        return True

    def flush(self) -> int:
        return 0

    def take_unsent(self) -> list[tuple[bytes, int]]:
        return []

    def close(self) -> None:
        pass

    def info(self) -> dict[str, object]:
        return {"transport": "null", "datagrams": self.datagrams, "bytes": self.bytes}


@dataclass
class SymbolStats:
    trades: int = 0
    traded_qty: int = 0
    unresolved: list[str] = field(default_factory=list)


class _ReplaySink:
    def __init__(
        self, books: dict[str, SymbolBook], output: WireOutput, ids: dict[str, int]
    ) -> None:
        self.books = books
        self.output = output
        self.ids = ids
        self.stats = {s: SymbolStats() for s in books}
        self.unknown = 0

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
        st = self.stats.get(symbol)
        if st is None:
            self.unknown += 1
            return
        st.trades += 1
        st.traded_qty += qty
        self.output.trade(
            self.ids[symbol], side, price, qty, trade_id, exchange_ts_ns, receive_ts_ns
        )

    def book(self, symbol: str, update: BookUpdate) -> None:
        book = self.books.get(symbol)
        if book is None:
            self.unknown += 1
            return
        book.on_update(update)

    def control(self, kind: str, detail: str) -> None:
        pass


def parse_sink(spec: str, iface: str) -> tuple[Transport, ChannelMap]:
    if spec == "null":
        return NullTransport(), ChannelMap.single("239.100.0.1", 31001, 1)
    if spec.startswith("udp://"):
        group, _, port = spec[len("udp://") :].rpartition(":")
        if not port.isdigit():
            raise ValueError(f"--sink {spec!r}: use udp://GROUP:PORT")
        chmap = ChannelMap.single(group, int(port), 1)
        loop = iface.startswith("127.")
        return UdpTransport.open(iface, chmap.destinations, ttl=0 if loop else 1, loop=loop), chmap
    raise ValueError(f"--sink {spec!r}: use null or udp://GROUP:PORT")


class _Discover:
    """A sink that only notes which symbols the frames mention."""

    def __init__(self) -> None:
        self.symbols: dict[str, None] = {}

    def trade(self, symbol: str, *args: int) -> None:
        self.symbols[symbol] = None

    def book(self, symbol: str, update: BookUpdate) -> None:
        self.symbols[symbol] = None

    def control(self, kind: str, detail: str) -> None:
        pass


def discover_symbols(exchange: str, lines: Iterable[str]) -> list[str]:
    adapter = adapter_class(exchange)()
    found = _Discover()
    for line in lines:
        if line.strip():
            with contextlib.suppress(ParseError):  # bad frames are counted in the real pass
                adapter.parse(line.rstrip("\n"), 0, found)
    return list(found.symbols)


def replay(
    exchange: str,
    lines: list[str],
    snapshots: dict[str, Path],
    symbols: list[str],
    transport: Transport,
    chmap: ChannelMap,
) -> dict[str, Any]:
    """Replay ``lines`` (frames, already in memory so file I/O is not timed)."""
    adapter = adapter_class(exchange)()
    registry = Registry()
    for sym in symbols:
        registry.add(exchange, adapter.exchange_id, sym, chmap.channels[0])
    path = SendPath()
    path.attach(transport, f"replay sink {transport.name}")
    publisher = Publisher(path, chmap)
    output = WireOutput(publisher, list(registry))
    resync_requests: list[str] = []
    books = {
        inst.symbol: SymbolBook(
            inst.symbol,
            inst.instrument_id,
            adapter.sequence,
            output,
            resync_requests.append,
            checksum=adapter.checksum,
            depth=adapter.book_depth,
        )
        for inst in registry
    }
    sink = _ReplaySink(books, output, {i.symbol: i.instrument_id for i in registry})
    for sym, file in snapshots.items():
        if sym not in books:
            raise ValueError(
                f"--snapshot {sym}: the input has no frames for it "
                f"(symbols seen: {', '.join(symbols) or 'none'})"
            )
        books[sym].load_snapshot(adapter.parse_snapshot(sym, file.read_bytes(), 0))
    errors: dict[str, int] = {}
    frames = 0
    parse = adapter.parse
    start = time.perf_counter()
    now = time.time_ns()
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        frames += 1
        try:
            parse(line, now, sink)
        except ParseError as e:
            errors[e.reason] = errors.get(e.reason, 0) + 1
        if frames & 63 == 0:
            publisher.poll()
    publisher.poll()
    elapsed = time.perf_counter() - start
    publisher.close()
    per_symbol = {}
    for sym, book in books.items():
        st, c = sink.stats[sym], book.counters
        per_symbol[sym] = {
            "trades": st.trades,
            "traded_qty": render(st.traded_qty, adapter.qty_scale),
            "book_updates": c.updates,
            "gaps": c.gaps,
            "resyncs": c.resyncs,
            "checksum_errors": c.checksum_errors,
            "state": book.state.value,
            "bids": [
                [render(p, adapter.price_scale), render(q, adapter.qty_scale)]
                for p, q in book.book.top_bids(10)
            ],
            "asks": [
                [render(p, adapter.price_scale), render(q, adapter.qty_scale)]
                for p, q in book.book.top_asks(10)
            ],
        }
    return {
        "exchange": exchange,
        "messages": frames,
        "elapsed_s": round(elapsed, 6),
        "msgs_per_s": round(frames / elapsed, 1) if elapsed else 0.0,
        "wire_messages": sum(s.messages for s in publisher.stats()),
        "parse_errors": errors,
        "unknown_symbol_frames": sink.unknown,
        "resync_requests": len(resync_requests),
        "sink": transport.info(),
        "symbols": per_symbol,
    }
