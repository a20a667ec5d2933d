"""Kraken v2 adapter and simulator: frames, checksum, truncation, round trips with faults."""

from __future__ import annotations

import asyncio
import zlib
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.book.orderbook import OrderBook
from feeder.book.sync import State, SymbolBook
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.exchanges.kraken import KrakenAdapter, rfc3339_ns
from feeder.sim.faults import Fault, FaultKind
from feeder.sim.market import Instrument
from feeder.sim.protocols.kraken import KrakenSim
from feeder.sim.server import SimExchange, Simulator
from feeder.wire import Side
from tests.feeder.exchanges.harness import NullOutput, RecordingSink, roundtrip

E8 = 10**8


def _levels(rows: list[tuple[str, str]]) -> str:
    # JSON numbers written as Kraken writes them: the pair's full precision.
    return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in rows) + "]"


def _book_frame(kind: str, symbol: str, bids: str, asks: str, checksum: int) -> str:
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{bids},'
        f'"asks":{asks},"checksum":{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}'
    )


# The Kraken docs' book example ("Book (Level 2)": snapshot, then an update), MATIC/USD with
# price precision 4 and quantity precision 8.
MATIC_BIDS = [
    ("0.5666", "4831.75496356"),
    ("0.5665", "6658.22734739"),
    ("0.5664", "18724.91513344"),
    ("0.5663", "11563.92544914"),
    ("0.5662", "14006.65365711"),
    ("0.5661", "17454.85679807"),
    ("0.566", "18097.1547"),
    ("0.5659", "33644.89175666"),
    ("0.5658", "148.3464"),
    ("0.5657", "606.70854372"),
]
MATIC_ASKS = [
    ("0.5668", "4410.79769741"),
    ("0.5669", "4655.40412487"),
    ("0.567", "49844.89424998"),
    ("0.5671", "24306.41678"),
    ("0.5672", "29783.25223475"),
    ("0.5673", "57234.71239278"),
    ("0.5674", "45065.04744"),
    ("0.5675", "5912.76380354"),
    ("0.5676", "42514.92434778"),
    ("0.5677", "36304.0847022"),
]
MATIC_SNAPSHOT = _book_frame(
    "snapshot", "MATIC/USD", _levels(MATIC_BIDS), _levels(MATIC_ASKS), 2439117997
)
MATIC_UPDATE = _book_frame(
    "update", "MATIC/USD", _levels([("0.5657", "1098.3947558")]), "[]", 2114181697
)

# The worked example of the guide "Book checksum (WebSocket v2)": BTC/USD, precisions 1 and 8.
BTC_BIDS = [
    ("45283.5", "0.10000000"),
    ("45283.4", "1.54582015"),
    ("45282.1", "0.10000000"),
    ("45281.0", "0.10000000"),
    ("45280.3", "1.54592586"),
    ("45279.0", "0.07990000"),
    ("45277.6", "0.03310103"),
    ("45277.5", "0.30000000"),
    ("45277.3", "1.54602737"),
    ("45276.6", "0.15445238"),
]
BTC_ASKS = [
    ("45285.2", "0.00100000"),
    ("45286.4", "1.54571953"),
    ("45286.6", "1.54571109"),
    ("45289.6", "1.54560911"),
    ("45290.2", "0.15890660"),
    ("45291.8", "1.54553491"),
    ("45294.7", "0.04454749"),
    ("45296.1", "0.35380000"),
    ("45297.5", "0.09945542"),
    ("45299.5", "0.18772827"),
]
BTC_SNAPSHOT = _book_frame("snapshot", "BTC/USD", _levels(BTC_BIDS), _levels(BTC_ASKS), 3310070434)

TRADE = (
    '{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy",'
    '"price":0.5147,"qty":6423.46326,"ord_type":"limit","trade_id":4665846,'
    '"timestamp":"2023-09-25T07:48:36.925533Z"}]}'
)


class BookSink(RecordingSink):
    """Feeds a real ``SymbolBook`` per pair and records the adapter's checksum of each book
    right after the exchange's message was applied (where ``SymbolBook`` checks it)."""

    def __init__(self, adapter: KrakenAdapter) -> None:
        super().__init__()
        self.adapter = adapter
        self.symbol_books: dict[str, SymbolBook] = {}
        self.sums: list[tuple[int | None, int | None]] = []  # (exchange's, ours)
        self.asked: list[str] = []

    def book(self, symbol: str, update: BookUpdate) -> None:
        super().book(symbol, update)
        if symbol not in self.symbol_books:
            self.symbol_books[symbol] = SymbolBook(
                symbol,
                len(self.symbol_books) + 1,
                self.adapter.sequence,
                NullOutput(),
                self.asked.append,
                checksum=self.adapter.checksum,
                depth=self.adapter.book_depth,
            )
        sb = self.symbol_books[symbol]
        sb.on_update(update)
        self.sums.append((update.checksum, self.adapter.checksum(symbol, sb.book)))


def test_trade_frame() -> None:
    sink = RecordingSink()
    KrakenAdapter().parse(TRADE, 99, sink)
    ts = 1695628116 * 10**9 + 925533 * 1000
    assert sink.trades == [("MATIC/USD", Side.BUY, 51470000, 642346326000, 4665846, ts, 99)]


def test_rfc3339_timestamps_are_exact_nanoseconds() -> None:
    assert rfc3339_ns("2023-10-06T17:35:55.440295Z") == 1696613755 * 10**9 + 440295000
    assert rfc3339_ns("1970-01-01T00:00:00.000001Z") == 1000


def test_documented_book_example_checksums() -> None:
    adapter = KrakenAdapter(precision={"MATIC/USD": (4, 8)})
    sink = BookSink(adapter)
    adapter.parse(MATIC_SNAPSHOT, 1, sink)
    adapter.parse(MATIC_UPDATE, 2, sink)
    assert sink.sums == [(2439117997, 2439117997), (2114181697, 2114181697)]
    (sb,) = sink.symbol_books.values()
    assert sb.state is State.LIVE and sb.counters.checksum_errors == 0 and sb.counters.updates == 1
    assert sb.book.bids[56570000] == 109839475580  # 0.5657 -> 1098.3947558
    snap = sink.books[0][1]
    assert snap.snapshot and snap.bids[0] == (56660000, 483175496356)
    assert snap.exchange_ts_ns == 1696613755 * 10**9 + 440295000


def test_documented_checksum_guide_example() -> None:
    adapter = KrakenAdapter(precision={"BTC/USD": (1, 8)})
    sink = BookSink(adapter)
    adapter.parse(BTC_SNAPSHOT, 0, sink)
    assert sink.sums == [(3310070434, 3310070434)]


def test_checksum_needs_the_pairs_precision() -> None:
    # Same book, other precisions: other text, other CRC; unknown precisions: no check at all.
    adapter = KrakenAdapter(precision={"BTC/USD": (2, 8)})
    sink = BookSink(adapter)
    adapter.parse(BTC_SNAPSHOT, 0, sink)
    assert sink.sums[0][1] not in (None, 3310070434)
    sink = BookSink(KrakenAdapter())
    sink.adapter.parse(BTC_SNAPSHOT, 0, sink)
    assert sink.sums == [(3310070434, None)]
    assert sink.adapter.checksum("BTC/USD", sink.symbol_books["BTC/USD"].book) is None


def test_a_wrong_checksum_resyncs_the_pair() -> None:
    adapter = KrakenAdapter(precision={"MATIC/USD": (4, 8)})
    sink = BookSink(adapter)
    adapter.parse(MATIC_SNAPSHOT, 1, sink)
    adapter.parse(MATIC_UPDATE.replace("2114181697", "2114181698"), 2, sink)
    (sb,) = sink.symbol_books.values()
    assert sb.counters.checksum_errors == 1 and sb.state is State.WAITING
    assert sink.asked == ["MATIC/USD"]


def test_checksum_covers_the_best_10_levels_only() -> None:
    adapter = KrakenAdapter(precision={"BTC/USD": (1, 8)})
    sink = BookSink(adapter)
    deeper = [*BTC_BIDS, ("45270.0", "1.00000000")]
    adapter.parse(
        _book_frame("snapshot", "BTC/USD", _levels(deeper), _levels(BTC_ASKS), 0), 0, sink
    )
    assert sink.sums[0][1] == 3310070434


def test_book_is_truncated_to_the_subscribed_depth() -> None:
    adapter = KrakenAdapter()
    sink = BookSink(adapter)
    depth = adapter.book_depth
    assert depth is not None
    bids = [(f"{100 - i}.0", "1.0") for i in range(depth)]
    asks = [(f"{101 + i}.0", "1.0") for i in range(depth)]
    adapter.parse(_book_frame("snapshot", "X/USD", _levels(bids), _levels(asks), 0), 0, sink)
    # A better bid pushes the worst one out of scope; Kraken sends no removal for it.
    adapter.parse(_book_frame("update", "X/USD", _levels([("100.5", "2.0")]), "[]", 0), 0, sink)
    book = sink.symbol_books["X/USD"].book
    assert len(book.bids) == depth and (100 - depth + 1) * E8 not in book.bids
    assert book.best_bid() == (1005 * 10**7, 2 * E8)


def test_updates_from_before_a_pushed_snapshot_are_stale() -> None:
    # An update buffered while waiting for the snapshot (from the previous subscription) is
    # older than the snapshot the stream pushes next: it is not replayed onto it.
    adapter = KrakenAdapter()
    sink = BookSink(adapter)
    adapter.parse(MATIC_UPDATE, 0, sink)  # no snapshot yet: buffered
    adapter.parse(MATIC_SNAPSHOT, 0, sink)
    adapter.parse(MATIC_UPDATE, 0, sink)
    assert [u.last_seq for _, u in sink.books] == [1, 2, 3]
    (sb,) = sink.symbol_books.values()
    assert sb.counters.superseded == 1 and sb.counters.updates == 1 and sb.counters.gaps == 0


def test_subscribe_messages() -> None:
    adapter = KrakenAdapter()
    instrument, book, trade = (orjson.loads(m) for m in adapter.subscribe(["BTC/USD", "ETH/USD"]))
    # Precisions unknown: the instrument channel first, so they arrive before the snapshots.
    assert instrument == {
        "method": "subscribe",
        "params": {"channel": "instrument", "snapshot": True},
        "req_id": 1,
    }
    assert book == {
        "method": "subscribe",
        "params": {
            "channel": "book",
            "symbol": ["BTC/USD", "ETH/USD"],
            "depth": 25,
            "snapshot": True,
        },
        "req_id": 2,
    }
    assert trade == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"], "snapshot": False},
        "req_id": 3,
    }
    book, trade = (orjson.loads(m) for m in adapter.unsubscribe(["BTC/USD"]))
    assert book["method"] == "unsubscribe" and book["params"]["depth"] == 25
    assert trade["params"] == {"channel": "trade", "symbol": ["BTC/USD"]}


def test_precisions_come_from_the_instrument_channel() -> None:
    adapter = KrakenAdapter()
    sink = RecordingSink()
    adapter.parse(
        '{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC",'
        '"status":"enabled","precision":10}],"pairs":[{"symbol":"BTC/USD","base":"BTC",'
        '"quote":"USD","status":"online","qty_precision":8,"qty_increment":0.00000001,'
        '"price_precision":1,"price_increment":0.1}]}}',
        0,
        sink,
    )
    assert adapter.precision == {"BTC/USD": (1, 8)}
    assert sink.controls == [("info", "instrument: precisions of 1 pairs")]
    assert [orjson.loads(m)["params"]["channel"] for m in adapter.subscribe(["BTC/USD"])] == [
        "book",
        "trade",
    ]


def test_subscribe_batches_symbols_per_message() -> None:
    adapter = KrakenAdapter(precision={f"C{i}/USD": (1, 8) for i in range(60)})
    msgs = [orjson.loads(m) for m in adapter.subscribe([f"C{i}/USD" for i in range(60)])]
    assert [len(m["params"]["symbol"]) for m in msgs] == [50, 50, 10, 10]


def test_keepalive_and_acknowledgements() -> None:
    ping = KrakenAdapter.ping
    assert ping.message is not None and orjson.loads(ping.message()) == {"method": "ping"}
    adapter = KrakenAdapter()
    sink = RecordingSink()
    for frame in [
        '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
        '"time_out":"2023-09-24T14:10:23.799703Z"}',
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,'
        '"symbol":"ALGO/USD"},"success":true,"time_in":"2023-10-06T17:35:55.219022Z",'
        '"time_out":"2023-10-06T17:35:55.219067Z"}',
        '{"error":"Currency pair not supported DOGE/BTC","method":"subscribe","success":false,'
        '"symbol":"DOGE/BTC","time_in":"2023-10-06T17:35:55.219022Z",'
        '"time_out":"2023-10-06T17:35:55.219067Z"}',
        '{"channel":"heartbeat"}',
        '{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online",'
        '"api_version":"v2","connection_id":12393906104898154338}]}',
    ]:
        adapter.parse(frame, 0, sink)
    assert sink.controls[:3] == [
        ("pong", "101"),
        ("subscribed", "book:ALGO/USD"),
        ("error", "subscribe: Currency pair not supported DOGE/BTC (DOGE/BTC)"),
    ]
    assert sink.controls[3] == ("info", "status online 2.0.0")  # the heartbeat says nothing
    assert sink.books == [] and sink.trades == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "bad_json"),
        ("[1,2]", "unexpected"),
        ('{"unexpected": "shape"}', "unexpected"),
        (MATIC_UPDATE.replace('"update"', '"partial"'), "unexpected"),
        (MATIC_UPDATE.replace('"checksum"', '"crc"'), "missing_field"),
        (MATIC_UPDATE.replace("1098.3947558", "1e-9"), "inexact"),
        (MATIC_UPDATE.replace("2023-10-06T17:35:55.440295Z", "yesterday"), "missing_field"),
        (TRADE.replace('"buy"', '"long"'), "unexpected"),
        (TRADE.replace('"trade_id":4665846,', ""), "missing_field"),
    ],
)
def test_bad_frames_are_parse_errors(frame: str, reason: str) -> None:
    sink = RecordingSink()
    with pytest.raises(ParseError) as e:
        KrakenAdapter().parse(frame, 0, sink)
    assert e.value.reason == reason
    assert sink.books == [] and sink.trades == []


# --- the simulator, spoken to directly ------------------------------------------------------


async def _exchange(messages: list[str], expect: int) -> list[str]:
    """Send ``messages`` to a quiet simulated Kraken and return the first ``expect`` frames."""
    ex = SimExchange("kraken", KrakenSim, [Instrument("BTC/USD", 1, 8)])
    sim = Simulator([ex], rate=0)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.url("kraken")) as ws:
            for m in messages:
                await ws.send_str(m)
            return [await asyncio.wait_for(ws.receive_str(), 5) for _ in range(expect)]
    finally:
        await sim.stop()


def test_simulator_speaks_the_protocol() -> None:
    adapter = KrakenAdapter()
    assert adapter.ping.message is not None
    messages = [
        adapter.ping.message(),
        *adapter.subscribe(["BTC/USD", "NOPE/USD"]),
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":7}}',
    ]
    # status, pong, instrument ack + snapshot, book ack + snapshot + error, trade ack + error,
    # bad depth error.
    frames = asyncio.run(_exchange(messages, 10))
    sink = BookSink(adapter)
    for f in frames:
        adapter.parse(f, 0, sink)
    assert adapter.precision == {"BTC/USD": (1, 8)}
    assert [k for k, _ in sink.controls] == [
        "info",
        "pong",
        "subscribed",
        "info",
        "subscribed",
        "error",
        "subscribed",
        "error",
        "error",
    ]
    assert "NOPE/USD" in sink.controls[5][1] and "depth" in sink.controls[8][1]
    # The snapshot is the subscribed depth of a 25-level market, and its checksum checks out.
    ((sym, snap),) = sink.books
    assert sym == "BTC/USD" and snap.snapshot and len(snap.bids) == len(snap.asks) == 25
    assert sink.sums[0][0] == sink.sums[0][1] is not None


# --- round trips ------------------------------------------------------------------------------

# Markets deeper than the subscribed depth, so truncation is exercised.
INSTRUMENTS = [
    Instrument("BTC/USD", 1, 8, depth=40),
    Instrument("ETH/USD", 2, 4, mid=2000 * E8, depth=40),
]


def test_roundtrip_books_equal_simulator() -> None:
    adapter = KrakenAdapter()
    rt = asyncio.run(roundtrip(adapter, KrakenSim, INSTRUMENTS, events=600))
    assert adapter.precision == {"BTC/USD": (1, 8), "ETH/USD": (2, 4)}
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym
        assert len(book.book.bids) == len(book.book.asks) == adapter.book_depth
        assert book.counters.checksum_errors == 0 and book.counters.updates > 0
    assert rt.trades > 0 and rt.parse_errors == {}


def test_roundtrip_detects_a_corrupt_checksum() -> None:
    adapter = KrakenAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            KrakenSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.CORRUPT_CHECKSUM, after_events=150)],
        )
    )
    assert sum(b.counters.checksum_errors for b in rt.books.values()) == 1
    assert sum(b.counters.resyncs for b in rt.books.values()) == 1
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym


def test_roundtrip_counts_malformed_frames() -> None:
    adapter = KrakenAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            KrakenSim,
            INSTRUMENTS,
            events=400,
            faults=[Fault(FaultKind.MALFORMED, after_events=100)],
        )
    )
    assert rt.parse_errors == {"bad_json": 1, "unexpected": 1}
    for sym, book in rt.books.items():
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym


def test_roundtrip_survives_a_dropped_connection() -> None:
    adapter = KrakenAdapter()
    rt = asyncio.run(
        roundtrip(
            adapter,
            KrakenSim,
            INSTRUMENTS,
            events=600,
            faults=[Fault(FaultKind.DROP_CONNECTION, after_events=150)],
        )
    )
    assert rt.sim.faults[0].fired
    for sym, book in rt.books.items():
        assert book.counters.snapshots == 2, sym  # one per connection
        assert book.book == rt.sim_book(sym, adapter.book_depth), sym


def test_checksum_follows_a_precision_change_and_remembered_levels() -> None:
    # Each level's text is remembered per (price, qty) precision: a changed precision (the
    # instrument channel may say so later) must not reuse the other precision's text.
    adapter = KrakenAdapter(precision={"BTC/USD": (1, 8)})
    book = OrderBook()
    for i in range(12):
        book.set(True, (45000 - i) * E8, (i + 1) * 10**6)
        book.set(False, (45001 + i) * E8, (i + 2) * 10**6)

    def direct(pp: int, qp: int) -> int:
        def digits(v: int, places: int) -> str:
            return str(v // 10 ** (8 - places)) if places <= 8 else str(v * 10 ** (places - 8))

        text = "".join(
            digits(p, pp) + digits(q, qp) for p, q in book.top_asks(10) + book.top_bids(10)
        )
        return zlib.crc32(text.encode())

    assert adapter.checksum("BTC/USD", book) == adapter.checksum("BTC/USD", book) == direct(1, 8)
    adapter.precision["BTC/USD"] = (2, 6)
    assert adapter.checksum("BTC/USD", book) == direct(2, 6)


_stamps = st.one_of(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.isoformat(timespec="microseconds") + "Z"
    ),
    st.tuples(
        st.sampled_from(["2023-10-06T17:35:55", "2023-10-06T17:35:56", "2023-02-30T17:35:55"]),
        st.text(alphabet="0123456789.Z+:\u0663\u00b2x", max_size=10),
    ).map("".join),
)


def _via_datetime(text: str) -> object:
    try:
        return (
            (datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC))
            // timedelta(microseconds=1)
            * 1000
        )
    except (ValueError, TypeError) as e:
        return type(e), str(e)


@given(st.lists(_stamps, max_size=20))
def test_rfc3339_remembered_seconds_change_nothing(texts: list[str]) -> None:
    for text in texts + texts:  # the second pass finds every valid second remembered
        try:
            got: object = rfc3339_ns(text)
        except (ValueError, TypeError) as e:
            got = type(e), str(e)
        assert got == _via_datetime(text)
