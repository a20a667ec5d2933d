"""Every malformed-packet rule gives its own reject code; newer-format packets still decode."""

from __future__ import annotations

import pytest

from feeder.wire import (
    HEADER_SIZE,
    BookLevels,
    Exchange,
    InstrumentDefinition,
    Level,
    Packet,
    PacketHeader,
    Reject,
    RejectCode,
    Side,
    Status,
    StatusCode,
    Trade,
    decode_header,
    decode_packet,
    layout,
)
from tests.wire import rawpackets as raw

HEARTBEAT = raw.header(count=0, kind=2)
GOOD = raw.packet(raw.trade(), raw.status())

HEADER_CASES = [
    ("empty", b"", RejectCode.TOO_SHORT),
    ("39 bytes", GOOD[:39], RejectCode.TOO_SHORT),
    ("magic", raw.patch(GOOD, 0, "B", 0x6D), RejectCode.BAD_MAGIC),
    ("magic reversed", b"WFDM" + GOOD[4:], RejectCode.BAD_MAGIC),
    ("version 0", raw.patch(GOOD, 4, "B", 0), RejectCode.BAD_VERSION),
    ("version 2", raw.patch(GOOD, 4, "B", 2), RejectCode.BAD_VERSION),
    ("kind 0", raw.patch(GOOD, 5, "B", 0), RejectCode.BAD_KIND),
    ("kind 4", raw.patch(GOOD, 5, "B", 4), RejectCode.BAD_KIND),
    ("kind 255", raw.patch(GOOD, 5, "B", 255), RejectCode.BAD_KIND),
    ("header_len 39", raw.patch(GOOD, 6, "H", 39), RejectCode.BAD_HEADER_LEN),
    ("header_len 0", raw.patch(GOOD, 6, "H", 0), RejectCode.BAD_HEADER_LEN),
    ("header_len past end", raw.patch(GOOD, 6, "H", len(GOOD) + 1), RejectCode.BAD_HEADER_LEN),
    ("data count 0", raw.patch(GOOD, 34, "H", 0), RejectCode.BAD_COUNT),
    ("count beyond payload", raw.patch(GOOD, 34, "H", 19), RejectCode.BAD_COUNT),
    ("count 65535", raw.patch(GOOD, 34, "H", 0xFFFF), RejectCode.BAD_COUNT),
    ("heartbeat count 1", raw.patch(HEARTBEAT, 34, "H", 1), RejectCode.BAD_COUNT),
    ("heartbeat payload", HEARTBEAT + b"\x00", RejectCode.TRAILING_BYTES),
    (
        "end of session payload",
        raw.packet(raw.status(), kind=3, count=0),
        RejectCode.TRAILING_BYTES,
    ),
    ("data first_seq 0", raw.patch(GOOD, 16, "Q", 0), RejectCode.BAD_SEQUENCE),
    ("heartbeat first_seq 0", raw.patch(HEARTBEAT, 16, "Q", 0), RejectCode.BAD_SEQUENCE),
    ("sequence overflow", raw.patch(GOOD, 16, "Q", 2**64 - 1), RejectCode.BAD_SEQUENCE),
]

MESSAGE_CASES = [
    (
        "length past end",
        raw.patch(GOOD, HEADER_SIZE, "H", 50 + 24 + 1),
        RejectCode.TRUNCATED_MESSAGE,
    ),
    ("length 65535", raw.patch(GOOD, HEADER_SIZE, "H", 0xFFFF), RejectCode.TRUNCATED_MESSAGE),
    ("second message missing", raw.packet(raw.status(), count=2), RejectCode.TRUNCATED_MESSAGE),
    (
        "second header cut",
        raw.packet(raw.status(), b"\x18\x00", count=2),
        RejectCode.TRUNCATED_MESSAGE,
    ),
    ("length 0", raw.packet(b"\x00\x00\x05\x00" + bytes(20)), RejectCode.SHORT_MESSAGE),
    ("length 3", raw.packet(b"\x03\x00\x63\x00"), RejectCode.SHORT_MESSAGE),
    ("trade shorter than v1", raw.packet(raw.trade(length=49)), RejectCode.SHORT_MESSAGE),
    ("delta shorter than v1", raw.packet(raw.delta(length=50)), RejectCode.SHORT_MESSAGE),
    (
        "levels shorter than root",
        raw.packet(raw.patch(raw.levels(0, 0, 0), 0, "H", 34)[:34]),
        RejectCode.SHORT_MESSAGE,
    ),
    (
        "definition shorter than v1",
        raw.packet(raw.patch(raw.definition(), 0, "H", 43)[:43]),
        RejectCode.SHORT_MESSAGE,
    ),
    (
        "status shorter than v1",
        raw.packet(raw.patch(raw.status(), 0, "H", 23)[:23]),
        RejectCode.SHORT_MESSAGE,
    ),
    ("trade side 3", raw.packet(raw.trade(side=3)), RejectCode.BAD_SIDE),
    ("delta side 3", raw.packet(raw.delta(side=3)), RejectCode.BAD_SIDE),
    ("delta side 0 on ADD", raw.packet(raw.delta(side=0, action=1)), RejectCode.BAD_SIDE),
    ("delta side 0 on DELETE", raw.packet(raw.delta(side=0, action=3)), RejectCode.BAD_SIDE),
    ("delta action 0", raw.packet(raw.delta(action=0)), RejectCode.BAD_ACTION),
    ("delta action 5", raw.packet(raw.delta(action=5)), RejectCode.BAD_ACTION),
    ("levels claim more than present", raw.packet(raw.levels(2, 1, 2)), RejectCode.BAD_LEVELS),
    ("levels 255 + 255", raw.packet(raw.levels(255, 255, 0)), RejectCode.BAD_LEVELS),
    ("empty symbol", raw.packet(raw.definition(symbol=b"")), RejectCode.BAD_SYMBOL),
    ("NUL inside symbol", raw.packet(raw.definition(symbol=b"BTC\x00USDT")), RejectCode.BAD_SYMBOL),
    ("symbol not UTF-8", raw.packet(raw.definition(symbol=b"BTC\xff")), RejectCode.BAD_SYMBOL),
    ("price exponent 19", raw.packet(raw.definition(price_exponent=19)), RejectCode.BAD_EXPONENT),
    ("qty exponent 255", raw.packet(raw.definition(qty_exponent=255)), RejectCode.BAD_EXPONENT),
    ("status 0", raw.packet(raw.status(code=0)), RejectCode.BAD_STATUS),
    ("byte after last message", GOOD + b"\x00", RejectCode.TRAILING_BYTES),
    ("count one short", raw.patch(GOOD, 34, "H", 1), RejectCode.TRAILING_BYTES),
]


def _ids(cases: list[tuple[str, bytes, RejectCode]]) -> list[str]:
    return [name for name, _, _ in cases]


def test_every_reject_code_has_a_case() -> None:
    covered = {code for _, _, code in HEADER_CASES + MESSAGE_CASES}
    assert covered == set(RejectCode)


def test_the_base_packets_are_valid() -> None:
    assert isinstance(decode_packet(GOOD), Packet)
    assert isinstance(decode_packet(HEARTBEAT), Packet)


@pytest.mark.parametrize(("name", "data", "code"), HEADER_CASES, ids=_ids(HEADER_CASES))
def test_header_rejects(name: str, data: bytes, code: RejectCode) -> None:
    for result in (decode_header(data), decode_packet(data)):
        assert isinstance(result, Reject), (name, result)
        assert result.code == code, result
        assert result.code == code.value  # a plain string, usable as a counter label
        assert result.detail


@pytest.mark.parametrize(("name", "data", "code"), MESSAGE_CASES, ids=_ids(MESSAGE_CASES))
def test_message_rejects(name: str, data: bytes, code: RejectCode) -> None:
    # The header alone is fine: the problem is only visible when walking the messages.
    assert isinstance(decode_header(data), PacketHeader)
    result = decode_packet(data)
    assert isinstance(result, Reject), (name, result)
    assert result.code == code, result
    assert result.detail


def test_reject_detail_says_which_message() -> None:
    result = decode_packet(raw.packet(raw.status(), raw.trade(side=9)))
    assert result == Reject(
        RejectCode.BAD_SIDE, "message 1 at offset 64: Trade side 9 is not 0, 1 or 2"
    )


# --- forward compatibility ---------------------------------------------------------------------


def test_old_decoder_reads_known_fields_of_a_longer_message_and_skips_the_rest() -> None:
    # A newer publisher appended 8 bytes of fields to Trade and 16 to BookLevels.
    longer_trade = raw.trade(side=2, length=layout.TRADE_SIZE + 8)
    longer_trade = longer_trade[: layout.TRADE_SIZE] + b"\xee" * 8
    newer_levels = raw.levels(1, 1, 2, extension=b"\xdd" * 16)
    packet = decode_packet(raw.packet(longer_trade, newer_levels, raw.status()))
    assert isinstance(packet, Packet), packet
    assert packet.skipped == 0
    assert packet.messages == (
        Trade(7, Side.SELL, 0, 100, 2, 3, 4, 5),
        BookLevels(7, 0, 1, 2, 3, (Level(100, 1),), (Level(99, 2),)),
        Status(0, Exchange.BINANCE, StatusCode.CONNECTED, 9, 10),
    )


@pytest.mark.parametrize("template", [0, 6, 99, 0xFFFF])
def test_unknown_template_is_skipped_and_counted(template: int) -> None:
    data = raw.packet(
        raw.status(), raw.unknown(template), raw.unknown(template, b""), raw.status(code=2)
    )
    packet = decode_packet(data)
    assert isinstance(packet, Packet), packet
    assert packet.skipped == 2
    assert packet.header.msg_count == 4  # skipped messages still use sequence numbers
    assert packet.messages == (Status(0, 1, 1, 9, 10), Status(0, 1, 2, 9, 10))


def test_longer_header_is_skipped() -> None:
    data = raw.packet(raw.status(), header_len=48)
    packet = decode_packet(data)
    assert isinstance(packet, Packet), packet
    assert packet.header.header_len == 48
    assert packet.messages == (Status(0, 1, 1, 9, 10),)


def test_unknown_flag_bits_reserved_field_and_open_codes_pass_through() -> None:
    data = raw.packet(
        raw.trade(flags=0xFF),
        raw.status(code=0x1234, exchange=999),
        raw.definition(exchange=4242),
        reserved=0xFFFFFFFF,
    )
    packet = decode_packet(data)
    assert isinstance(packet, Packet), packet
    trade, status, definition = packet.messages
    assert isinstance(trade, Trade) and trade.flags == 0xFF and trade.last_in_event
    assert status == Status(0, 999, 0x1234, 9, 10)
    assert definition == InstrumentDefinition(7, 4242, 8, 8, "BTCUSDT")


def test_a_32_byte_symbol_has_no_padding() -> None:
    symbol = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-12345"
    packet = decode_packet(raw.packet(raw.definition(symbol=symbol.encode())))
    assert isinstance(packet, Packet), packet
    assert packet.messages[0] == InstrumentDefinition(7, 1, 8, 8, symbol)
