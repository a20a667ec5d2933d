"""Hand-built packets for decoder tests: raw bytes a (possibly broken or newer) publisher sends."""

from __future__ import annotations

import struct

from feeder.wire import layout


def header(
    *,
    count: int,
    kind: int = 1,
    first_seq: int = 1,
    header_len: int = 40,
    magic: int = layout.MAGIC_U32,
    version: int = 1,
    reserved: int = 0,
) -> bytes:
    fixed = layout.HEADER.pack(
        magic, version, kind, header_len, 77, first_seq, 1000, 5, count, reserved
    )
    return fixed + bytes(max(0, header_len - len(fixed)))


def packet(*messages: bytes, kind: int = 1, count: int | None = None, **fields: int) -> bytes:
    """A header followed by ``messages``; ``count`` defaults to the number of messages."""
    body = b"".join(messages)
    n = len(messages) if count is None else count
    return header(count=n, kind=kind, **fields) + body


def trade(side: int = 1, flags: int = 0, length: int = layout.TRADE_SIZE) -> bytes:
    fixed = layout.TRADE.pack(length, 1, 7, side, flags, 100, 2, 3, 4, 5)
    return (fixed + bytes(max(0, length - len(fixed))))[:length]


def delta(side: int = 1, action: int = 1, length: int = layout.BOOK_DELTA_SIZE) -> bytes:
    fixed = layout.BOOK_DELTA.pack(length, 2, 7, side, action, 0, 100, 2, 3, 4, 5)
    return (fixed + bytes(max(0, length - len(fixed))))[:length]


def levels(n_bids: int, n_asks: int, present: int, extension: bytes = b"") -> bytes:
    """BookLevels claiming ``n_bids``/``n_asks`` levels but carrying ``present`` of them."""
    body = b"".join(layout.LEVEL.pack(100 - i, i + 1) for i in range(present)) + extension
    length = layout.BOOK_LEVELS_SIZE + len(body)
    return layout.BOOK_LEVELS.pack(length, 3, 7, 0, n_bids, n_asks, 1, 2, 3) + body


def definition(
    symbol: bytes = b"BTCUSDT", price_exponent: int = 8, qty_exponent: int = 8, exchange: int = 1
) -> bytes:
    return layout.INSTRUMENT_DEFINITION.pack(
        44, 4, 7, exchange, price_exponent, qty_exponent, symbol
    )


def status(code: int = 1, exchange: int = 1) -> bytes:
    return layout.STATUS.pack(24, 5, 0, exchange, code, 9, 10)


def unknown(template: int, body: bytes = b"\xab" * 12) -> bytes:
    return struct.pack("<HH", 4 + len(body), template) + body


def patch(raw: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``raw`` with one little-endian field overwritten."""
    out = bytearray(raw)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)
