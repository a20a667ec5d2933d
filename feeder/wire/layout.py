"""Wire format version 1: byte layouts, template ids, enums and flags.

Everything here is the format itself, as documented in docs/wire-format.md; the encoder and
decoder only ever read these definitions. All integers are little-endian and fields are packed
(no padding, no alignment). Each message ``Struct`` includes the 4-byte message header
(u16 length, u16 template id) so that encoding a message is a single ``pack_into`` call.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag
from typing import Final

# --- packet header ------------------------------------------------------------------------

MAGIC: Final = b"MDFW"
MAGIC_U32: Final = int.from_bytes(MAGIC, "little")
VERSION: Final = 1

Fields = tuple[tuple[str, str], ...]  # (name, struct format code) per field, in wire order

HEADER_FIELDS: Final[Fields] = (
    ("magic", "I"),
    ("version", "B"),
    ("kind", "B"),
    ("header_len", "H"),  # a later minor revision may append header fields and grow this
    ("session_id", "Q"),
    ("first_seq", "Q"),
    ("send_time_ns", "Q"),
    ("channel_id", "H"),
    ("msg_count", "H"),
    ("reserved", "I"),  # written as 0, ignored by decoders
)


def _packed(fields: Fields, prefix: str = "") -> struct.Struct:
    return struct.Struct("<" + prefix + "".join(fmt for _, fmt in fields))


HEADER: Final = _packed(HEADER_FIELDS)
HEADER_SIZE: Final = HEADER.size

# --- message header and bodies --------------------------------------------------------------

MSG_HEADER: Final = struct.Struct("<HH")  # length (whole message, header included), template id
MSG_HEADER_SIZE: Final = MSG_HEADER.size


class Template(IntEnum):
    """Message template ids. Decoders skip (and count) ids they do not know."""

    TRADE = 1
    BOOK_DELTA = 2
    BOOK_LEVELS = 3
    INSTRUMENT_DEFINITION = 4
    STATUS = 5


TRADE_FIELDS: Final[Fields] = (
    ("instrument_id", "I"),
    ("side", "B"),
    ("flags", "B"),
    ("price", "q"),
    ("qty", "q"),
    ("trade_id", "Q"),
    ("exchange_ts_ns", "Q"),
    ("receive_ts_ns", "Q"),
)
BOOK_DELTA_FIELDS: Final[Fields] = (
    ("instrument_id", "I"),
    ("side", "B"),
    ("action", "B"),
    ("flags", "B"),
    ("price", "q"),
    ("qty", "q"),
    ("exchange_seq", "Q"),
    ("exchange_ts_ns", "Q"),
    ("receive_ts_ns", "Q"),
)
# Followed by n_bids + n_asks LEVEL entries. This root block is frozen: extensions to
# BookLevels go after the last level, so old decoders still find the levels at offset 35.
BOOK_LEVELS_FIELDS: Final[Fields] = (
    ("instrument_id", "I"),
    ("flags", "B"),
    ("n_bids", "B"),
    ("n_asks", "B"),
    ("exchange_seq", "Q"),
    ("exchange_ts_ns", "Q"),
    ("receive_ts_ns", "Q"),
)
LEVEL_FIELDS: Final[Fields] = (("price", "q"), ("qty", "q"))
INSTRUMENT_DEFINITION_FIELDS: Final[Fields] = (
    ("instrument_id", "I"),
    ("exchange_id", "H"),
    ("price_exponent", "B"),
    ("qty_exponent", "B"),
    ("symbol", "32s"),
)
STATUS_FIELDS: Final[Fields] = (
    ("instrument_id", "I"),
    ("exchange_id", "H"),
    ("status", "H"),
    ("detail", "I"),
    ("ts_ns", "Q"),
)


# Each message Struct starts with the message header (length, template id).
TRADE: Final = _packed(TRADE_FIELDS, "HH")
BOOK_DELTA: Final = _packed(BOOK_DELTA_FIELDS, "HH")
BOOK_LEVELS: Final = _packed(BOOK_LEVELS_FIELDS, "HH")
LEVEL: Final = _packed(LEVEL_FIELDS)
INSTRUMENT_DEFINITION: Final = _packed(INSTRUMENT_DEFINITION_FIELDS, "HH")
STATUS: Final = _packed(STATUS_FIELDS, "HH")

TRADE_SIZE: Final = TRADE.size
BOOK_DELTA_SIZE: Final = BOOK_DELTA.size
BOOK_LEVELS_SIZE: Final = BOOK_LEVELS.size  # without its levels
LEVEL_SIZE: Final = LEVEL.size
INSTRUMENT_DEFINITION_SIZE: Final = INSTRUMENT_DEFINITION.size
STATUS_SIZE: Final = STATUS.size

SYMBOL_SIZE: Final = 32
MAX_LEVELS_PER_SIDE: Final = 255  # n_bids / n_asks are u8
MAX_EXPONENT: Final = 18  # 10**18 still fits an i64; finer scales make no sense for markets

# --- packet sizing --------------------------------------------------------------------------

DEFAULT_MAX_PACKET_SIZE: Final = 1400  # leaves room for IP/UDP (and tunnel) headers in 1500 MTU
MAX_UDP_PAYLOAD: Final = 65507  # 65535 - 20 (IPv4 header) - 8 (UDP header)
# Smallest configurable packet: big enough for any fixed-size message plus a few book levels.
MIN_PACKET_SIZE: Final = 256

U16_MAX: Final = 0xFFFF
U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF


def book_levels_size(n_bids: int, n_asks: int) -> int:
    """Encoded size in bytes of a BookLevels message with that many levels."""
    return BOOK_LEVELS_SIZE + LEVEL_SIZE * (n_bids + n_asks)


def max_levels_per_message(max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> int:
    """How many levels (bids + asks together) one BookLevels message can carry in a packet."""
    by_size = (max_packet_size - HEADER_SIZE - BOOK_LEVELS_SIZE) // LEVEL_SIZE
    return min(by_size, 2 * MAX_LEVELS_PER_SIDE)


# --- closed enums: a value outside the table makes the packet malformed ----------------------


class PacketKind(IntEnum):
    DATA = 1  # count >= 1 messages, sequence numbers first_seq .. first_seq + count - 1
    HEARTBEAT = 2  # count 0, first_seq = next sequence number the channel will send
    END_OF_SESSION = 3  # count 0, first_seq = next sequence number; nothing follows


class Side(IntEnum):
    """Trade aggressor side, or book side (BUY = bid, SELL = ask)."""

    UNKNOWN = 0
    BUY = 1
    SELL = 2


BID: Final = Side.BUY
ASK: Final = Side.SELL


class BookAction(IntEnum):
    ADD = 1  # new price level; qty is the level's total quantity
    UPDATE = 2  # existing level's total quantity changes to qty
    DELETE = 3  # level removed; qty is 0
    CLEAR = 4  # side (or both sides when side is UNKNOWN) emptied; price and qty are 0


# --- open tables: new values may appear without a version change; pass unknown ones through ---


class Exchange(IntEnum):
    UNKNOWN = 0
    BINANCE = 1
    BYBIT = 2
    COINBASE = 3
    OKX = 4
    KRAKEN = 5
    BITHUMB = 6
    UPBIT = 7
    KUCOIN = 8


class StatusCode(IntEnum):
    """Status message codes (0 is invalid). The detail field's meaning depends on the code."""

    CONNECTED = 1
    DISCONNECTED = 2
    RESYNC_STARTED = 3
    RESYNC_DONE = 4
    STALE = 5
    CROSSED_BOOK = 6
    CHECKSUM_MISMATCH = 7
    GAP = 8


# --- flags: encoders write only defined bits; decoders ignore bits they do not know ---------


class TradeFlags(IntFlag):
    LAST_IN_EVENT = 0x01  # last trade decoded from one exchange event


class DeltaFlags(IntFlag):
    LAST_IN_EVENT = 0x01  # book is consistent after applying this delta
    SNAPSHOT = 0x02  # delta belongs to a snapshot replayed as deltas (after a CLEAR)


class LevelsFlags(IntFlag):
    TOP_OF_BOOK = 0x01  # bounded top-N view; clear = one chunk of a full-depth snapshot
    FIRST_CHUNK = 0x02  # first chunk of a snapshot: consumers reset the book first
    LAST_CHUNK = 0x04  # last chunk of a snapshot: the book is complete


TRADE_FLAGS_MASK: Final = int(TradeFlags.LAST_IN_EVENT)
DELTA_FLAGS_MASK: Final = int(DeltaFlags.LAST_IN_EVENT | DeltaFlags.SNAPSHOT)
LEVELS_FLAGS_MASK: Final = int(
    LevelsFlags.TOP_OF_BOOK | LevelsFlags.FIRST_CHUNK | LevelsFlags.LAST_CHUNK
)
