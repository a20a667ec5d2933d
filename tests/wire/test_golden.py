"""Golden bytes: hex written by hand from docs/wire-format.md. These pin the format; if one
fails, the wire format changed and every decoder in every language breaks with it."""

from __future__ import annotations

import pytest

from feeder.wire import (
    HEADER_SIZE,
    MIN_PACKET_SIZE,
    BookAction,
    BookDelta,
    BookLevels,
    Exchange,
    InstrumentDefinition,
    Level,
    Message,
    Packet,
    PacketEncoder,
    PacketKind,
    Side,
    Status,
    StatusCode,
    Trade,
    book_levels_size,
    decode_packet,
    layout,
)

SESSION = 0x0807060504030201
CHANNEL = 0x0102
SEND_TIME = 0x17A2B3C4D5E6F708


def header_hex(kind: str, first_seq: str, count: str) -> str:
    return (
        "4d444657"  # magic "MDFW"
        "01" + kind + "2800"  # version  # header_len 40
        "0102030405060708"  # session_id 0x0807060504030201
         + first_seq + "08f7e6d5c4b3a217"  # send_time_ns 0x17a2b3c4d5e6f708
        "0201"  # channel_id 0x0102
         + count + "00000000"  # reserved
    )


DATA_HEADER = header_hex("01", "0500000000000000", "0100")  # DATA, first_seq 5, 1 message

TRADE_HEX = (
    "3200"
    "0100"  # length 50, template 1
    "04030201"  # instrument_id 0x01020304
    "02"
    "01"  # side SELL, flags LAST_IN_EVENT
    "feffffffffffffff"  # price -2
    "00e1f50500000000"  # qty 100_000_000 (1.0 at exponent 8)
    "8877665544332211"  # trade_id 0x1122334455667788
    "00f7e6d5c4b3a217"  # exchange_ts_ns 0x17a2b3c4d5e6f700
    "01f8e6d5c4b3a217"  # receive_ts_ns 0x17a2b3c4d5e6f801
)
TRADE = Trade(
    0x01020304,
    Side.SELL,
    1,
    -2,
    100_000_000,
    0x1122334455667788,
    0x17A2B3C4D5E6F700,
    0x17A2B3C4D5E6F801,
)

DELTA_HEX = (
    "3300"
    "0200"  # length 51, template 2
    "09000000"  # instrument_id 9
    "02"
    "03"
    "03"  # side ask, action DELETE, flags LAST_IN_EVENT|SNAPSHOT
    "ffffffffffffff7f"  # price 2**63-1
    "0000000000000000"  # qty 0
    "efbeadde00000000"  # exchange_seq 0xdeadbeef
    "0100000000000000"  # exchange_ts_ns 1
    "ffffffffffffffff"  # receive_ts_ns 2**64-1
)
DELTA = BookDelta(9, Side.SELL, BookAction.DELETE, 3, 2**63 - 1, 0, 0xDEADBEEF, 1, 2**64 - 1)

LEVELS_HEX = (
    "5300"
    "0300"  # length 83 = 35 + 3 * 16, template 3
    "ffffffff"  # instrument_id 2**32-1
    "06"
    "02"
    "01"  # flags FIRST_CHUNK|LAST_CHUNK, n_bids 2, n_asks 1
    "0a00000000000000"  # exchange_seq 10
    "0b00000000000000"  # exchange_ts_ns 11
    "0c00000000000000"  # receive_ts_ns 12
    "6400000000000000"
    "0500000000000000"  # bid 0: price 100, qty 5
    "6300000000000000"
    "0700000000000000"  # bid 1: price 99, qty 7
    "6500000000000000"
    "0201000000000000"  # ask 0: price 101, qty 258
)
LEVELS = BookLevels(2**32 - 1, 6, 10, 11, 12, (Level(100, 5), Level(99, 7)), (Level(101, 258),))

DEFINITION_HEX = (
    "2c00"
    "0400"  # length 44, template 4
    "07000000"  # instrument_id 7
    "0700"  # exchange_id 7 (upbit)
    "00"
    "12"  # price_exponent 0, qty_exponent 18
    "4b52572d425443" + "00" * 25  # symbol "KRW-BTC", NUL-padded to 32 bytes
)
DEFINITION = InstrumentDefinition(7, Exchange.UPBIT, 0, 18, "KRW-BTC")

STATUS_HEX = (
    "1800"
    "0500"  # length 24, template 5
    "00000000"  # instrument_id 0: the whole exchange
    "0600"
    "0800"  # exchange_id 6 (bithumb), status 8 (GAP)
    "04030201"  # detail 0x01020304
    "00f7e6d5c4b3a217"  # ts_ns 0x17a2b3c4d5e6f700
)
STATUS = Status(0, Exchange.BITHUMB, StatusCode.GAP, 0x01020304, 0x17A2B3C4D5E6F700)

GOLDEN: list[tuple[Message, str]] = [
    (TRADE, TRADE_HEX),
    (DELTA, DELTA_HEX),
    (LEVELS, LEVELS_HEX),
    (DEFINITION, DEFINITION_HEX),
    (STATUS, STATUS_HEX),
]
IDS = ["trade", "book_delta", "book_levels", "instrument_definition", "status"]


def encode_one(message: Message) -> bytes:
    encoder = PacketEncoder(SESSION, CHANNEL)
    encoder.begin(bytearray(1400), first_seq=5)
    encoder.add(message)
    return bytes(encoder.finish(SEND_TIME))


@pytest.mark.parametrize(("message", "body_hex"), GOLDEN, ids=IDS)
def test_encoder_writes_the_documented_bytes(message: Message, body_hex: str) -> None:
    assert encode_one(message).hex() == DATA_HEADER + body_hex


@pytest.mark.parametrize(("message", "body_hex"), GOLDEN, ids=IDS)
def test_decoder_reads_the_documented_bytes(message: Message, body_hex: str) -> None:
    packet = decode_packet(bytes.fromhex(DATA_HEADER + body_hex))
    assert isinstance(packet, Packet), packet
    assert packet.messages == (message,)
    assert packet.skipped == 0
    header = packet.header
    assert (header.kind, header.session_id, header.channel_id) == (
        PacketKind.DATA,
        SESSION,
        CHANNEL,
    )
    assert (header.first_seq, header.msg_count, header.send_time_ns) == (5, 1, SEND_TIME)
    assert (header.version, header.header_len, header.next_seq) == (1, 40, 6)


def test_heartbeat_and_end_of_session_bytes() -> None:
    encoder = PacketEncoder(SESSION, CHANNEL)
    heartbeat = encoder.heartbeat(bytearray(64), 6, SEND_TIME)
    end = encoder.end_of_session(bytearray(64), 6, SEND_TIME)
    assert heartbeat.hex() == header_hex("02", "0600000000000000", "0000")
    assert end.hex() == header_hex("03", "0600000000000000", "0000")


def test_documented_sizes() -> None:
    assert HEADER_SIZE == 40
    assert layout.MSG_HEADER_SIZE == 4
    assert layout.TRADE_SIZE == 50
    assert layout.BOOK_DELTA_SIZE == 51
    assert layout.BOOK_LEVELS_SIZE == 35
    assert layout.LEVEL_SIZE == 16
    assert layout.INSTRUMENT_DEFINITION_SIZE == 44
    assert layout.STATUS_SIZE == 24
    assert book_levels_size(2, 1) == 83


def test_smallest_packet_size_holds_every_fixed_message_and_some_levels() -> None:
    largest_fixed = max(
        layout.TRADE_SIZE,
        layout.BOOK_DELTA_SIZE,
        layout.INSTRUMENT_DEFINITION_SIZE,
        layout.STATUS_SIZE,
    )
    assert HEADER_SIZE + largest_fixed <= MIN_PACKET_SIZE
    assert layout.max_levels_per_message(MIN_PACKET_SIZE) >= 10
    assert layout.max_levels_per_message(1400) == 82
