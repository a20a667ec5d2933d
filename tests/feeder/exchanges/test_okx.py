"""OKX v5 adapter and simulator: frames, checksum, seqId linking, round trips with faults."""

from __future__ import annotations

import asyncio
import zlib

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.book.orderbook import OrderBook
from feeder.book.sequence import Verdict
from feeder.book.sync import State, SymbolBook
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.exchanges.okx import OkxAdapter, checksum_text, signed32
from feeder.normalize.decimal import parse, render
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.okx import OkxSim
from feeder.sim.server import SimExchange, Simulator
from feeder.wire import Side
from tests.feeder.exchanges.harness import NullOutput, RecordingSink, roundtrip

E8 = 10**8

# Frames as the OKX v5 docs show them ("Trades channel", "Order book channel").
TRADE = (
    '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
    '"tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy",'
    '"ts":"1630048897897","count":"3","source":"0","seqId":1234}]}'
)
SNAPSHOT = (
    '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{'
    '"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],'
    '"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],'
    '"ts":"1597026383085","checksum":-855196043,"prevSeqId":-1,"seqId":123456}]}'
)
UPDATE = (
    '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{'
    '"asks":[["8476.98","0","0","0"]],"bids":[["8476.97","300","0","13"]],'
    '"ts":"1597026383185","checksum":1234,"prevSeqId":123456,"seqId":123457}]}'
)


def test_trade_frame() -> None:
    sink = RecordingSink()
    OkxAdapter().parse(TRADE, 99, sink)
    assert sink.trades == [
        ("BTC-USDT", Side.BUY, 42219_9000_0000, 12060306, 130639474, 1630048897897 * 10**6, 99)
    ]


def test_sell_trade_is_the_takers_side() -> None:
    sink = RecordingSink()
    OkxAdapter().parse(TRADE.replace('"buy"', '"sell"'), 0, sink)
    assert sink.trades[0][1] == Side.SELL


def test_book_snapshot_and_update_frames() -> None:
    sink = RecordingSink()
    adapter = OkxAdapter()
    adapter.parse(SNAPSHOT, 5, sink)
    adapter.parse(UPDATE, 6, sink)
    (sym, snap), (_, upd) = sink.books
    assert sym == "BTC-USDT"
    assert snap.snapshot and (snap.prev_seq, snap.last_seq) == (-1, 123456)
    assert snap.checksum == -855196043 and snap.exchange_ts_ns == 1597026383085 * 10**6
    assert snap.asks == [(847698 * 10**6, 415 * E8), (8477 * E8, 7 * E8)]
    assert snap.bids == [(847697 * 10**6, 256 * E8), (847555 * 10**6, 101 * E8)]
    assert not upd.snapshot and (upd.prev_seq, upd.last_seq) == (123456, 123457)
    assert upd.asks == [(847698 * 10**6, 0)] and upd.bids == [(847697 * 10**6, 300 * E8)]
    assert upd.receive_ts_ns == 6


def _book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> OrderBook:
    book = OrderBook()
    for p, q in bids:
        book.set(True, parse(p), parse(q))
    for p, q in asks:
        book.set(False, parse(p), parse(q))
    return book


def test_checksum_matches_the_documented_examples() -> None:
    # OKX docs, "Checksum": more than 25 levels (two shown), and fewer on the bid side.
    bids, asks = [("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]
    assert checksum_text(bids, asks) == "3366.1:7:3366.8:9:3366:6:3368:8"
    assert OkxAdapter().checksum("BTC-USDT", _book(bids, asks)) == -1881014294
    bids, asks = [("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    assert checksum_text(bids, asks) == "3366.1:7:3366.8:9:3368:8:3372:8"
    assert OkxAdapter().checksum("BTC-USDT", _book(bids, asks)) == 831078360


def test_checksum_covers_the_best_25_levels_only() -> None:
    adapter = OkxAdapter()
    book = OrderBook()
    for i in range(30):
        book.set(True, (1000 - i) * E8, (i + 1) * E8)
        book.set(False, (1001 + i) * E8, (i + 1) * E8)
    base = adapter.checksum("BTC-USDT", book)
    book.set(True, (1000 - 25) * E8, 77 * E8)  # the 26th bid
    book.set(False, (1001 + 29) * E8, 0)  # the 30th ask
    assert adapter.checksum("BTC-USDT", book) == base
    book.set(True, (1000 - 24) * E8, 77 * E8)  # the 25th bid
    assert adapter.checksum("BTC-USDT", book) != base


_sides = st.dictionaries(st.integers(1, 10**6), st.integers(1, 10**9), max_size=40)


@given(_sides, _sides, st.integers(0, 8))
def test_checksum_is_the_crc_of_checksum_text(
    bids: dict[int, int], asks: dict[int, int], scale: int
) -> None:
    """The remembered, interleaved-by-slices string is checksum_text's, on uneven sides too."""
    adapter = OkxAdapter(scale, scale)
    book = OrderBook()
    for p, q in bids.items():
        book.set(True, p, q)
    for p, q in asks.items():
        book.set(False, p + 10**6, q)

    def text(levels: list[tuple[int, int]]) -> list[tuple[str, str]]:
        return [(render(p, scale), render(q, scale)) for p, q in levels]

    expected = checksum_text(text(book.top_bids(25)), text(book.top_asks(25)))
    for _ in range(2):  # rendered, then remembered
        assert adapter.checksum("X", book) == signed32(zlib.crc32(expected.encode()))


def test_subscribe_messages() -> None:
    (msg,) = OkxAdapter().subscribe(["BTC-USDT", "ETH-USDT"])
    assert orjson.loads(msg) == {
        "op": "subscribe",
        "args": [
            {"channel": "trades", "instId": "BTC-USDT"},
            {"channel": "books", "instId": "BTC-USDT"},
            {"channel": "trades", "instId": "ETH-USDT"},
            {"channel": "books", "instId": "ETH-USDT"},
        ],
    }
    (msg,) = OkxAdapter().unsubscribe(["BTC-USDT"])
    assert orjson.loads(msg)["op"] == "unsubscribe"


def test_subscribe_batches_symbols_per_message() -> None:
    adapter = OkxAdapter()
    symbols = [f"C{i}-USDT" for i in range(adapter.symbols_per_message + 1)]
    first, second = adapter.subscribe(symbols)
    assert len(orjson.loads(first)["args"]) == 2 * adapter.symbols_per_message
    assert orjson.loads(second)["args"] == [
        {"channel": "trades", "instId": symbols[-1]},
        {"channel": "books", "instId": symbols[-1]},
    ]
    assert len(first.encode()) < 64 * 1024  # OKX's request size cap


def test_keepalive_is_text_ping_pong() -> None:
    ping = OkxAdapter.ping
    assert ping.message is not None and ping.message() == "ping"
    assert 0 < ping.interval_s < 30 <= ping.stale_after_s  # OKX drops a connection idle 30 s
    sink = RecordingSink()
    OkxAdapter().parse("pong", 0, sink)
    OkxAdapter().parse(b"pong", 0, sink)
    assert sink.controls == [("pong", "pong"), ("pong", "pong")]


def test_event_frames_are_controls() -> None:
    sink = RecordingSink()
    adapter = OkxAdapter()
    adapter.parse(
        '{"id":"1512","event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},'
        '"connId":"a4d3ae55"}',
        0,
        sink,
    )
    adapter.parse(
        '{"id":"1512","event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}',
        0,
        sink,
    )
    adapter.parse(
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a '
        'service upgrade.","connId":"a4d3ae55"}',
        0,
        sink,
    )
    assert sink.controls[:2] == [
        ("subscribed", "books:BTC-USDT"),
        ("error", "60012: Invalid request"),
    ]
    assert sink.controls[2][0] == "info" and "64008" in sink.controls[2][1]
    assert sink.books == [] and sink.trades == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "bad_json"),
        ("[1,2]", "unexpected"),
        ('{"unexpected": "shape"}', "missing_field"),
        (SNAPSHOT.replace('"seqId":123456', '"seq":123456'), "missing_field"),
        (SNAPSHOT.replace('"snapshot"', '"partial"'), "unexpected"),
        (TRADE.replace('"0.12060306"', '"0.000000001"'), "inexact"),
        (TRADE.replace('"42219.9"', '"4x"'), "inexact"),
        (TRADE.replace('"buy"', '"long"'), "unexpected"),
        (TRADE.replace('"130639474"', '"abc"'), "missing_field"),
    ],
)
def test_bad_frames_are_parse_errors(frame: str, reason: str) -> None:
    sink = RecordingSink()
    with pytest.raises(ParseError) as e:
        OkxAdapter().parse(frame, 0, sink)
    assert e.value.reason == reason
    assert sink.trades == []


def _u(prev: int, seq: int) -> BookUpdate:
    return BookUpdate(False, [], [], prev_seq=prev, last_seq=seq)


def test_sequence_rule_links_prev_seq_id() -> None:
    rule = OkxAdapter().sequence
    assert rule.check(10, _u(10, 15), first=True) is Verdict.APPLY
    assert rule.check(15, _u(15, 15), first=False) is Verdict.APPLY  # keepalive, no change
    assert rule.check(15, _u(15, 3), first=False) is Verdict.APPLY  # reset after maintenance
    assert rule.check(15, _u(12, 20), first=False) is Verdict.GAP
    assert rule.check(15, _u(5, 10), first=False) is Verdict.STALE


def test_documented_sequence_example_keeps_the_book_live() -> None:
    # OKX docs, "Sequence ID": snapshot 10, then 10->15, 15->15, 15->3 (reset), 3->5.
    asked: list[str] = []
    book = SymbolBook("BTC-USDT", 1, OkxAdapter().sequence, NullOutput(), asked.append)
    book.on_update(BookUpdate(True, [(E8, E8)], [(2 * E8, E8)], prev_seq=-1, last_seq=10))
    for prev, seq in [(10, 15), (15, 15), (15, 3), (3, 5)]:
        book.on_update(_u(prev, seq))
    assert book.state is State.LIVE and book.seq == 5
    assert book.counters.gaps == 0 and asked == []
    book.on_update(_u(7, 9))
    assert book.counters.gaps == 1 and asked == ["BTC-USDT"]


# --- the simulator, spoken to directly ------------------------------------------------------


async def _exchange(messages: list[str], expect: int) -> list[str]:
    """Send ``messages`` to a quiet simulated OKX and return the first ``expect`` frames."""
    ex = SimExchange("okx", OkxSim, [Instrument("BTC-USDT", 1, 8)])
    sim = Simulator([ex], rate=0)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.url("okx")) as ws:
            for m in messages:
                await ws.send_str(m)
            return [await asyncio.wait_for(ws.receive_str(), 5) for _ in range(expect)]
    finally:
        await sim.stop()


def test_simulator_answers_ping_subscribe_and_bad_symbols() -> None:
    adapter = OkxAdapter()
    assert adapter.ping.message is not None
    messages = [adapter.ping.message(), *adapter.subscribe(["BTC-USDT", "NOPE-USDT"]), "{bad"]
    frames = asyncio.run(_exchange(messages, 7))
    assert frames[0] == "pong"
    sink = RecordingSink()
    for f in frames:
        adapter.parse(f, 0, sink)
    kinds = [k for k, _ in sink.controls]
    assert kinds == ["pong", "subscribed", "subscribed", "error", "error", "error"]
    assert sink.controls[1:3] == [
        ("subscribed", "trades:BTC-USDT"),
        ("subscribed", "books:BTC-USDT"),
    ]
    assert "NOPE-USDT" in sink.controls[3][1] and sink.controls[5][1].startswith("60012")
    # The pushed snapshot follows the books acknowledgement and checks out.
    ((sym, snap),) = sink.books
    assert sym == "BTC-USDT" and snap.snapshot and snap.prev_seq == -1
    book = OrderBook()
    for p, q in snap.bids:
        book.set(True, p, q)
    for p, q in snap.asks:
        book.set(False, p, q)
    assert len(book) == 50 and adapter.checksum("BTC-USDT", book) == snap.checksum


# --- round trips ------------------------------------------------------------------------------

INSTRUMENTS = [Instrument("BTC-USDT", 1, 8), Instrument("ETH-USDT", 2, 6, mid=2000 * E8)]


def test_roundtrip_books_equal_simulator() -> None:
    adapter = OkxAdapter()
    rt = asyncio.run(roundtrip(adapter, OkxSim, INSTRUMENTS, events=600))
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym
        assert book.counters.gaps == 0 and book.counters.checksum_errors == 0
        assert book.counters.updates > 0
    assert rt.trades > 0 and rt.parse_errors == {}
    assert ("subscribed", "books:BTC-USDT") in rt.controls


def test_roundtrip_detects_a_skipped_update() -> None:
    adapter = OkxAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            OkxSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.SKIP_SEQUENCE, after_events=150)],
        )
    )
    assert rt.sim.frames_skipped == 1
    assert sum(b.counters.gaps for b in rt.books.values()) == 1
    assert sum(b.counters.resyncs for b in rt.books.values()) == 1
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym


def test_roundtrip_detects_a_corrupt_checksum() -> None:
    adapter = OkxAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            OkxSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.CORRUPT_CHECKSUM, after_events=150)],
        )
    )
    assert sum(b.counters.checksum_errors for b in rt.books.values()) == 1
    assert sum(b.counters.gaps for b in rt.books.values()) == 0
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym


def test_roundtrip_counts_malformed_frames() -> None:
    adapter = OkxAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            OkxSim,
            INSTRUMENTS,
            events=400,
            faults=[Fault(FaultKind.MALFORMED, after_events=100)],
        )
    )
    assert rt.parse_errors == {"bad_json": 1, "missing_field": 1}
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym


def test_roundtrip_survives_a_dropped_connection() -> None:
    adapter = OkxAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            OkxSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.DROP_CONNECTION, after_events=150)],
        )
    )
    assert rt.sim.faults[0].fired
    for sym, book in rt.books.items():
        assert book.counters.snapshots == 2, sym  # one per connection
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym
