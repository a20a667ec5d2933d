"""Upbit adapter: documented frames (binary), replace-all subscriptions, PING, and round trips.

Every Upbit orderbook message is a whole top-30 book, so a lost message is repaired by the next
one: the skip round trip asserts the book still equals the simulator's. There is no checksum.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from feeder.book.sequence import Verdict
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.exchanges.upbit import UpbitAdapter, epoch_ns, number
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.upbit import UpbitSim
from feeder.sim.server import SimExchange, Simulator
from feeder.wire import Side
from tests.feeder.exchanges.harness import RecordingSink, RoundTrip, roundtrip

E8 = 10**8
MS = 10**6

# The trade example of Upbit's docs ("체결 (Trade)", v1.5.9).
TRADE = (
    b'{"type":"trade","code":"KRW-BTC","timestamp":1730336862082,"trade_date":"2024-10-31",'
    b'"trade_time":"01:07:42","trade_timestamp":1730336862047,"trade_price":100473000.00000000,'
    b'"trade_volume":0.00014208,"ask_bid":"BID","prev_closing_price":100571000.00000000,'
    b'"change":"FALL","change_price":98000.00000000,"sequential_id":17303368620470000,'
    b'"best_ask_price":100473000,"best_ask_size":0.43139478,"best_bid_price":100465000,'
    b'"best_bid_size":0.01990656,"stream_type":"REALTIME"}'
)
# An orderbook message in the documented DEFAULT format (two of the 30 units shown).
ORDERBOOK = (
    b'{"type":"orderbook","code":"KRW-BTC","timestamp":1746601573804,'
    b'"total_ask_size":0.16767948,"total_bid_size":0.07066812,"orderbook_units":['
    b'{"ask_price":137002000,"bid_price":137001000,"ask_size":0.10623869,"bid_size":0.03656812},'
    b'{"ask_price":137023000,"bid_price":137000000,"ask_size":0.06144079,"bid_size":0.0341}],'
    b'"stream_type":"SNAPSHOT","level":0}'
)


def test_trade_frame_in_a_binary_frame() -> None:
    sink = RecordingSink()
    UpbitAdapter().parse(TRADE, 11, sink)
    assert sink.trades == [
        ("KRW-BTC", Side.BUY, 100_473_000 * E8, 14_208, 17303368620470000, 1730336862047 * MS, 11)
    ]
    sink = RecordingSink()
    UpbitAdapter().parse(TRADE.replace(b'"BID"', b'"ASK"').decode(), 11, sink)  # text works too
    assert sink.trades[0][1] == Side.SELL


def test_snapshot_trade_is_not_a_new_trade() -> None:
    sink = RecordingSink()
    UpbitAdapter().parse(TRADE.replace(b"REALTIME", b"SNAPSHOT"), 0, sink)
    assert sink.trades == [] and sink.controls == []


def test_orderbook_frame_replaces_the_book() -> None:
    sink = RecordingSink()
    UpbitAdapter().parse(ORDERBOOK, 4, sink)
    ((sym, u),) = sink.books
    assert sym == "KRW-BTC" and u.snapshot
    assert u.asks == [(137_002_000 * E8, 10_623_869), (137_023_000 * E8, 6_144_079)]
    assert u.bids == [(137_001_000 * E8, 3_656_812), (137_000_000 * E8, 3_410_000)]
    assert u.exchange_ts_ns == 1746601573804 * MS and u.receive_ts_ns == 4


def test_orderbook_skips_zero_padding_of_a_short_side() -> None:
    frame = ORDERBOOK.replace(b'"ask_price":137023000', b'"ask_price":0').replace(
        b'"ask_size":0.06144079', b'"ask_size":0'
    )
    sink = RecordingSink()
    UpbitAdapter().parse(frame, 0, sink)
    ((_, u),) = sink.books
    assert len(u.asks) == 1 and len(u.bids) == 2


def test_status_and_errors_are_controls() -> None:
    sink = RecordingSink()
    adapter = UpbitAdapter()
    adapter.parse(b'{"status":"UP"}', 0, sink)
    adapter.parse(
        '{"error":{"name":"NO_TICKET","message":"티켓이 존재하지 않습니다."}}'.encode(), 0, sink
    )
    adapter.parse(b'{"type":"ticker","code":"KRW-BTC"}', 0, sink)
    assert sink.controls == [
        ("pong", "UP"),
        ("error", "NO_TICKET: 티켓이 존재하지 않습니다."),
        ("info", "unhandled type 'ticker'"),
    ]


def test_keepalive_is_the_text_ping() -> None:
    ping = UpbitAdapter.ping
    assert ping.message is not None and ping.message() == "PING"
    assert 0 < ping.interval_s < 120  # Upbit closes connections idle for 120 s


def test_requests_carry_every_code_and_replace_each_other() -> None:
    adapter = UpbitAdapter(ticket="t-1")
    (msg,) = adapter.subscribe(["KRW-BTC", "krw-eth"])
    assert orjson.loads(msg) == [
        {"ticket": "t-1"},
        {"type": "trade", "codes": ["KRW-BTC", "KRW-ETH"], "is_only_realtime": True},
        {"type": "orderbook", "codes": ["KRW-BTC", "KRW-ETH"]},
        {"format": "DEFAULT"},
    ]
    (msg,) = adapter.subscribe(["KRW-XRP"])
    assert orjson.loads(msg)[2]["codes"] == ["KRW-BTC", "KRW-ETH", "KRW-XRP"]
    (msg,) = adapter.unsubscribe(["KRW-BTC", "KRW-XRP"])
    assert orjson.loads(msg)[1]["codes"] == ["KRW-ETH"]
    assert adapter.unsubscribe(["KRW-ETH"]) == []  # nothing left to request: close instead
    assert adapter.codes == []
    assert UpbitAdapter().ticket != UpbitAdapter().ticket  # unique per client, as advised


def test_numbers_and_timestamps() -> None:
    assert number(100473000.0, 8) == 100_473_000 * E8
    assert number(137002000, 0) == 137002000
    assert number(0.0341, 8) == 3_410_000
    assert number(1.5e-05, 8) == 1500
    assert number("0.1", 2) == 10
    for bad in (True, None, [1]):
        with pytest.raises(TypeError):
            number(bad, 8)
    assert epoch_ns(1746601573804) == 1746601573804 * MS
    assert epoch_ns("1783657882348968") == 1783657882348968 * 1000  # microseconds, as text
    with pytest.raises(ValueError):
        epoch_ns("soon")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"[1,2]", "unexpected"),
        (b'{"unexpected": "shape"}', "unexpected"),
        (ORDERBOOK.replace(b'"orderbook_units"', b'"units"'), "missing_field"),
        (ORDERBOOK.replace(b'"bid_size":0.0341', b'"bid_size":"lots"'), "inexact"),
        (TRADE.replace(b'"ask_bid":"BID"', b'"ask_bid":"MID"'), "unexpected"),
        (TRADE.replace(b"0.00014208", b"0.000000001"), "inexact"),
        (TRADE.replace(b'"trade_timestamp":1730336862047', b'"trade_timestamp":0x'), "bad_json"),
        (
            TRADE.replace(b'"sequential_id":17303368620470000', b'"sequential_id":[]'),
            "missing_field",
        ),
    ],
)
def test_bad_frames_are_parse_errors(frame: bytes, reason: str) -> None:
    sink = RecordingSink()
    with pytest.raises(ParseError) as e:
        UpbitAdapter().parse(frame, 0, sink)
    assert e.value.reason == reason
    assert sink.books == [] and sink.trades == []


def test_sequence_rule_applies_everything() -> None:
    assert UpbitAdapter().sequence.check(7, BookUpdate(True, [], []), first=False) is Verdict.APPLY


# --- the simulator --------------------------------------------------------------------------

# Market depth 40 > 30: the simulator sends the top 30 and the adapter keeps 30.
INSTRUMENTS = [
    Instrument("KRW-BTC", 0, 8, mid=137_000_000 * E8, depth=40),
    Instrument("KRW-ETH", 0, 4, mid=5_000_000 * E8),
]


def check_books(rt: RoundTrip) -> None:
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, UpbitAdapter.book_depth), sym
        assert len(book.book.bids) <= 30 and len(book.book.asks) <= 30


def test_roundtrip_books_equal_simulator() -> None:
    rt = asyncio.run(roundtrip(UpbitAdapter(), UpbitSim, INSTRUMENTS, events=600))
    check_books(rt)
    btc = rt.books["KRW-BTC"].book
    assert len(btc.bids) == 30 and len(btc.asks) == 30  # truncated to Upbit's depth
    assert all(b.counters.snapshots > 10 for b in rt.books.values())
    assert rt.trades > 0 and rt.parse_errors == {}


def test_roundtrip_repairs_a_skipped_update_with_the_next_one() -> None:
    rt = asyncio.run(
        roundtrip(
            UpbitAdapter(),
            UpbitSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.SKIP_SEQUENCE, after_events=150)],
        )
    )
    assert rt.sim.frames_skipped == 1
    assert sum(b.counters.resyncs for b in rt.books.values()) == 0
    check_books(rt)


def test_roundtrip_counts_malformed_frames() -> None:
    rt = asyncio.run(
        roundtrip(
            UpbitAdapter(),
            UpbitSim,
            INSTRUMENTS,
            events=400,
            faults=[Fault(FaultKind.MALFORMED, after_events=100)],
        )
    )
    assert rt.parse_errors == {"bad_json": 1, "unexpected": 1}
    check_books(rt)


def test_roundtrip_survives_a_dropped_connection() -> None:
    faults = [Fault(FaultKind.DROP_CONNECTION, after_events=200)]
    rt = asyncio.run(roundtrip(UpbitAdapter(), UpbitSim, INSTRUMENTS, events=600, faults=faults))
    assert rt.sim.faults[0].fired
    check_books(rt)


async def _talk_to_sim(requests: list[str], frames: int) -> list[aiohttp.WSMessage]:
    ex = SimExchange("upbit", UpbitSim, INSTRUMENTS)
    sim = Simulator([ex], rate=100)
    await sim.start()
    got: list[aiohttp.WSMessage] = []
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.url("upbit")) as ws:
            for r in requests:
                await ws.send_str(r)
            while len(got) < frames:
                got.append(await ws.receive(timeout=5))
    finally:
        await sim.stop()
    return got


def test_sim_answers_ping_and_errors_in_binary_frames() -> None:
    got = asyncio.run(_talk_to_sim(["PING", '[{"type":"trade","codes":["KRW-BTC"]}]', "{"], 3))
    assert all(m.type is aiohttp.WSMsgType.BINARY for m in got)
    sink = RecordingSink()
    for m in got:
        UpbitAdapter().parse(m.data, 0, sink)
    assert [c[0] for c in sink.controls] == ["pong", "error", "error"]
    assert sink.controls[1][1].startswith("NO_TICKET") and sink.controls[2][1].startswith(
        "WRONG_FORMAT"
    )


def test_sim_request_replaces_the_subscription() -> None:
    adapter = UpbitAdapter()
    first = adapter.subscribe(["KRW-BTC"])[0]
    second = adapter.unsubscribe(["KRW-BTC"]) + adapter.subscribe(["KRW-ETH"])
    assert len(second) == 1
    got = asyncio.run(_talk_to_sim([first, second[0]], 12))
    sink = RecordingSink()
    for m in got:
        adapter.parse(m.data, 0, sink)
    codes = [s for s, _ in sink.books]
    # The snapshot for KRW-BTC, possibly a few of its updates, then only KRW-ETH.
    assert codes[0] == "KRW-BTC" and codes[-1] == "KRW-ETH"
    switch = codes.index("KRW-ETH")
    assert set(codes[switch:]) == {"KRW-ETH"}
