"""Bithumb (public WebSocket v1) adapter: its endpoint, its frame variants, and round trips.

The protocol is Upbit's (tests/feeder/exchanges/test_upbit.py covers the shared parser in
depth); these tests pin what is Bithumb's own: endpoint, exchange code, ``level``, trade fields,
string/microsecond encodings, text frames, and the round trip against Bithumb's simulator.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from feeder.exchanges.base import ParseError, SnapshotSource
from feeder.exchanges.bithumb import BithumbAdapter
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.bithumb import BithumbSim
from feeder.sim.server import SimExchange, Simulator
from feeder.wire import Exchange, Side
from tests.feeder.exchanges.harness import RecordingSink, RoundTrip, roundtrip

E8 = 10**8
MS = 10**6

# Fields as Bithumb's "체결 (Trade)" reference lists them, with the string encodings Bithumb's
# frames have been seen to use for sequential_id and timestamp.
TRADE = (
    '{"type":"trade","code":"KRW-BTC","trade_price":95539000,"trade_volume":0.00022664,'
    '"ask_bid":"ASK","prev_closing_price":94201000,"change":"RISE","change_price":1338000,'
    '"trade_date":"2025-07-10","trade_time":"13:39:41","trade_timestamp":1752154781138,'
    '"sequential_id":"862683813820523888","timestamp":1752154781398,"stream_type":"REALTIME"}'
)
ORDERBOOK = (
    '{"type":"orderbook","code":"KRW-BTC","total_ask_size":4.7398,"total_bid_size":0.2889,'
    '"orderbook_units":[{"ask_price":95340000,"bid_price":95339000,"ask_size":0.0007,'
    '"bid_size":0.0024}],"level":1,"timestamp":"1752157882348968","stream_type":"SNAPSHOT"}'
)


def test_endpoint_and_identity() -> None:
    a = BithumbAdapter()
    assert a.url() == "wss://ws-api.bithumb.com/websocket/v1"
    assert a.url("ws://127.0.0.1:1/bithumb/websocket/v1").startswith("ws://127.0.0.1")
    assert a.exchange_id == int(Exchange.BITHUMB) and a.name == "bithumb"
    assert a.snapshot_source is SnapshotSource.PUSH and a.book_depth == 30
    assert a.ping.message is not None and a.ping.message() == "PING"


def test_trade_with_text_sequential_id() -> None:
    sink = RecordingSink()
    BithumbAdapter().parse(TRADE, 8, sink)
    assert sink.trades == [
        ("KRW-BTC", Side.SELL, 95_539_000 * E8, 22_664, 862683813820523888, 1752154781138 * MS, 8)
    ]


def test_orderbook_with_microsecond_text_timestamp() -> None:
    sink = RecordingSink()
    BithumbAdapter().parse(ORDERBOOK.encode(), 2, sink)
    ((sym, u),) = sink.books
    assert sym == "KRW-BTC" and u.snapshot
    assert u.asks == [(95_340_000 * E8, 70_000)] and u.bids == [(95_339_000 * E8, 240_000)]
    assert u.exchange_ts_ns == 1752157882348968 * 1000


def test_subscribe_message() -> None:
    (msg,) = BithumbAdapter(ticket="b").subscribe(["KRW-BTC"])
    assert orjson.loads(msg) == [
        {"ticket": "b"},
        {"type": "trade", "codes": ["KRW-BTC"], "is_only_realtime": True},
        {"type": "orderbook", "codes": ["KRW-BTC"]},
        {"format": "DEFAULT"},
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{", "bad_json"),
        ('"PONG"', "unexpected"),
        (TRADE.replace('"862683813820523888"', '"n/a"'), "missing_field"),
        (ORDERBOOK.replace('"1752157882348968"', "1.5"), "missing_field"),
    ],
)
def test_bad_frames_are_parse_errors(frame: str, reason: str) -> None:
    with pytest.raises(ParseError) as e:
        BithumbAdapter().parse(frame, 0, RecordingSink())
    assert e.value.reason == reason


# --- the simulator --------------------------------------------------------------------------

INSTRUMENTS = [
    Instrument("KRW-BTC", 0, 8, mid=95_000_000 * E8, depth=35),
    Instrument("KRW-XRP", 1, 4, mid=3_000 * E8),
]


def check_books(rt: RoundTrip) -> None:
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, BithumbAdapter.book_depth), sym


def test_roundtrip_books_equal_simulator() -> None:
    rt = asyncio.run(roundtrip(BithumbAdapter(), BithumbSim, INSTRUMENTS, events=500))
    check_books(rt)
    assert rt.trades > 0 and rt.parse_errors == {}


def test_roundtrip_with_faults() -> None:
    faults = [
        Fault(FaultKind.SKIP_SEQUENCE, after_events=100),
        Fault(FaultKind.MALFORMED, after_events=200),
        Fault(FaultKind.DROP_CONNECTION, after_events=300),
    ]
    rt = asyncio.run(
        roundtrip(BithumbAdapter(), BithumbSim, INSTRUMENTS, events=600, faults=faults)
    )
    assert all(st.fired for st in rt.sim.faults) and rt.sim.frames_skipped == 1
    assert rt.parse_errors == {"bad_json": 1, "unexpected": 1}
    check_books(rt)


async def _frames() -> list[aiohttp.WSMessage]:
    ex = SimExchange("bithumb", BithumbSim, INSTRUMENTS)
    sim = Simulator([ex], rate=400)
    await sim.start()
    got: list[aiohttp.WSMessage] = []
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.url("bithumb")) as ws:
            await ws.send_str(BithumbAdapter().subscribe(["KRW-BTC"])[0])
            await ws.send_str("PING")
            while len(got) < 40:
                got.append(await ws.receive(timeout=5))
    finally:
        await sim.stop()
    return got


def test_sim_frames_are_text_in_bithumbs_shape() -> None:
    got = asyncio.run(_frames())
    assert all(m.type is aiohttp.WSMsgType.TEXT for m in got)
    msgs = [orjson.loads(m.data) for m in got]
    assert {"status": "UP"} in msgs
    books = [m for m in msgs if m.get("type") == "orderbook"]
    assert books[0]["stream_type"] == "SNAPSHOT" and books[0]["level"] == 1
    assert all(len(b["orderbook_units"]) == 30 for b in books)
    trades = [m for m in msgs if m.get("type") == "trade"]
    assert trades and all("best_ask_price" not in t and "sequential_id" in t for t in trades)
