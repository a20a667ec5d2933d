"""Decoded values: the packet header, the five message types, whole packets and rejections.

These are what the decoder returns and what ``PacketEncoder.add`` accepts. Prices and
quantities are raw fixed-point integers (see ``feeder.wire.fixed``); timestamps are ns since
the Unix epoch, 0 when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from feeder.wire.layout import (
    BookAction,
    DeltaFlags,
    LevelsFlags,
    PacketKind,
    Side,
    TradeFlags,
)


class PacketHeader(NamedTuple):
    """The fields a receiver needs for sequence tracking, from the cheap header-only decode."""

    kind: PacketKind
    session_id: int
    channel_id: int
    first_seq: int
    msg_count: int
    send_time_ns: int
    version: int
    header_len: int

    @property
    def next_seq(self) -> int:
        """Sequence number the channel's next message will carry."""
        return self.first_seq + self.msg_count


class Level(NamedTuple):
    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class Trade:
    instrument_id: int
    side: Side  # aggressor side
    flags: int  # TradeFlags bits; unknown bits are kept
    price: int
    qty: int
    trade_id: int  # 0 when the exchange's id is not numeric
    exchange_ts_ns: int
    receive_ts_ns: int  # local time the exchange frame was read

    @property
    def last_in_event(self) -> bool:
        return bool(self.flags & TradeFlags.LAST_IN_EVENT)


@dataclass(frozen=True, slots=True)
class BookDelta:
    instrument_id: int
    side: Side  # BUY = bid, SELL = ask; UNKNOWN only with CLEAR (both sides)
    action: BookAction
    flags: int  # DeltaFlags bits; unknown bits are kept
    price: int
    qty: int  # the level's new total quantity (0 for DELETE and CLEAR)
    exchange_seq: int
    exchange_ts_ns: int
    receive_ts_ns: int

    @property
    def last_in_event(self) -> bool:
        return bool(self.flags & DeltaFlags.LAST_IN_EVENT)

    @property
    def snapshot(self) -> bool:
        return bool(self.flags & DeltaFlags.SNAPSHOT)


@dataclass(frozen=True, slots=True)
class BookLevels:
    instrument_id: int
    flags: int  # LevelsFlags bits; unknown bits are kept
    exchange_seq: int
    exchange_ts_ns: int
    receive_ts_ns: int
    bids: tuple[Level, ...]  # best (highest) first
    asks: tuple[Level, ...]  # best (lowest) first

    @property
    def top_of_book(self) -> bool:
        return bool(self.flags & LevelsFlags.TOP_OF_BOOK)

    @property
    def first_chunk(self) -> bool:
        return bool(self.flags & LevelsFlags.FIRST_CHUNK)

    @property
    def last_chunk(self) -> bool:
        return bool(self.flags & LevelsFlags.LAST_CHUNK)


@dataclass(frozen=True, slots=True)
class InstrumentDefinition:
    instrument_id: int
    exchange_id: int  # an Exchange value when known; unknown codes are passed through
    price_exponent: int  # price = integer * 10**-price_exponent
    qty_exponent: int
    symbol: str


@dataclass(frozen=True, slots=True)
class Status:
    instrument_id: int  # 0 = the whole exchange
    exchange_id: int  # an Exchange value when known; unknown codes are passed through
    status: int  # a StatusCode value when known; unknown codes are passed through
    detail: int
    ts_ns: int  # local time the condition was detected


Message = Trade | BookDelta | BookLevels | InstrumentDefinition | Status


@dataclass(frozen=True, slots=True)
class Packet:
    """A fully decoded packet. ``skipped`` counts messages with unknown template ids."""

    header: PacketHeader
    messages: tuple[Message, ...]
    skipped: int


class RejectCode(StrEnum):
    """Why a packet was rejected; a short stable string suitable as a counter label.

    Listed in the order the decoder checks them (the order of the table in the document).
    """

    TOO_SHORT = "too_short"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    BAD_HEADER_LEN = "bad_header_len"
    BAD_KIND = "bad_kind"
    BAD_COUNT = "bad_count"
    TRAILING_BYTES = "trailing_bytes"
    BAD_SEQUENCE = "bad_sequence"
    TRUNCATED_MESSAGE = "truncated_message"
    SHORT_MESSAGE = "short_message"
    BAD_SIDE = "bad_side"
    BAD_ACTION = "bad_action"
    BAD_LEVELS = "bad_levels"
    BAD_SYMBOL = "bad_symbol"
    BAD_EXPONENT = "bad_exponent"
    BAD_STATUS = "bad_status"


@dataclass(frozen=True, slots=True)
class Reject:
    """A malformed packet: nothing in it should be used."""

    code: RejectCode
    detail: str
