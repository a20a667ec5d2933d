"""The worked examples in docs/wire-format.md are what the encoder writes, byte for byte."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from feeder.wire import (
    BID,
    BookAction,
    BookDelta,
    BookLevels,
    DeltaFlags,
    Exchange,
    InstrumentDefinition,
    Level,
    LevelsFlags,
    Packet,
    PacketEncoder,
    PacketKind,
    RejectCode,
    Side,
    Status,
    StatusCode,
    Trade,
    TradeFlags,
    decode_packet,
    layout,
    max_levels_per_message,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"
LINE = re.compile(r"^([0-9a-f]{4})  ((?:[0-9a-f]{2} )*[0-9a-f]{2})(?:\s{2,}\S.*)?$")

# The inputs listed in section 11 of the document.
SESSION = 1_732_000_000_000_000_000
CHANNEL = 3
EXCHANGE_TS = 1_732_000_123_456_000_000
RECEIVE_TS = 1_732_000_123_456_789_012
MESSAGES = (
    Status(0, Exchange.BINANCE, StatusCode.CONNECTED, 0, RECEIVE_TS - 5_000_000),
    InstrumentDefinition(7, Exchange.BINANCE, 2, 8, "BTCUSDT"),
    BookLevels(
        7,
        LevelsFlags.TOP_OF_BOOK,
        88123,
        EXCHANGE_TS,
        RECEIVE_TS,
        (Level(9_712_345, 150_000_000),),
        (Level(9_712_346, 25_000_000),),
    ),
    Trade(
        7,
        Side.SELL,
        TradeFlags.LAST_IN_EVENT,
        9_712_345,
        10_000_000,
        4_123_456_789,
        EXCHANGE_TS + 1_000_000,
        RECEIVE_TS + 1_000_000,
    ),
    BookDelta(
        7,
        BID,
        BookAction.UPDATE,
        DeltaFlags.LAST_IN_EVENT,
        9_712_345,
        140_000_000,
        88124,
        EXCHANGE_TS + 1_000_000,
        RECEIVE_TS + 1_000_010,
    ),
)
SEND_TIME = 1_732_000_123_457_000_000
HEARTBEAT_TIME = 1_732_000_124_457_000_000


def documented_bytes(name: str) -> bytes:
    """The bytes of the dump after ``<!-- wire-example: name -->``, offsets checked."""
    text = DOC.read_text(encoding="utf-8")
    marker = text.index(f"<!-- wire-example: {name} -->")
    block = re.search(r"```text\n(.*?)```", text[marker:], re.DOTALL)
    assert block is not None, f"no code block after the {name} marker"
    data = bytearray()
    for line in block.group(1).splitlines():
        match = LINE.match(line)
        assert match, f"unparseable dump line: {line!r}"
        assert int(match.group(1), 16) == len(data), f"offset of {line!r}"
        data += bytes.fromhex(match.group(2))
    return bytes(data)


def test_data_packet_example() -> None:
    encoder = PacketEncoder(SESSION, CHANNEL)
    encoder.begin(bytearray(1400), first_seq=1001)
    for message in MESSAGES:
        encoder.add(message)
    encoded = bytes(encoder.finish(SEND_TIME))
    documented = documented_bytes("data")
    assert documented == encoded
    assert f"The {len(encoded)} bytes" in DOC.read_text(encoding="utf-8")

    packet = decode_packet(documented)
    assert isinstance(packet, Packet), packet
    assert packet.messages == MESSAGES
    assert (packet.header.first_seq, packet.header.msg_count) == (1001, 5)


def test_heartbeat_example() -> None:
    encoder = PacketEncoder(SESSION, CHANNEL)
    documented = documented_bytes("heartbeat")
    assert documented == bytes(encoder.heartbeat(bytearray(40), 1006, HEARTBEAT_TIME))
    packet = decode_packet(documented)
    assert isinstance(packet, Packet), packet
    assert (packet.header.kind, packet.header.first_seq) == (PacketKind.HEARTBEAT, 1006)


_TYPES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "q": "i64", "32s": "char[32]"}
_MESSAGE_HEADER = (("length", "H"), ("template", "H"))
SECTIONS = {
    "## 2. Packet header": layout.HEADER_FIELDS,
    "### 5.1 Trade": _MESSAGE_HEADER + layout.TRADE_FIELDS,
    "### 5.2 BookDelta": _MESSAGE_HEADER + layout.BOOK_DELTA_FIELDS,
    "### 5.3 BookLevels": _MESSAGE_HEADER + layout.BOOK_LEVELS_FIELDS,
    "### 5.4 InstrumentDefinition": _MESSAGE_HEADER + layout.INSTRUMENT_DEFINITION_FIELDS,
    "### 5.5 Status": _MESSAGE_HEADER + layout.STATUS_FIELDS,
}
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\w\[\]]+)\s*\|\s*`(\w+)`")


def documented_table(heading: str) -> list[tuple[int, int, str, str]]:
    """(offset, size, type, name) rows of the first table under ``heading``."""
    text = DOC.read_text(encoding="utf-8")
    lines = text[text.index(heading + " ") :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        if match:
            offset, size, kind, name = match.groups()
            rows.append((int(offset), int(size), kind, name))
    return rows


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_layout_tables_match_the_code(heading: str) -> None:
    expected, offset = [], 0
    for name, fmt in SECTIONS[heading]:
        size = struct.calcsize("<" + fmt)
        expected.append((offset, size, _TYPES[fmt], name))
        offset += size
    assert documented_table(heading) == expected


def test_doc_states_the_level_capacity_of_a_default_packet() -> None:
    assert f"= **{max_levels_per_message(1400)}** levels" in DOC.read_text(encoding="utf-8")


def _rows(heading: str) -> list[list[str]]:
    """Cells of the first table under ``heading``, without its header and separator rows."""
    text = DOC.read_text(encoding="utf-8")
    lines = text[text.index(heading + "\n") :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.split("|")[1:-1]])
    return rows


def test_reject_code_table_lists_exactly_the_decoder_codes() -> None:
    codes = [row[0].strip("`") for row in _rows("### 8.1 Validation")]
    assert codes == [code.value for code in RejectCode]


def test_code_tables_match_the_enums() -> None:
    exchanges = {int(row[0]): row[1].upper() for row in _rows("### 6.3 Exchange codes (open)")}
    assert exchanges == {int(member): member.name for member in Exchange}
    statuses = {int(row[0]): row[1].strip("`") for row in _rows("### 6.5 Status codes (open)")}
    assert statuses == {int(member): member.name for member in StatusCode}
    actions = {int(row[0]): row[1] for row in _rows("### 6.2 BookAction (closed)")}
    assert actions == {int(member): member.name for member in BookAction}
