"""Bybit v5 spot adapter: frames, subscriptions, ping/pong, the ``u`` rule, and the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from feeder.book.sequence import Verdict
from feeder.book.sync import SymbolBook
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.exchanges.bybit import BybitAdapter
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.bybit import BybitSim
from feeder.sim.server import SimExchange, Simulator
from feeder.wire import Side
from tests.feeder.exchanges.harness import NullOutput, RecordingSink, roundtrip

E8 = 10**8

# Frames in Bybit's documented v5 format ("WebSocket Stream > Public > Trade / Orderbook").
TRADE = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{'
    '"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
    '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}'
)
SPOT_TRADES = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304484978,"data":['
    '{"T":1672304484978,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50",'
    '"i":"2100000000007764767","BT":false,"RPI":false,"seq":7961638724},'
    '{"T":1672304484979,"s":"BTCUSDT","S":"Sell","v":"0.25","p":"16578.4",'
    '"i":"2100000000007764768","BT":false,"RPI":false,"seq":7961638725}]}'
)
SNAPSHOT = (
    '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1671179923028,"data":{'
    '"s":"BTCUSDT","b":[["17440.00","40.833"],["17439.50","0.513"]],'
    '"a":[["17440.50","78.815"],["17441.00","8.858"]],"u":13079592,"seq":22520573250}}'
)
DELTA = (
    '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":"BTCUSDT",'
    '"b":[["30247.20","30.028"],["30240.00","0"]],"a":[["30248.70","0"],["30249.30","0.892"]],'
    '"u":177400507,"seq":66544703342},"cts":1687940967464}'
)


def test_trade_frames() -> None:
    sink = RecordingSink()
    a = BybitAdapter()
    a.parse(SPOT_TRADES, 42, sink)
    assert sink.trades == [
        (
            "BTCUSDT",
            Side.BUY,
            1_657_850 * E8 // 100,
            100_000,
            2100000000007764767,
            1672304484978 * 10**6,
            42,
        ),
        (
            "BTCUSDT",
            Side.SELL,
            1_657_840 * E8 // 100,
            25_000_000,
            2100000000007764768,
            1672304484979 * 10**6,
            42,
        ),
    ]
    # A UUID trade id (the derivatives format) is not numeric: the wire's 0.
    sink = RecordingSink()
    a.parse(TRADE, 1, sink)
    assert sink.trades[0][4] == 0 and sink.trades[0][1] == Side.BUY


def test_orderbook_snapshot_and_delta() -> None:
    sink = RecordingSink()
    a = BybitAdapter()
    a.parse(SNAPSHOT, 5, sink)
    a.parse(DELTA, 6, sink)
    (sym, snap), (_, delta) = sink.books
    assert sym == "BTCUSDT" and snap.snapshot and not delta.snapshot
    assert snap.last_seq == 13079592 and delta.last_seq == 177400507
    assert snap.bids == [(17_440 * E8, 4_083_300_000), (1_743_950 * E8 // 100, 51_300_000)]
    assert snap.asks == [(1_744_050 * E8 // 100, 7_881_500_000), (17_441 * E8, 885_800_000)]
    assert delta.bids == [(3_024_720 * E8 // 100, 3_002_800_000), (30_240 * E8, 0)]
    assert delta.asks == [(3_024_870 * E8 // 100, 0), (3_024_930 * E8 // 100, 89_200_000)]
    # The matching engine's time (cts) when given, else the frame's ts.
    assert delta.exchange_ts_ns == 1687940967464 * 10**6
    assert snap.exchange_ts_ns == 1671179923028 * 10**6


def test_subscribe_messages_respect_ten_args() -> None:
    a = BybitAdapter()
    symbols = [f"S{i}USDT" for i in range(7)]
    first, second = (orjson.loads(m) for m in a.subscribe(symbols))
    assert first["op"] == "subscribe" and len(first["args"]) == 10
    assert first["args"][:2] == ["publicTrade.S0USDT", "orderbook.50.S0USDT"]
    assert second["args"] == [
        "publicTrade.S5USDT",
        "orderbook.50.S5USDT",
        "publicTrade.S6USDT",
        "orderbook.50.S6USDT",
    ]
    assert (first["req_id"], second["req_id"]) == ("1", "2")
    (unsub,) = a.unsubscribe(["BTCUSDT"])
    assert orjson.loads(unsub) == {
        "op": "unsubscribe",
        "args": ["publicTrade.BTCUSDT", "orderbook.50.BTCUSDT"],
        "req_id": "3",
    }


def test_control_frames() -> None:
    a = BybitAdapter()
    assert a.ping.interval_s == 20.0 and a.ping.message is not None
    assert orjson.loads(a.ping.message()) == {"op": "ping"}
    sink = RecordingSink()
    for frame in (
        '{"success":true,"ret_msg":"pong","conn_id":"0970e817","op":"ping"}',  # spot
        '{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocs"}',  # others
        '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924","req_id":"10001",'
        '"op":"subscribe"}',
        '{"success":false,"ret_msg":"error:handler not found,topic:orderbook.40.BTCUSDT",'
        '"conn_id":"x","req_id":"","op":"subscribe"}',
        '{"success":true,"ret_msg":"","conn_id":"x","req_id":"7","op":"unsubscribe"}',
    ):
        a.parse(frame, 0, sink)
    assert sink.controls == [
        ("pong", "0970e817"),
        ("pong", "cfcb4ocs"),
        ("subscribed", "10001"),
        ("error", "subscribe: error:handler not found,topic:orderbook.40.BTCUSDT"),
        ("info", "unsubscribe"),
    ]
    assert sink.books == [] and sink.trades == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "bad_json"),
        ("[1,2]", "unexpected"),
        ('{"unexpected":"shape"}', "unexpected"),
        ('{"topic":"orderbook.50.X","type":"partial","ts":1,"data":{}}', "unexpected"),
        (
            '{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"X","b":[]}}',
            "missing_field",
        ),
        ('{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"s":"X"}]}', "missing_field"),
        (
            '{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"s":"X","S":"Up",'
            '"v":"1","p":"1","i":"1"}]}',
            "unexpected",
        ),
        (
            '{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"X",'
            '"b":[["1.000000001","1"]],"a":[],"u":2,"seq":3}}',
            "inexact",
        ),
        (
            '{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"X","b":[["1"]],'
            '"a":[],"u":2}}',
            "missing_field",
        ),
    ],
)
def test_bad_frames_are_parse_errors(frame: str, reason: str) -> None:
    with pytest.raises(ParseError) as e:
        BybitAdapter().parse(frame, 0, RecordingSink())
    assert e.value.reason == reason


def test_sequence_rule_is_increment_on_u() -> None:
    rule = BybitAdapter().sequence

    def u(n: int) -> BookUpdate:
        return BookUpdate(False, [], [], first_seq=n, last_seq=n)

    assert rule.check(100, u(101), first=True) is Verdict.APPLY
    assert rule.check(100, u(100), first=True) is Verdict.STALE
    assert rule.check(100, u(102), first=False) is Verdict.GAP


def _book() -> SymbolBook:
    a = BybitAdapter()
    return SymbolBook("BTCUSDT", 1, a.sequence, NullOutput(), lambda s: None, depth=a.book_depth)


def test_restart_snapshot_with_u_1_overwrites_the_book() -> None:
    a, sink = BybitAdapter(), RecordingSink()
    frames = [
        SNAPSHOT,
        SNAPSHOT.replace('"snapshot"', '"delta"')
        .replace("13079592", "13079593")
        .replace('["17440.00","40.833"]', '["17440.00","0"]'),
        # The order book service restarted: a snapshot with u = 1, then u = 2.
        '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":2,"data":{"s":"BTCUSDT",'
        '"b":[["17000.00","1"]],"a":[["17001.00","2"]],"u":1,"seq":22520580000}}',
        '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":3,"data":{"s":"BTCUSDT",'
        '"b":[["17000.50","3"]],"a":[],"u":2,"seq":22520580001}}',
    ]
    for f in frames:
        a.parse(f, 0, sink)
    book = _book()
    for _, upd in sink.books:
        book.on_update(upd)
    assert book.counters.gaps == 0 and book.counters.snapshots == 2 and book.seq == 2
    assert book.book.bids == {17_000 * E8: 1 * E8, 1_700_050 * E8 // 100: 3 * E8}
    assert book.book.asks == {17_001 * E8: 2 * E8}


def test_a_missing_u_is_a_gap_and_a_resync() -> None:
    a, sink = BybitAdapter(), RecordingSink()
    a.parse(SNAPSHOT, 0, sink)
    a.parse(SNAPSHOT.replace('"snapshot"', '"delta"').replace("13079592", "13079594"), 0, sink)
    asked: list[str] = []
    book = SymbolBook("BTCUSDT", 1, a.sequence, NullOutput(), asked.append, depth=a.book_depth)
    for _, upd in sink.books:
        book.on_update(upd)
    assert book.counters.gaps == 1 and asked == ["BTCUSDT"]


# --- the simulator -----------------------------------------------------------------------------

INSTRUMENTS = [Instrument("BTCUSDT", 2, 5), Instrument("ETHUSDT", 2, 4, mid=2000 * E8)]


def _run(*faults: Fault, instruments: list[Instrument] = INSTRUMENTS) -> Any:
    return asyncio.run(
        roundtrip(BybitAdapter(), BybitSim, instruments, events=600, faults=list(faults))
    )


def test_roundtrip_books_equal_simulator() -> None:
    rt = _run()
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, BybitAdapter.book_depth), sym
        assert book.counters.gaps == 0 and book.counters.updates > 0
    assert rt.trades > 0 and rt.parse_errors == {}
    assert ("subscribed", "1") in rt.controls


def test_roundtrip_keeps_the_50_level_window() -> None:
    # A market deeper than the subscribed depth: levels enter and leave the window.
    deep = [Instrument("BTCUSDT", 2, 5, depth=60)]
    rt = _run(instruments=deep)
    book = rt.books["BTCUSDT"]
    assert len(book.book.bids) == 50 and len(book.book.asks) == 50
    assert book.book == rt.sim_book("BTCUSDT", 50)
    assert book.counters.gaps == 0


def test_roundtrip_detects_a_skipped_update() -> None:
    rt = _run(Fault(FaultKind.SKIP_SEQUENCE, after_events=150))
    assert rt.sim.frames_skipped == 1
    assert sum(b.counters.gaps for b in rt.books.values()) == 1
    assert sum(b.counters.resyncs for b in rt.books.values()) == 1
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, 50), sym


def test_roundtrip_counts_malformed_frames() -> None:
    rt = _run(Fault(FaultKind.MALFORMED, after_events=100))
    assert rt.parse_errors == {"bad_json": 1, "unexpected": 1}
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, 50), sym


def test_roundtrip_survives_a_dropped_connection() -> None:
    rt = _run(Fault(FaultKind.DROP_CONNECTION, after_events=150))
    assert rt.sim.faults[0].fired
    for sym, book in rt.books.items():
        assert book.counters.snapshots >= 2, sym  # a new snapshot after reconnecting
        assert book.book == rt.sim_book(sym, 50), sym


async def _talk() -> list[dict[str, Any]]:
    """Drive the simulator's protocol by hand: ping, bad requests, subscribe, deltas."""
    ex = SimExchange("bybit", BybitSim, INSTRUMENTS[:1])
    sim = Simulator([ex], rate=500)
    await sim.start()
    got: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.url("bybit")) as ws:

            async def ask(text: str, n: int = 1) -> None:
                await ws.send_str(text)
                for _ in range(n):
                    got.append(orjson.loads((await ws.receive(timeout=5)).data))

            await ask('{"op":"ping","req_id":"p1"}')
            await ask('{"op":"subscribe","args":["orderbook.40.BTCUSDT"]}')
            args = [f"publicTrade.BTCUSDT{i}" for i in range(11)]
            await ask(orjson.dumps({"op": "subscribe", "args": args}).decode())
            await ask("not json")
            # Subscribed: the acknowledgement, then the snapshot, then deltas.
            await ask('{"op":"subscribe","args":["orderbook.50.BTCUSDT"],"req_id":"s"}', 5)
            await ws.send_str('{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
            while "op" not in got[-1]:  # deltas keep coming until the answer
                got.append(orjson.loads((await ws.receive(timeout=5)).data))
    finally:
        await sim.stop()
    return got


def test_simulator_speaks_bybit() -> None:
    pong, bad_depth, too_many, not_json, ack, snap, *rest = asyncio.run(_talk())
    assert pong["op"] == "ping" and pong["ret_msg"] == "pong" and pong["req_id"] == "p1"
    assert pong["success"] is True and pong["conn_id"]
    assert bad_depth["success"] is False and "orderbook.40.BTCUSDT" in bad_depth["ret_msg"]
    assert too_many["success"] is False and "args size" in too_many["ret_msg"]
    assert not_json["success"] is False
    assert ack["success"] is True and ack["op"] == "subscribe" and ack["req_id"] == "s"
    assert snap["type"] == "snapshot" and snap["topic"] == "orderbook.50.BTCUSDT"
    deltas = [m for m in rest if m.get("type") == "delta"]
    assert len(deltas) >= 3
    us = [snap["data"]["u"]] + [d["data"]["u"] for d in deltas]
    assert us == list(range(us[0], us[0] + len(us)))  # u: previous + 1, from the snapshot on
    # Every level rendered at the instrument's precision; deletions as "0".
    for d in deltas:
        for p, q in d["data"]["b"] + d["data"]["a"]:
            assert len(p.split(".")[1]) == 2 and (q == "0" or len(q.split(".")[1]) == 5)
    dup = rest[-1]
    assert dup["success"] is False and "already subscribed" in dup["ret_msg"]
