"""Section 13 of docs/wire-format.md is what the code does: tables, codes and the example."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from feeder.recovery.protocol import (
    REPLY_FIELDS,
    REPLY_SIZE,
    REQUEST_FIELDS,
    REQUEST_SIZE,
    Fields,
    ReplyStatus,
    encode_request,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "wire-format.md"
TYPES = {"4s": "u32", "B": "u8", "H": "u16", "I": "u32", "Q": "u64"}
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\w+)\s*\|\s*`(\w+)`")
DUMP = re.compile(r"^([0-9a-f]{4})  ((?:[0-9a-f]{2} )*[0-9a-f]{2})(?:\s{2,}\S.*)?$")


def section(heading: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    lines = text[text.index(heading) :].splitlines()[1:]
    return lines[: next(i for i, line in enumerate(lines) if line.startswith("##"))]


def table(heading: str, index: int = 0) -> list[list[str]]:
    """Rows (cells) of the index-th table under ``heading``, header and separator dropped."""
    tables: list[list[list[str]]] = [[]]
    for line in section(heading):
        if line.startswith("|"):
            tables[-1].append([c.strip() for c in line.split("|")[1:-1]])
        elif tables[-1]:
            tables.append([])
    return tables[index][2:]


@pytest.mark.parametrize(
    ("heading", "fields", "size"),
    [
        ("### 13.2 Request (32 bytes)", REQUEST_FIELDS, REQUEST_SIZE),
        ("### 13.3 Reply (64 bytes)", REPLY_FIELDS, REPLY_SIZE),
    ],
)
def test_layout_tables_match_the_code(heading: str, fields: Fields, size: int) -> None:
    want, offset = [], 0
    for name, fmt in fields:
        want.append([str(offset), str(struct.calcsize("<" + fmt)), TYPES[fmt], f"`{name}`"])
        offset += struct.calcsize("<" + fmt)
    assert offset == size
    assert [row[:4] for row in table(heading)] == want


def test_status_table_matches_the_enum() -> None:
    rows = table("### 13.3 Reply (64 bytes)", 1)
    assert {int(r[0]): r[1] for r in rows} == {int(s): s.name for s in ReplyStatus}


def test_request_example_is_what_the_encoder_writes() -> None:
    lines = section("### 13.2 Request (32 bytes)")
    start = lines.index("<!-- recovery-example: request -->") + 2
    data = bytearray()
    for line in lines[start:]:
        if line.startswith("```"):
            break
        m = DUMP.match(line)
        assert m, line
        assert int(m.group(1), 16) == len(data)
        data += bytes.fromhex(m.group(2))
    assert bytes(data) == encode_request(3, 1_732_000_000_000_000_000, 1001, 5, 42)
