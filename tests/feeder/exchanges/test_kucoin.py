"""KuCoin spot adapter: token handshake, frames, subscriptions, calibration, and the simulator."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest

from feeder.book.sequence import Verdict
from feeder.book.sync import SymbolBook
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.exchanges.kucoin import KucoinAdapter
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.kucoin import KucoinSim
from feeder.sim.server import SimExchange, Simulator
from feeder.wire import Side
from tests.feeder.exchanges.harness import NullOutput, RecordingSink, roundtrip

E8 = 10**8

# Frames and bodies in KuCoin's documented format (docs-new: "Trade", "Orderbook - Increment",
# "Get Part OrderBook", "Get Public Token").
BULLET = (
    b'{"code":"200000","data":{"token":"2neAiuYvAU61ZDXANAGAsiL4-iAExhsBXZxftpOeh_55i3Ysy2q2LEs'
    b"EWU64mdzUOPusi34M_wGoSf7iNyEWJ4aBZXpWhrmY9jKtqkdWoFa75w3istPvPtiYB9J6i9GjsxUuhPw3Blrzaz"
    b"F6ghq4L_cH6Yw7GJH5ENqxg6KlZZdFlv0VxkHmBfsTo7gm-1wYzMSGkRhS9LFuOs7gA-1X0_ZxcDvKRBO8QzKT"
    b'gEWTkwPE4gP4wIWFd7ybdmq8mOkPc.rd3vGgfFhcXZgBvJuQVcdQ==","instanceServers":[{"endpoint":'
    b'"wss://ws-api-spot.kucoin.com/","encrypt":true,"protocol":"websocket","pingInterval":18000,'
    b'"pingTimeout":10000}]}}'
)
MATCH = (
    '{"topic":"/market/match:BTC-USDT","type":"message","subject":"trade.l3match","data":{'
    '"makerOrderId":"671b5007389355000701b1d3","price":"67523","sequence":"11067996711960577",'
    '"side":"buy","size":"0.003","symbol":"BTC-USDT","takerOrderId":"671b50161777ff00074c168d",'
    '"time":"1729843222921000000","tradeId":"11067996711960577","type":"match"}}'
)
OLD_MATCH = (
    '{"type":"message","topic":"/market/match:BTC-USDT","subject":"trade.l3match","data":{'
    '"sequence":"1545896669145","type":"match","symbol":"BTC-USDT","side":"sell",'
    '"price":"0.08200000000000000000","size":"0.01022222000000000000",'
    '"tradeId":"5c24c5da03aa673885cd67aa","takerOrderId":"5c24c5d903aa6772d55b371e",'
    '"makerOrderId":"5c2187d003aa677bd09d5c93","time":"1545913818099033203"}}'
)
L2UPDATE = (
    '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update","data":{'
    '"changes":{"asks":[["18906","0.00331","14103845"],["18907.3","0.58751503","14103844"]],'
    '"bids":[["18891.9","0.15688","14103847"]]},"sequenceEnd":14103847,'
    '"sequenceStart":14103844,"symbol":"BTC-USDT","time":1663747970273}}'
)
SNAPSHOT = (
    b'{"code":"200000","data":{"time":1550653727731,"sequence":"3262786978",'
    b'"bids":[["6500.12","0.45054140"],["6500.11","0.45054140"]],'
    b'"asks":[["6500.16","0.57753524"],["6500.15","0.57753524"]]}}'
)


def test_token_handshake() -> None:
    a = KucoinAdapter()
    req = a.token_request()
    assert (req.method, req.url) == ("POST", "https://api.kucoin.com/api/v1/bullet-public")
    assert a.token_request("http://127.0.0.1:1/kucoin").url == (
        "http://127.0.0.1:1/kucoin/api/v1/bullet-public"
    )
    url, interval = a.url_from_token(BULLET)
    assert interval == 18.0
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "wss://ws-api-spot.kucoin.com/"
    query = parse_qs(parts.query)
    assert query["token"][0].startswith("2neAiuYvAU61ZDX") and query["token"][0].endswith("dQ==")
    assert query["connectId"] == [a.connect_id] and a.connect_id
    # The simulator (or a proxy) replaces the endpoint; a trailing slash does not double.
    for base in ("ws://127.0.0.1:9/kucoin", "ws://127.0.0.1:9/kucoin/"):
        url, _ = a.url_from_token(BULLET, base)
        assert url.startswith("ws://127.0.0.1:9/kucoin/?token=")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b'{"code":"400003","msg":"KC-API-KEY not exists"}',
        b'{"code":"200000","data":{}}',
        b'{"code":"200000","data":{"token":"t","instanceServers":[]}}',
    ],
)
def test_bad_token_answers_are_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError) as e:
        KucoinAdapter().url_from_token(body)
    assert e.value.reason == "bad_token"


def test_match_frames() -> None:
    sink = RecordingSink()
    a = KucoinAdapter()
    a.parse(MATCH, 7, sink)
    a.parse(OLD_MATCH, 8, sink)
    assert sink.trades == [
        ("BTC-USDT", Side.BUY, 67_523 * E8, 300_000, 11067996711960577, 1729843222921000000, 7),
        # Hex trade ids are not numeric: the wire's 0. Extra trailing zeros are exact.
        ("BTC-USDT", Side.SELL, 8_200_000, 1_022_222, 0, 1545913818099033203, 8),
    ]


def test_l2update_frame() -> None:
    sink = RecordingSink()
    KucoinAdapter().parse(L2UPDATE, 9, sink)
    ((sym, u),) = sink.books
    assert sym == "BTC-USDT" and not u.snapshot
    assert (u.first_seq, u.last_seq) == (14103844, 14103847)
    assert u.asks == [(18_906 * E8, 331_000), (189_073 * E8 // 10, 58_751_503)]
    assert u.bids == [(188_919 * E8 // 10, 15_688_000)]
    assert u.exchange_ts_ns == 1663747970273 * 10**6 and u.receive_ts_ns == 9


def test_a_change_at_price_zero_only_moves_the_sequence() -> None:
    frame = L2UPDATE.replace('["18891.9","0.15688","14103847"]', '["0","0","14103847"]')
    sink = RecordingSink()
    KucoinAdapter().parse(frame, 0, sink)
    ((_, u),) = sink.books
    assert u.bids == [] and u.last_seq == 14103847


def test_rest_snapshot() -> None:
    a = KucoinAdapter()
    req = a.snapshot_request("BTC-USDT")
    assert req.url == "https://api.kucoin.com/api/v1/market/orderbook/level2_100"
    assert req.params == {"symbol": "BTC-USDT"}
    u = a.parse_snapshot("BTC-USDT", SNAPSHOT, 3)
    assert u.snapshot and u.last_seq == 3262786978
    assert u.bids == [(650_012 * E8 // 100, 45_054_140), (650_011 * E8 // 100, 45_054_140)]
    assert u.asks[0] == (650_016 * E8 // 100, 57_753_524)
    assert u.exchange_ts_ns == 1550653727731 * 10**6
    for body, reason in [
        (b'{"code":"400100","msg":"This pair is not provided at present"}', "bad_snapshot"),
        (b"{", "bad_snapshot"),
        (b'{"code":"200000","data":{"time":1,"sequence":"x","bids":[],"asks":[]}}', "bad_snapshot"),
        (
            b'{"code":"200000","data":{"time":1,"sequence":"1","bids":[["1.123456789","1"]],'
            b'"asks":[]}}',
            "inexact",
        ),
    ]:
        with pytest.raises(ParseError) as e:
            a.parse_snapshot("BTC-USDT", body, 0)
        assert e.value.reason == reason


def test_subscribe_messages() -> None:
    a = KucoinAdapter()
    match, level2 = (orjson.loads(m) for m in a.subscribe(["BTC-USDT", "ETH-USDT"]))
    assert match == {
        "id": "1",
        "type": "subscribe",
        "topic": "/market/match:BTC-USDT,ETH-USDT",
        "privateChannel": False,
        "response": True,
    }
    assert level2["topic"] == "/market/level2:BTC-USDT,ETH-USDT" and level2["id"] == "2"
    many = a.subscribe([f"S{i}-USDT" for i in range(150)])
    assert [len(orjson.loads(m)["topic"].split(",")) for m in many] == [100, 100, 50, 50]
    (unsub, _) = a.unsubscribe(["BTC-USDT"])
    assert orjson.loads(unsub)["type"] == "unsubscribe"


def test_control_frames() -> None:
    a = KucoinAdapter()
    assert a.ping.message is not None
    ping = orjson.loads(a.ping.message())
    assert ping["type"] == "ping" and ping["id"]
    sink = RecordingSink()
    for frame in (
        '{"id":"hQvf8jkno","type":"welcome"}',
        '{"id":"1545910590801","type":"pong"}',
        '{"id":"1545910660739","type":"ack"}',
        '{"id":"1","type":"error","code":404,"data":"topic /market/xxx is not found"}',
        '{"id":"77","type":"ping"}',
    ):
        a.parse(frame, 0, sink)
    assert sink.controls == [
        ("info", "welcome hQvf8jkno"),
        ("pong", "1545910590801"),
        ("subscribed", "1545910660739"),
        ("error", "404 topic /market/xxx is not found"),
        ("ping", '{"id":"77","type":"pong"}'),
    ]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "bad_json"),
        ("[1]", "unexpected"),
        ('{"unexpected":"shape"}', "unexpected"),
        ('{"type":"message","subject":"trade.l2update","data":{"symbol":"X"}}', "missing_field"),
        (
            '{"type":"message","subject":"trade.l2update","data":{"symbol":"X","changes":'
            '{"asks":[["1","1"]],"bids":[]},"sequenceStart":1,"sequenceEnd":1,"time":1}}',
            "missing_field",
        ),
        (
            '{"type":"message","subject":"trade.l3match","data":{"symbol":"X","side":"buy",'
            '"price":"1.000000001","size":"1","tradeId":"1","time":"1"}}',
            "inexact",
        ),
        (
            '{"type":"message","subject":"trade.l3match","data":{"symbol":"X","side":"hold",'
            '"price":"1","size":"1","tradeId":"1","time":"1"}}',
            "unexpected",
        ),
        ('{"type":"message","subject":"trade.l3match","data":null}', "missing_field"),
    ],
)
def test_bad_frames_are_parse_errors(frame: str, reason: str) -> None:
    with pytest.raises(ParseError) as e:
        KucoinAdapter().parse(frame, 0, RecordingSink())
    assert e.value.reason == reason


def test_sequence_rule_follows_the_calibration_procedure() -> None:
    rule = KucoinAdapter().sequence

    def u(a: int, b: int) -> BookUpdate:
        return BookUpdate(False, [], [], first_seq=a, last_seq=b)

    snap = 16
    assert rule.check(snap, u(10, 16), first=True) is Verdict.STALE  # sequenceEnd <= snapshot
    assert rule.check(snap, u(15, 19), first=True) is Verdict.APPLY  # straddles 17
    assert rule.check(snap, u(18, 19), first=True) is Verdict.GAP
    assert rule.check(19, u(20, 22), first=False) is Verdict.APPLY
    assert rule.check(19, u(21, 22), first=False) is Verdict.GAP
    assert rule.check(19, u(18, 22), first=False) is Verdict.GAP  # overlap: resync, not guess


def test_documented_calibration_example() -> None:
    """KuCoin's worked example: snapshot at 16, then an increment spanning 15..19."""
    a = KucoinAdapter()
    snapshot = a.parse_snapshot(
        "BTC-USDT",
        b'{"code":"200000","data":{"time":1,"sequence":"16",'
        b'"asks":[["3988.62","8"],["3988.61","32"],["3988.60","47"],["3988.59","3"]],'
        b'"bids":[["3988.51","56"],["3988.50","15"],["3988.49","100"],["3988.48","10"]]}}',
        0,
    )
    sink = RecordingSink()
    a.parse(
        '{"type":"message","topic":"/market/level2:BTC-USDT","subject":"trade.l2update","data":{'
        '"changes":{"asks":[["3988.59","3","16"],["3988.61","0","19"],["3988.62","8","15"]],'
        '"bids":[["3988.50","44","18"]]},"sequenceStart":15,"sequenceEnd":19,'
        '"symbol":"BTC-USDT","time":1}}',
        0,
        sink,
    )
    book = SymbolBook("BTC-USDT", 1, a.sequence, NullOutput(), lambda s: None)
    book.on_update(sink.books[0][1])  # buffered: no snapshot yet
    book.load_snapshot(snapshot)
    assert book.counters.updates == 1 and book.seq == 19

    def px(text: str) -> int:
        return int(text.replace(".", "")) * 10**6

    assert book.book.asks == {px("3988.62"): 8 * E8, px("3988.60"): 47 * E8, px("3988.59"): 3 * E8}
    assert book.book.bids == {
        px("3988.51"): 56 * E8,
        px("3988.50"): 44 * E8,
        px("3988.49"): 100 * E8,
        px("3988.48"): 10 * E8,
    }


# --- the simulator -----------------------------------------------------------------------------

INSTRUMENTS = [Instrument("BTC-USDT", 1, 8), Instrument("ETH-USDT", 2, 4, mid=2000 * E8)]


def _run(*faults: Fault, instruments: list[Instrument] = INSTRUMENTS) -> Any:
    return asyncio.run(
        roundtrip(KucoinAdapter(), KucoinSim, instruments, events=600, faults=list(faults))
    )


def test_roundtrip_books_equal_simulator() -> None:
    rt = _run()
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, None), sym
        assert book.counters.gaps == 0 and book.counters.updates > 0
    assert rt.trades > 0 and rt.parse_errors == {}
    kinds = {k for k, _ in rt.controls}
    assert {"subscribed", "info"} <= kinds  # acks and the welcome


def test_roundtrip_detects_a_skipped_update() -> None:
    rt = _run(Fault(FaultKind.SKIP_SEQUENCE, after_events=150))
    assert rt.sim.frames_skipped == 1
    assert sum(b.counters.gaps for b in rt.books.values()) == 1
    assert sum(b.counters.resyncs for b in rt.books.values()) == 1
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, None), sym


def test_roundtrip_counts_malformed_frames() -> None:
    rt = _run(Fault(FaultKind.MALFORMED, after_events=100))
    assert rt.parse_errors == {"bad_json": 1, "unexpected": 1}
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, None), sym


def test_roundtrip_survives_a_dropped_connection() -> None:
    rt = _run(Fault(FaultKind.DROP_CONNECTION, after_events=150))
    assert rt.sim.faults[0].fired
    assert sum(1 for k, d in rt.controls if k == "info" and d.startswith("welcome")) == 2
    for sym, book in rt.books.items():
        assert book.counters.snapshots >= 2, sym
        assert book.book == rt.sim_book(sym, None), sym


def test_roundtrip_deeper_than_the_snapshot() -> None:
    """The REST snapshot has 100 levels, the stream the whole book: every level the book holds
    is true; levels deeper than 100 are known once the stream changes them."""
    rt = _run(instruments=[Instrument("BTC-USDT", 1, 8, depth=120)])
    book, truth = rt.books["BTC-USDT"].book, rt.sim.markets["BTC-USDT"].book
    assert len(book.bids) > 100  # deeper levels learnt from the stream
    assert all(truth.bids.get(p) == q for p, q in book.bids.items())
    assert all(truth.asks.get(p) == q for p, q in book.asks.items())
    assert book.top_bids(50) == truth.top_bids(50) and book.top_asks(50) == truth.top_asks(50)


async def _talk() -> tuple[list[dict[str, Any]], int]:
    """The handshake exactly as a client does it, without overriding the endpoint."""
    ex = SimExchange("kucoin", KucoinSim, INSTRUMENTS[:1])
    sim = Simulator([ex], rate=500)
    await sim.start()
    got: list[dict[str, Any]] = []
    a = KucoinAdapter()
    try:
        async with aiohttp.ClientSession() as http:
            req = a.token_request(sim.url("kucoin", "http"))
            async with http.request(req.method, req.url) as r:
                url, interval = a.url_from_token(await r.read())
            assert interval == 18.0
            async with http.get(
                sim.url("kucoin", "http") + "/api/v1/market/orderbook/level2_100",
                params={"symbol": "NOPE-USDT"},
            ) as r:
                status = r.status
            async with http.ws_connect(url) as ws:

                async def ask(text: str | None, n: int = 1) -> None:
                    if text is not None:
                        await ws.send_str(text)
                    for _ in range(n):
                        got.append(orjson.loads((await ws.receive(timeout=5)).data))

                await ask(None)  # welcome
                await ask('{"id":"p1","type":"ping"}')
                await ask(
                    '{"id":"s1","type":"subscribe","topic":"/market/ticker:BTC-USDT",'
                    '"response":true}'
                )
                await ask(
                    '{"id":"s2","type":"subscribe","topic":"/market/level2:NOPE-USDT",'
                    '"response":true}'
                )
                await ask(
                    '{"id":"s3","type":"subscribe","topic":"/market/level2:BTC-USDT",'
                    '"response":true}',
                    4,
                )
    finally:
        await sim.stop()
    return got, status


def test_simulator_speaks_kucoin() -> None:
    (welcome, pong, bad_topic, bad_symbol, ack, *updates), status = asyncio.run(_talk())
    assert status == 400
    assert welcome["type"] == "welcome" and welcome["id"]
    assert pong["type"] == "pong" and pong["id"] == "p1"
    assert bad_topic["type"] == "error" and bad_topic["id"] == "s1" and bad_topic["code"] == 404
    assert bad_symbol["type"] == "error" and bad_symbol["id"] == "s2"
    assert ack == {"id": "s3", "type": "ack"}
    prev_end = None
    for m in updates:
        assert m["subject"] == "trade.l2update" and m["topic"] == "/market/level2:BTC-USDT"
        d = m["data"]
        if prev_end is not None:
            assert d["sequenceStart"] == prev_end + 1
        prev_end = d["sequenceEnd"]
        changes = d["changes"]["bids"] + d["changes"]["asks"]
        seqs = [int(c[2]) for c in changes]
        assert d["sequenceStart"] <= min(seqs) and max(seqs) == d["sequenceEnd"]
        # One entry per price; numbers without trailing zeros, as KuCoin renders them.
        assert len({c[0] for c in changes}) == len(changes)
        assert all(not c[0].endswith("0") or "." not in c[0] for c in changes)


def test_simulator_refuses_a_connection_without_its_token() -> None:
    import aiohttp

    from feeder.sim.server import SimExchange, Simulator

    async def go() -> tuple[str, str]:
        sim = Simulator([SimExchange("kucoin", KucoinSim, INSTRUMENTS)], rate=10)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as http:
                url = f"ws://127.0.0.1:{sim.port}/kucoin{KucoinSim.ws_path}"
                async with http.ws_connect(url + "?token=forged&connectId=c1") as ws:
                    bad = (await ws.receive()).data
                adapter = KucoinAdapter()
                req = adapter.token_request(f"http://127.0.0.1:{sim.port}/kucoin")
                assert req is not None
                async with http.request(req.method, req.url) as r:
                    good_url, _ = adapter.url_from_token(await r.read())
                async with http.ws_connect(good_url) as ws:
                    welcome = (await ws.receive()).data
            return bad, welcome
        finally:
            await sim.stop()

    bad, welcome = asyncio.run(go())
    assert '"type":"error"' in bad and "token" in bad
    assert '"type":"welcome"' in welcome
