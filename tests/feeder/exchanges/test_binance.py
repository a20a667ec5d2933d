"""Binance adapter: frames, subscriptions, U/u continuity, and a round trip with the simulator."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from feeder.book.sequence import Verdict
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.exchanges.binance import BinanceAdapter
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.binance import BinanceSim
from feeder.wire import Side
from tests.feeder.exchanges.harness import RecordingSink, roundtrip

# Frames as Binance documents them (spot WebSocket streams), wrapped as combined streams.
TRADE = (
    '{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
    '"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}'
)
DEPTH = (
    '{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC",'
    '"U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"],["0.0027","0"]]}}'
)
SNAPSHOT = (
    b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],'
    b'"asks":[["4.00000200","12.00000000"]]}'
)


def test_trade_frame() -> None:
    sink = RecordingSink()
    BinanceAdapter().parse(TRADE, 99, sink)
    assert sink.trades == [
        ("BNBBTC", Side.SELL, 100_000, 100 * 10**8, 12345, 1672515782136 * 10**6, 99)
    ]


def test_depth_frame() -> None:
    sink = RecordingSink()
    BinanceAdapter().parse(DEPTH, 5, sink)
    ((sym, u),) = sink.books
    assert sym == "BNBBTC" and not u.snapshot
    assert (u.first_seq, u.last_seq) == (157, 160)
    assert u.bids == [(240_000, 10 * 10**8)] and u.asks == [(260_000, 100 * 10**8), (270_000, 0)]


def test_rest_snapshot() -> None:
    u = BinanceAdapter().parse_snapshot("BNBBTC", SNAPSHOT, 7)
    assert u.snapshot and u.last_seq == 1027024
    assert u.bids == [(400_000_000, 43_100_000_000)] and u.asks == [(400_000_200, 1_200_000_000)]


def test_subscribe_messages() -> None:
    (msg,) = BinanceAdapter().subscribe(["BTCUSDT", "ETHUSDT"])
    assert orjson.loads(msg) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@trade", "ethusdt@depth@100ms"],
        "id": 1,
    }
    sink = RecordingSink()
    BinanceAdapter().parse('{"result":null,"id":1}', 0, sink)
    assert sink.controls == [("subscribed", "1")]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "bad_json"),
        ('{"stream":"x@trade","data":{"e":"trade","s":"X"}}', "missing_field"),
        (
            '{"stream":"x@trade","data":{"e":"trade","E":1,"s":"X","t":1,"p":"0.000000001","q":"1","T":1,"m":true}}',
            "inexact",
        ),
        ("[1,2]", "unexpected"),
    ],
)
def test_bad_frames_are_parse_errors(frame: str, reason: str) -> None:
    with pytest.raises(ParseError) as e:
        BinanceAdapter().parse(frame, 0, RecordingSink())
    assert e.value.reason == reason


def test_sequence_rule_follows_binance_procedure() -> None:
    rule = BinanceAdapter().sequence

    def u(a: int, b: int) -> BookUpdate:
        return BookUpdate(False, [], [], first_seq=a, last_seq=b)

    snap = 100
    assert rule.check(snap, u(90, 100), first=True) is Verdict.STALE  # u <= lastUpdateId
    assert rule.check(snap, u(95, 105), first=True) is Verdict.APPLY  # U <= 101 <= u
    assert rule.check(snap, u(102, 105), first=True) is Verdict.GAP
    assert rule.check(105, u(106, 110), first=False) is Verdict.APPLY
    assert rule.check(105, u(107, 110), first=False) is Verdict.GAP


INSTRUMENTS = [Instrument("BTCUSDT", 2, 5), Instrument("ETHUSDT", 2, 4, mid=2000 * 10**8)]


def test_roundtrip_books_equal_simulator() -> None:
    rt = asyncio.run(roundtrip(BinanceAdapter(), BinanceSim, INSTRUMENTS, events=600))
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, None), sym
        assert book.counters.gaps == 0 and book.counters.updates > 0
    assert rt.trades > 0 and rt.parse_errors == {}


def test_roundtrip_survives_a_skipped_update() -> None:
    rt = asyncio.run(
        roundtrip(
            BinanceAdapter(),
            BinanceSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.SKIP_SEQUENCE, after_events=150)],
        )
    )
    assert sum(b.counters.gaps for b in rt.books.values()) == 1
    assert sum(b.counters.resyncs for b in rt.books.values()) == 1
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, None), sym


def test_roundtrip_counts_malformed_frames() -> None:
    rt = asyncio.run(
        roundtrip(
            BinanceAdapter(),
            BinanceSim,
            INSTRUMENTS,
            events=400,
            faults=[Fault(FaultKind.MALFORMED, after_events=100)],
        )
    )
    assert rt.parse_errors.get("bad_json") == 1
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, None), sym
