"""The crashes the fuzzers found, each pinned as a plain example so it stays fixed."""

from __future__ import annotations

import pytest

from feeder.exchanges import adapter_class
from feeder.exchanges.base import BookUpdate, ParseError
from feeder.normalize.decimal import InexactValue, from_float, parse
from tests.fuzz.wellformed import parse_checked


@pytest.mark.parametrize(
    "text",
    [
        "1e999999",  # decimal.Overflow escaped every adapter
        "1e99999",  # a 100,000-digit int
        "9" * 5000,  # past int()'s digit limit, into Decimal
        "92233720368.54775808",  # one past i64 at scale 8
        "1E-999999999",  # underflowed to 0: a level delete
        "1.00000000000000000000000000000000001",  # rounded to 28 digits: exactly 1
    ],
)
def test_decimal_text_outside_the_wire_is_inexact(text: str) -> None:
    with pytest.raises(InexactValue):
        parse(text, 8)


def test_decimal_bounds_are_exact() -> None:
    assert parse("92233720368.54775807", 8) == (1 << 63) - 1
    assert parse("-92233720368.54775808", 8) == -(1 << 63)
    assert parse("0e999999999", 8) == 0


@pytest.mark.parametrize("value", [None, 5, ["1"]])
def test_decimal_of_a_non_string_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        parse(value, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, 10**12, 1e300])
def test_from_float_refuses_booleans_and_huge_numbers(value: float) -> None:
    with pytest.raises(InexactValue):
        from_float(value, 8)


def test_book_update_refuses_what_the_wire_cannot_carry() -> None:
    for fields in ({"last_seq": -1}, {"first_seq": 1 << 64}, {"exchange_ts_ns": -1_000_000}):
        with pytest.raises(ParseError) as e:
            BookUpdate(False, [], [], **fields)
        assert e.value.reason == "out_of_range"


BINANCE_TRADE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,'
    '"p":"1.5","q":"2","T":%s,"m":true}}'
)
BINANCE_DEPTH = (
    '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
    '"U":%s,"u":5,"b":[],"a":[]}}'
)


@pytest.mark.parametrize(
    ("exchange", "frame", "reason"),
    [
        # "T" * 1e6: a list or string multiplied into megabytes instead of a timestamp.
        ("binance", BINANCE_TRADE % '"ab"', "missing_field"),
        ("binance", BINANCE_TRADE % "[1,2,3]", "missing_field"),
        ("binance", BINANCE_DEPTH % "null", "missing_field"),  # passed through untyped
        ("binance", BINANCE_DEPTH % "-3", "out_of_range"),
        ("kraken", '{"channel":"status","type":"update","data":[null]}', "missing_field"),
        (
            "okx",
            '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot",'
            '"data":[{"asks":["3"],"bids":[],"ts":"1","seqId":1,"prevSeqId":-1}]}',
            "missing_field",
        ),
        (
            "okx",
            '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":["x"]}',
            "missing_field",
        ),
        (
            "kucoin",
            '{"type":"message","subject":"trade.l2update","data":{"changes":{"asks":[],'
            '"bids":[]},"sequenceEnd":-1,"sequenceStart":1,"symbol":"BTC-USDT","time":1}}',
            "out_of_range",
        ),
    ],
)
def test_frames_that_escaped_parse(exchange: str, frame: str, reason: str) -> None:
    assert parse_checked(adapter_class(exchange)(), frame) == reason


def token(interval: str) -> bytes:
    return (
        '{"code":"200000","data":{"token":"t","instanceServers":[{"endpoint":"ws://x/",'
        f'"pingInterval":{interval}}}]}}}}'
    ).encode()


@pytest.mark.parametrize("interval", ["-5", "true", "0", "1e-300", "1e300", '"18000"'])
def test_kucoin_refuses_a_ping_interval_that_floods_or_starves(interval: str) -> None:
    with pytest.raises(ParseError) as e:
        adapter_class("kucoin")().url_from_token(token(interval))
    assert e.value.reason == "bad_token"
    assert "pingInterval" in e.value.detail


def test_kucoin_ping_interval_in_seconds() -> None:
    assert adapter_class("kucoin")().url_from_token(token("18000"))[1] == 18.0
