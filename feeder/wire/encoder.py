"""Packet encoder: writes messages and the packet header into caller-supplied buffers.

The caller (the publisher) owns sequence numbers and flush timing::

    enc = PacketEncoder(session_id=start_ns, channel_id=3)
    enc.begin(ring.acquire(), first_seq=next_seq)
    if not enc.fits(TRADE_SIZE):
        send(enc.finish(now_ns)); next_seq += ...; enc.begin(ring.acquire(), next_seq)
    enc.add_trade(...)

Each ``add_*`` is one bounds check, a few range checks on closed enums and one
``Struct.pack_into`` at the write offset; nothing is allocated per message. Values a field
cannot hold raise ``ValueError`` naming the field, and leave the packet as it was.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from feeder.wire.layout import (
    BOOK_DELTA,
    BOOK_DELTA_FIELDS,
    BOOK_DELTA_SIZE,
    BOOK_LEVELS,
    BOOK_LEVELS_FIELDS,
    BOOK_LEVELS_SIZE,
    DEFAULT_MAX_PACKET_SIZE,
    DELTA_FLAGS_MASK,
    HEADER,
    HEADER_FIELDS,
    HEADER_SIZE,
    INSTRUMENT_DEFINITION,
    INSTRUMENT_DEFINITION_FIELDS,
    INSTRUMENT_DEFINITION_SIZE,
    LEVEL,
    LEVEL_FIELDS,
    LEVEL_SIZE,
    LEVELS_FLAGS_MASK,
    MAGIC_U32,
    MAX_EXPONENT,
    MAX_LEVELS_PER_SIDE,
    MAX_UDP_PAYLOAD,
    MIN_PACKET_SIZE,
    STATUS,
    STATUS_FIELDS,
    STATUS_SIZE,
    SYMBOL_SIZE,
    TRADE,
    TRADE_FIELDS,
    TRADE_FLAGS_MASK,
    TRADE_SIZE,
    U16_MAX,
    U64_MAX,
    VERSION,
    BookAction,
    Fields,
    PacketKind,
    Template,
    book_levels_size,
    max_levels_per_message,
)
from feeder.wire.messages import (
    BookDelta,
    BookLevels,
    InstrumentDefinition,
    Message,
    Status,
    Trade,
)

Buffer = bytearray | memoryview


class PacketFull(Exception):
    """The message does not fit in the open packet: ``finish()`` it and ``begin()`` another."""


class MessageTooLarge(ValueError):
    """The message cannot fit in any packet of the configured size."""


class EncoderStateError(RuntimeError):
    """A call out of order: adding without ``begin()``, finishing an empty packet, ..."""


_pack_header = HEADER.pack_into
_pack_trade = TRADE.pack_into
_pack_delta = BOOK_DELTA.pack_into
_pack_levels = BOOK_LEVELS.pack_into
_pack_level = LEVEL.pack_into
_pack_definition = INSTRUMENT_DEFINITION.pack_into
_pack_status = STATUS.pack_into

_T_TRADE: Final = int(Template.TRADE)
_T_DELTA: Final = int(Template.BOOK_DELTA)
_T_LEVELS: Final = int(Template.BOOK_LEVELS)
_T_DEFINITION: Final = int(Template.INSTRUMENT_DEFINITION)
_T_STATUS: Final = int(Template.STATUS)
_DATA: Final = int(PacketKind.DATA)
_CLEAR: Final = int(BookAction.CLEAR)
_CLOSED: Final = memoryview(bytearray())

_TYPE_NAMES: Final = {
    "B": "u8 (0..255)",
    "H": "u16 (0..65535)",
    "I": "u32 (0..2**32-1)",
    "Q": "u64 (0..2**64-1)",
    "q": "i64 (-2**63..2**63-1)",
}


def _bad_delta(side: int, action: int) -> ValueError:
    """Why a BookDelta's side/action pair is refused (cold path, after the check failed)."""
    if not 1 <= action <= 4:
        return ValueError(f"BookDelta.action={action!r} is not a BookAction (1..4)")
    return ValueError(f"BookDelta.side={side!r}: must be 1 (bid) or 2 (ask); 0 only with CLEAR")


def _bad_delta_flags(flags: int) -> ValueError:
    return ValueError(f"BookDelta.flags={flags:#x} sets bits outside {DELTA_FLAGS_MASK:#x}")


def _range_error(message: str, fields: Fields, values: Sequence[object]) -> ValueError:
    """Name the first field whose value the wire type cannot hold (cold path, after a failure)."""
    for (name, fmt), value in zip(fields, values, strict=True):
        try:
            struct.pack("<" + fmt, value)
        except struct.error:
            wanted = _TYPE_NAMES.get(fmt, fmt)
            return ValueError(f"{message}.{name}={value!r} is not an integer that fits {wanted}")
    return ValueError(f"{message}: cannot encode {tuple(values)!r}")


def _writable_view(buffer: Buffer, need: int, what: str) -> memoryview:
    view = memoryview(buffer)
    if view.readonly or view.itemsize != 1 or not view.c_contiguous:
        raise ValueError(f"{what}: buffer must be a writable, contiguous byte buffer")
    if view.nbytes < need:
        raise ValueError(f"{what}: buffer holds {view.nbytes} bytes, needs at least {need}")
    return view


def _check_seq(seq: int, what: str) -> None:
    if not 1 <= seq <= U64_MAX:
        raise ValueError(f"{what}={seq!r}: sequence numbers run from 1 to 2**64-1")


def encoded_size(message: Message) -> int:
    """Bytes ``message`` takes in a packet (for ``PacketEncoder.fits``)."""
    if isinstance(message, Trade):
        return TRADE_SIZE
    if isinstance(message, BookDelta):
        return BOOK_DELTA_SIZE
    if isinstance(message, BookLevels):
        return book_levels_size(len(message.bids), len(message.asks))
    if isinstance(message, InstrumentDefinition):
        return INSTRUMENT_DEFINITION_SIZE
    return STATUS_SIZE


class PacketEncoder:
    """Fills one data packet at a time for one (session, channel)."""

    __slots__ = (
        "_channel_id",
        "_count",
        "_first_seq",
        "_limit",
        "_max_packet_size",
        "_pos",
        "_session_id",
        "_view",
    )

    def __init__(
        self, session_id: int, channel_id: int, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    ) -> None:
        if not 0 <= session_id <= U64_MAX:
            raise ValueError(f"session_id={session_id!r} does not fit u64")
        if not 0 <= channel_id <= U16_MAX:
            raise ValueError(f"channel_id={channel_id!r} does not fit u16")
        if not MIN_PACKET_SIZE <= max_packet_size <= MAX_UDP_PAYLOAD:
            raise ValueError(
                f"max_packet_size={max_packet_size!r} must be between {MIN_PACKET_SIZE} and "
                f"{MAX_UDP_PAYLOAD} (the largest IPv4 UDP payload)"
            )
        self._session_id = session_id
        self._channel_id = channel_id
        self._max_packet_size = max_packet_size
        self._close()

    def _close(self) -> None:
        # A closed encoder has no room at all, so the hot-path bounds check also catches
        # "add without begin()" and the slow path tells the two apart.
        self._view = _CLOSED
        self._pos = HEADER_SIZE
        self._limit = 0
        self._count = 0
        self._first_seq = 0

    @property
    def session_id(self) -> int:
        return self._session_id

    @property
    def channel_id(self) -> int:
        return self._channel_id

    @property
    def max_packet_size(self) -> int:
        return self._max_packet_size

    @property
    def is_open(self) -> bool:
        return self._limit != 0

    @property
    def count(self) -> int:
        """Messages in the open packet."""
        return self._count

    @property
    def size(self) -> int:
        """Bytes the open packet would have if finished now (header included)."""
        return self._pos if self.is_open else 0

    @property
    def remaining(self) -> int:
        """Bytes still free in the open packet."""
        return self._limit - self._pos if self.is_open else 0

    def fits(self, size: int) -> bool:
        """Whether a message of ``size`` bytes (e.g. ``TRADE_SIZE``) fits in the open packet."""
        return self._pos + size <= self._limit

    def begin(self, buffer: Buffer, first_seq: int) -> None:
        """Start a data packet in ``buffer`` whose first message has sequence ``first_seq``."""
        if self.is_open:
            raise EncoderStateError(
                f"a packet with {self._count} messages is still open: finish() or discard() it"
            )
        _check_seq(first_seq, "first_seq")
        self._view = _writable_view(buffer, self._max_packet_size, "begin")
        self._first_seq = first_seq
        self._pos = HEADER_SIZE
        self._limit = self._max_packet_size
        self._count = 0

    def discard(self) -> None:
        """Drop the open packet (its messages are not sent and consume no sequence numbers)."""
        self._close()

    def finish(self, send_time_ns: int) -> memoryview:
        """Write the header and return exactly the packet's bytes (a view into the buffer)."""
        count = self._count
        if count == 0:
            if not self.is_open:
                raise EncoderStateError("no open packet: call begin() first")
            raise EncoderStateError("the packet holds no messages: send a heartbeat instead")
        first_seq = self._first_seq
        if first_seq + count - 1 > U64_MAX:
            raise ValueError(f"first_seq={first_seq} + {count} messages passes 2**64-1")
        view = self._view
        try:
            _pack_header(
                view,
                0,
                MAGIC_U32,
                VERSION,
                _DATA,
                HEADER_SIZE,
                self._session_id,
                first_seq,
                send_time_ns,
                self._channel_id,
                count,
                0,
            )
        except struct.error:
            raise _range_error(
                "header",
                HEADER_FIELDS,
                (
                    MAGIC_U32,
                    VERSION,
                    _DATA,
                    HEADER_SIZE,
                    self._session_id,
                    first_seq,
                    send_time_ns,
                    self._channel_id,
                    count,
                    0,
                ),
            ) from None
        packet = view[: self._pos]
        self._close()
        return packet

    def heartbeat(self, buffer: Buffer, next_seq: int, send_time_ns: int) -> memoryview:
        """Write a heartbeat (count 0, first_seq = next sequence to send) into ``buffer``."""
        return self._control(PacketKind.HEARTBEAT, buffer, next_seq, send_time_ns)

    def end_of_session(self, buffer: Buffer, next_seq: int, send_time_ns: int) -> memoryview:
        """Write the end-of-session packet (count 0, first_seq = next sequence) into ``buffer``."""
        return self._control(PacketKind.END_OF_SESSION, buffer, next_seq, send_time_ns)

    def _control(
        self, kind: PacketKind, buffer: Buffer, next_seq: int, send_time_ns: int
    ) -> memoryview:
        _check_seq(next_seq, "next_seq")
        view = _writable_view(buffer, HEADER_SIZE, kind.name.lower())
        values = (
            MAGIC_U32,
            VERSION,
            int(kind),
            HEADER_SIZE,
            self._session_id,
            next_seq,
            send_time_ns,
            self._channel_id,
            0,
            0,
        )
        try:
            _pack_header(view, 0, *values)
        except struct.error:
            raise _range_error("header", HEADER_FIELDS, values) from None
        return view[:HEADER_SIZE]

    def _refuse(self, size: int, message: str) -> None:
        if not self.is_open:
            raise EncoderStateError("no open packet: call begin() first")
        raise PacketFull(
            f"{message} needs {size} bytes but only {self.remaining} are left in the packet: "
            "finish() it and begin() another"
        )

    # --- messages (hot path) ------------------------------------------------------------------

    def add_trade(
        self,
        instrument_id: int,
        side: int,
        flags: int,
        price: int,
        qty: int,
        trade_id: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        pos = self._pos
        if pos + TRADE_SIZE > self._limit:
            self._refuse(TRADE_SIZE, "Trade")
        if not 0 <= side <= 2:
            raise ValueError(f"Trade.side={side!r} is not a Side (0 unknown, 1 buy, 2 sell)")
        if flags & ~TRADE_FLAGS_MASK:
            raise ValueError(f"Trade.flags={flags:#x} sets bits outside {TRADE_FLAGS_MASK:#x}")
        try:
            _pack_trade(
                self._view,
                pos,
                TRADE_SIZE,
                _T_TRADE,
                instrument_id,
                side,
                flags,
                price,
                qty,
                trade_id,
                exchange_ts_ns,
                receive_ts_ns,
            )
        except struct.error:
            raise _range_error(
                "Trade",
                TRADE_FIELDS,
                (instrument_id, side, flags, price, qty, trade_id, exchange_ts_ns, receive_ts_ns),
            ) from None
        self._pos = pos + TRADE_SIZE
        self._count += 1

    def add_book_delta(
        self,
        instrument_id: int,
        side: int,
        action: int,
        flags: int,
        price: int,
        qty: int,
        exchange_seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
    ) -> None:
        pos = self._pos
        if pos + BOOK_DELTA_SIZE > self._limit:
            self._refuse(BOOK_DELTA_SIZE, "BookDelta")
        if not 1 <= action <= 4 or not 0 <= side <= 2 or (side == 0 and action != _CLEAR):
            raise _bad_delta(side, action)
        if flags & ~DELTA_FLAGS_MASK:
            raise _bad_delta_flags(flags)
        try:
            _pack_delta(
                self._view,
                pos,
                BOOK_DELTA_SIZE,
                _T_DELTA,
                instrument_id,
                side,
                action,
                flags,
                price,
                qty,
                exchange_seq,
                exchange_ts_ns,
                receive_ts_ns,
            )
        except struct.error:
            raise _range_error(
                "BookDelta",
                BOOK_DELTA_FIELDS,
                (
                    instrument_id,
                    side,
                    action,
                    flags,
                    price,
                    qty,
                    exchange_seq,
                    exchange_ts_ns,
                    receive_ts_ns,
                ),
            ) from None
        self._pos = pos + BOOK_DELTA_SIZE
        self._count += 1

    def add_book_deltas(
        self,
        instrument_id: int,
        flags: int,
        last_flags: int,
        exchange_seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        deltas: Sequence[tuple[int, int, int, int]],
        start: int = 0,
    ) -> int:
        """``add_book_delta`` for each (side, action, price, qty) of ``deltas[start:]`` that
        fits, ``flags`` on each and ``last_flags`` on the last of ``deltas``; returns the index
        of the first one not added (``len(deltas)`` when all were). ``PacketFull`` when not even
        one fits. One call per book update instead of one per level; the checks are
        ``add_book_delta``'s, and a delta that fails them raises after the ones before it
        were added, as a loop of ``add_book_delta`` would."""
        pos = self._pos
        limit = self._limit
        if pos + BOOK_DELTA_SIZE > limit:
            self._refuse(BOOK_DELTA_SIZE, "BookDelta")
        if (flags | last_flags) & ~DELTA_FLAGS_MASK:
            raise _bad_delta_flags(flags if flags & ~DELTA_FLAGS_MASK else last_flags)
        view = self._view
        last = len(deltas) - 1
        i = start
        try:
            for side, action, price, qty in deltas[start:]:
                if pos + BOOK_DELTA_SIZE > limit:
                    break
                if not 1 <= action <= 4 or not 0 <= side <= 2 or (side == 0 and action != _CLEAR):
                    raise _bad_delta(side, action)
                f = last_flags if i == last else flags
                try:
                    _pack_delta(
                        view,
                        pos,
                        BOOK_DELTA_SIZE,
                        _T_DELTA,
                        instrument_id,
                        side,
                        action,
                        f,
                        price,
                        qty,
                        exchange_seq,
                        exchange_ts_ns,
                        receive_ts_ns,
                    )
                except struct.error:
                    raise _range_error(
                        "BookDelta",
                        BOOK_DELTA_FIELDS,
                        (
                            instrument_id,
                            side,
                            action,
                            f,
                            price,
                            qty,
                            exchange_seq,
                            exchange_ts_ns,
                            receive_ts_ns,
                        ),
                    ) from None
                pos += BOOK_DELTA_SIZE
                i += 1
        finally:  # what was written stays written, even when a later delta is refused
            self._count += i - start
            self._pos = pos
        return i

    def add_book_levels(
        self,
        instrument_id: int,
        flags: int,
        exchange_seq: int,
        exchange_ts_ns: int,
        receive_ts_ns: int,
        bids: Sequence[tuple[int, int]],
        asks: Sequence[tuple[int, int]],
    ) -> None:
        """Bids and asks are (price, qty) pairs, best first."""
        n_bids = len(bids)
        n_asks = len(asks)
        size = BOOK_LEVELS_SIZE + LEVEL_SIZE * (n_bids + n_asks)
        if (
            n_bids > MAX_LEVELS_PER_SIDE
            or n_asks > MAX_LEVELS_PER_SIDE
            or HEADER_SIZE + size > self._max_packet_size
        ):
            raise MessageTooLarge(
                f"BookLevels with {n_bids} bids and {n_asks} asks cannot fit any packet: at most "
                f"{MAX_LEVELS_PER_SIDE} per side and "
                f"{max_levels_per_message(self._max_packet_size)} in total with "
                f"max_packet_size={self._max_packet_size}; split it into snapshot chunks"
            )
        pos = self._pos
        if pos + size > self._limit:
            self._refuse(size, "BookLevels")
        if flags & ~LEVELS_FLAGS_MASK:
            raise ValueError(
                f"BookLevels.flags={flags:#x} sets bits outside {LEVELS_FLAGS_MASK:#x}"
            )
        view = self._view
        try:
            _pack_levels(
                view,
                pos,
                size,
                _T_LEVELS,
                instrument_id,
                flags,
                n_bids,
                n_asks,
                exchange_seq,
                exchange_ts_ns,
                receive_ts_ns,
            )
            at = pos + BOOK_LEVELS_SIZE
            for price, qty in bids:
                _pack_level(view, at, price, qty)
                at += LEVEL_SIZE
            for price, qty in asks:
                _pack_level(view, at, price, qty)
                at += LEVEL_SIZE
        except struct.error:
            raise _levels_error(
                (instrument_id, flags, n_bids, n_asks, exchange_seq, exchange_ts_ns, receive_ts_ns),
                bids,
                asks,
            ) from None
        self._pos = pos + size
        self._count += 1

    def add_instrument_definition(
        self,
        instrument_id: int,
        exchange_id: int,
        price_exponent: int,
        qty_exponent: int,
        symbol: str,
    ) -> None:
        pos = self._pos
        if pos + INSTRUMENT_DEFINITION_SIZE > self._limit:
            self._refuse(INSTRUMENT_DEFINITION_SIZE, "InstrumentDefinition")
        raw = _symbol_bytes(symbol)
        for name, exponent in (("price_exponent", price_exponent), ("qty_exponent", qty_exponent)):
            if not 0 <= exponent <= MAX_EXPONENT:
                raise ValueError(
                    f"InstrumentDefinition.{name}={exponent!r} must be 0..{MAX_EXPONENT}"
                )
        try:
            _pack_definition(
                self._view,
                pos,
                INSTRUMENT_DEFINITION_SIZE,
                _T_DEFINITION,
                instrument_id,
                exchange_id,
                price_exponent,
                qty_exponent,
                raw,
            )
        except struct.error:
            raise _range_error(
                "InstrumentDefinition",
                INSTRUMENT_DEFINITION_FIELDS,
                (instrument_id, exchange_id, price_exponent, qty_exponent, raw),
            ) from None
        self._pos = pos + INSTRUMENT_DEFINITION_SIZE
        self._count += 1

    def add_status(
        self, instrument_id: int, exchange_id: int, status: int, detail: int, ts_ns: int
    ) -> None:
        pos = self._pos
        if pos + STATUS_SIZE > self._limit:
            self._refuse(STATUS_SIZE, "Status")
        if status == 0:
            raise ValueError("Status.status=0 is reserved as invalid; use a StatusCode")
        try:
            _pack_status(
                self._view,
                pos,
                STATUS_SIZE,
                _T_STATUS,
                instrument_id,
                exchange_id,
                status,
                detail,
                ts_ns,
            )
        except struct.error:
            raise _range_error(
                "Status", STATUS_FIELDS, (instrument_id, exchange_id, status, detail, ts_ns)
            ) from None
        self._pos = pos + STATUS_SIZE
        self._count += 1

    def add(self, message: Message) -> None:
        """Add a decoded-message value (convenience; the ``add_*`` methods avoid the object)."""
        if isinstance(message, Trade):
            self.add_trade(
                message.instrument_id,
                message.side,
                message.flags,
                message.price,
                message.qty,
                message.trade_id,
                message.exchange_ts_ns,
                message.receive_ts_ns,
            )
        elif isinstance(message, BookDelta):
            self.add_book_delta(
                message.instrument_id,
                message.side,
                message.action,
                message.flags,
                message.price,
                message.qty,
                message.exchange_seq,
                message.exchange_ts_ns,
                message.receive_ts_ns,
            )
        elif isinstance(message, BookLevels):
            self.add_book_levels(
                message.instrument_id,
                message.flags,
                message.exchange_seq,
                message.exchange_ts_ns,
                message.receive_ts_ns,
                message.bids,
                message.asks,
            )
        elif isinstance(message, InstrumentDefinition):
            self.add_instrument_definition(
                message.instrument_id,
                message.exchange_id,
                message.price_exponent,
                message.qty_exponent,
                message.symbol,
            )
        elif isinstance(message, Status):
            self.add_status(
                message.instrument_id,
                message.exchange_id,
                message.status,
                message.detail,
                message.ts_ns,
            )
        else:
            raise TypeError(f"not a wire message: {type(message).__name__}")


def _symbol_bytes(symbol: str) -> bytes:
    raw = symbol.encode("utf-8")
    if not 1 <= len(raw) <= SYMBOL_SIZE:
        raise ValueError(
            f"InstrumentDefinition.symbol={symbol!r} is {len(raw)} bytes of UTF-8; "
            f"it must be 1..{SYMBOL_SIZE}"
        )
    if b"\x00" in raw:
        raise ValueError(f"InstrumentDefinition.symbol={symbol!r} contains NUL")
    return raw  # struct's "32s" pads with NULs


def _levels_error(
    root: Sequence[object],
    bids: Sequence[tuple[int, int]],
    asks: Sequence[tuple[int, int]],
) -> ValueError:
    for side, levels in (("bids", bids), ("asks", asks)):
        for index, level in enumerate(levels):
            try:
                LEVEL.pack(*level)
            except struct.error:
                return _range_error(f"BookLevels.{side}[{index}]", LEVEL_FIELDS, level)
    return _range_error("BookLevels", BOOK_LEVELS_FIELDS, root)
