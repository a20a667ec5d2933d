"""Validating decoder: bytes in, a ``PacketHeader``/``Packet`` or a ``Reject`` out.

Nothing in here raises on bad input: every offset is bounds-checked before it is read and
every rule of docs/wire-format.md that a packet can break maps to a ``RejectCode``. A rejected
packet is rejected whole, because a receiver cannot trust any part of a corrupt datagram.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from feeder.wire.layout import (
    BOOK_DELTA,
    BOOK_DELTA_SIZE,
    BOOK_LEVELS,
    BOOK_LEVELS_SIZE,
    HEADER,
    HEADER_SIZE,
    INSTRUMENT_DEFINITION,
    INSTRUMENT_DEFINITION_SIZE,
    LEVEL,
    LEVEL_SIZE,
    MAGIC_U32,
    MAX_EXPONENT,
    MSG_HEADER,
    MSG_HEADER_SIZE,
    STATUS,
    STATUS_SIZE,
    TRADE,
    TRADE_SIZE,
    U64_MAX,
    VERSION,
    BookAction,
    Exchange,
    PacketKind,
    Side,
    StatusCode,
)
from feeder.wire.messages import (
    BookDelta,
    BookLevels,
    InstrumentDefinition,
    Level,
    Message,
    Packet,
    PacketHeader,
    Reject,
    RejectCode,
    Status,
    Trade,
)

ReadableBuffer = bytes | bytearray | memoryview

_unpack_header = HEADER.unpack_from
_unpack_msg_header = MSG_HEADER.unpack_from

# Closed enums, indexed by wire value (None = invalid), so decoding is a bounds check + index.
_KINDS: Final = (None, PacketKind.DATA, PacketKind.HEARTBEAT, PacketKind.END_OF_SESSION)
_SIDES: Final = (Side.UNKNOWN, Side.BUY, Side.SELL)
_ACTIONS: Final = (None, BookAction.ADD, BookAction.UPDATE, BookAction.DELETE, BookAction.CLEAR)
# Open tables: known values become enum members (readable reprs), unknown ones stay ints.
_EXCHANGES: Final[dict[int, int]] = {int(e): e for e in Exchange}
_STATUSES: Final[dict[int, int]] = {int(s): s for s in StatusCode}


def decode_header(data: ReadableBuffer) -> PacketHeader | Reject:
    """Validate and return the packet header without walking the messages.

    Enough for a receiver's sequence tracking: it checks everything the header alone can
    show (magic, version, lengths, kind, count against kind and payload, sequence range).
    """
    size = len(data)
    if size < HEADER_SIZE:
        return Reject(RejectCode.TOO_SHORT, f"{size} bytes, a header needs {HEADER_SIZE}")
    (
        magic,
        version,
        kind_value,
        header_len,
        session_id,
        first_seq,
        send_time_ns,
        channel_id,
        count,
        _reserved,
    ) = _unpack_header(data, 0)
    if magic != MAGIC_U32:
        return Reject(RejectCode.BAD_MAGIC, f"magic {magic:#010x}, expected {MAGIC_U32:#010x}")
    if version != VERSION:
        return Reject(RejectCode.BAD_VERSION, f"version {version}, this decoder reads {VERSION}")
    if header_len < HEADER_SIZE or header_len > size:
        return Reject(
            RejectCode.BAD_HEADER_LEN,
            f"header_len {header_len} outside {HEADER_SIZE}..{size} (packet size)",
        )
    kind = _KINDS[kind_value] if kind_value < len(_KINDS) else None
    if kind is None:
        return Reject(RejectCode.BAD_KIND, f"packet kind {kind_value} is not 1, 2 or 3")
    payload = size - header_len
    if kind is PacketKind.DATA:
        if count == 0:
            return Reject(RejectCode.BAD_COUNT, "data packet with count 0")
        if payload < count * MSG_HEADER_SIZE:
            return Reject(
                RejectCode.BAD_COUNT,
                f"count {count} needs at least {count * MSG_HEADER_SIZE} bytes, "
                f"payload has {payload}",
            )
    else:
        if count != 0:
            return Reject(RejectCode.BAD_COUNT, f"{kind.name} packet with count {count}")
        if payload:
            return Reject(
                RejectCode.TRAILING_BYTES, f"{kind.name} packet with {payload} payload bytes"
            )
    if first_seq == 0 or first_seq + count - 1 > U64_MAX:
        return Reject(
            RejectCode.BAD_SEQUENCE,
            f"first_seq {first_seq} with count {count} is outside 1..2**64-1",
        )
    return PacketHeader(
        kind, session_id, channel_id, first_seq, count, send_time_ns, version, header_len
    )


def decode_packet(data: ReadableBuffer) -> Packet | Reject:
    """Validate the whole packet and decode every message it carries."""
    header = decode_header(data)
    if isinstance(header, Reject):
        return header
    end = len(data)
    pos = header.header_len
    messages: list[Message] = []
    skipped = 0
    for index in range(header.msg_count):
        if pos + MSG_HEADER_SIZE > end:
            return Reject(
                RejectCode.TRUNCATED_MESSAGE,
                f"message {index} header at offset {pos} runs past the packet end ({end})",
            )
        length, template = _unpack_msg_header(data, pos)
        if length < MSG_HEADER_SIZE:
            return Reject(
                RejectCode.SHORT_MESSAGE,
                f"message {index} at offset {pos}: length {length} < {MSG_HEADER_SIZE}",
            )
        if pos + length > end:
            return Reject(
                RejectCode.TRUNCATED_MESSAGE,
                f"message {index} at offset {pos}: length {length} runs past the packet "
                f"end ({end})",
            )
        decode = _DECODERS[template] if template < len(_DECODERS) else None
        if decode is None:
            skipped += 1
        else:
            result = decode(data, pos, length)
            if isinstance(result, Reject):
                return Reject(result.code, f"message {index} at offset {pos}: {result.detail}")
            messages.append(result)
        pos += length
    if pos != end:
        return Reject(
            RejectCode.TRAILING_BYTES,
            f"{end - pos} bytes after the last of {header.msg_count} messages",
        )
    return Packet(header, tuple(messages), skipped)


# --- one decoder per template ----------------------------------------------------------------
# Each gets a message whose length is known to lie inside the packet and returns the message
# or a Reject saying what is wrong with it; decode_packet adds where the message is.

_Decoded = Message | Reject


def _short(name: str, length: int, minimum: int) -> Reject:
    return Reject(RejectCode.SHORT_MESSAGE, f"{name} length {length} < {minimum}")


def _trade(data: ReadableBuffer, pos: int, length: int) -> _Decoded:
    if length < TRADE_SIZE:
        return _short("Trade", length, TRADE_SIZE)
    (_, _, instrument_id, side, flags, price, qty, trade_id, exchange_ts_ns, receive_ts_ns) = (
        TRADE.unpack_from(data, pos)
    )
    if side > 2:
        return Reject(RejectCode.BAD_SIDE, f"Trade side {side} is not 0, 1 or 2")
    return Trade(
        instrument_id, _SIDES[side], flags, price, qty, trade_id, exchange_ts_ns, receive_ts_ns
    )


def _book_delta(data: ReadableBuffer, pos: int, length: int) -> _Decoded:
    if length < BOOK_DELTA_SIZE:
        return _short("BookDelta", length, BOOK_DELTA_SIZE)
    (
        _,
        _,
        instrument_id,
        side,
        action_value,
        flags,
        price,
        qty,
        exchange_seq,
        exchange_ts_ns,
        receive_ts_ns,
    ) = BOOK_DELTA.unpack_from(data, pos)
    action = _ACTIONS[action_value] if action_value < len(_ACTIONS) else None
    if action is None:
        return Reject(RejectCode.BAD_ACTION, f"BookDelta action {action_value} is not 1..4")
    if side > 2 or (side == 0 and action is not BookAction.CLEAR):
        return Reject(RejectCode.BAD_SIDE, f"BookDelta side {side} with action {action.name}")
    return BookDelta(
        instrument_id,
        _SIDES[side],
        action,
        flags,
        price,
        qty,
        exchange_seq,
        exchange_ts_ns,
        receive_ts_ns,
    )


def _book_levels(data: ReadableBuffer, pos: int, length: int) -> _Decoded:
    if length < BOOK_LEVELS_SIZE:
        return _short("BookLevels", length, BOOK_LEVELS_SIZE)
    (_, _, instrument_id, flags, n_bids, n_asks, exchange_seq, exchange_ts_ns, receive_ts_ns) = (
        BOOK_LEVELS.unpack_from(data, pos)
    )
    needed = BOOK_LEVELS_SIZE + LEVEL_SIZE * (n_bids + n_asks)
    if length < needed:
        return Reject(
            RejectCode.BAD_LEVELS,
            f"BookLevels with {n_bids} bids and {n_asks} asks needs {needed} bytes, "
            f"length is {length}",
        )
    at = pos + BOOK_LEVELS_SIZE
    levels = [Level(*LEVEL.unpack_from(data, at + i * LEVEL_SIZE)) for i in range(n_bids + n_asks)]
    return BookLevels(
        instrument_id,
        flags,
        exchange_seq,
        exchange_ts_ns,
        receive_ts_ns,
        tuple(levels[:n_bids]),
        tuple(levels[n_bids:]),
    )


def _instrument_definition(data: ReadableBuffer, pos: int, length: int) -> _Decoded:
    if length < INSTRUMENT_DEFINITION_SIZE:
        return _short("InstrumentDefinition", length, INSTRUMENT_DEFINITION_SIZE)
    (_, _, instrument_id, exchange_id, price_exponent, qty_exponent, raw) = (
        INSTRUMENT_DEFINITION.unpack_from(data, pos)
    )
    if price_exponent > MAX_EXPONENT or qty_exponent > MAX_EXPONENT:
        return Reject(
            RejectCode.BAD_EXPONENT,
            f"price/qty exponents {price_exponent}/{qty_exponent} exceed {MAX_EXPONENT}",
        )
    text = raw.rstrip(b"\x00")
    if not text or b"\x00" in text:
        return Reject(RejectCode.BAD_SYMBOL, f"symbol {raw!r} is empty or has NUL inside")
    try:
        symbol = text.decode("utf-8")
    except UnicodeDecodeError:
        return Reject(RejectCode.BAD_SYMBOL, f"symbol {raw!r} is not UTF-8")
    return InstrumentDefinition(
        instrument_id,
        _EXCHANGES.get(exchange_id, exchange_id),
        price_exponent,
        qty_exponent,
        symbol,
    )


def _status(data: ReadableBuffer, pos: int, length: int) -> _Decoded:
    if length < STATUS_SIZE:
        return _short("Status", length, STATUS_SIZE)
    _, _, instrument_id, exchange_id, status, detail, ts_ns = STATUS.unpack_from(data, pos)
    if status == 0:
        return Reject(RejectCode.BAD_STATUS, "status code 0 is invalid")
    return Status(
        instrument_id,
        _EXCHANGES.get(exchange_id, exchange_id),
        _STATUSES.get(status, status),
        detail,
        ts_ns,
    )


_DECODERS: Final[tuple[Callable[[ReadableBuffer, int, int], _Decoded] | None, ...]] = (
    None,  # template 0 is never assigned; skipped like any unknown id
    _trade,
    _book_delta,
    _book_levels,
    _instrument_definition,
    _status,
)
