"""The feeder's binary wire format (version 1): encoder, validating decoder, buffer ring.

See docs/wire-format.md for the byte layout. Typical use::

    ring = PacketRing(slots=32)
    enc = PacketEncoder(session_id=time.time_ns(), channel_id=1)
    enc.begin(ring.acquire(), first_seq=1)
    enc.add_trade(7, Side.BUY, 0, price, qty, trade_id, exchange_ts_ns, receive_ts_ns)
    packet = enc.finish(send_time_ns=time.time_ns())   # memoryview of exactly the packet

    header = decode_header(packet)    # PacketHeader, or Reject(code, detail)
    full = decode_packet(packet)      # Packet(header, messages, skipped), or Reject
"""

from feeder.wire.decoder import decode_header, decode_packet
from feeder.wire.encoder import (
    EncoderStateError,
    MessageTooLarge,
    PacketEncoder,
    PacketFull,
    encoded_size,
)
from feeder.wire.fixed import DEFAULT_EXPONENT, from_fixed, to_fixed
from feeder.wire.layout import (
    ASK,
    BID,
    BOOK_DELTA_SIZE,
    BOOK_LEVELS_SIZE,
    DEFAULT_MAX_PACKET_SIZE,
    HEADER_SIZE,
    INSTRUMENT_DEFINITION_SIZE,
    LEVEL_SIZE,
    MAGIC,
    MAX_LEVELS_PER_SIDE,
    MAX_UDP_PAYLOAD,
    MIN_PACKET_SIZE,
    STATUS_SIZE,
    SYMBOL_SIZE,
    TRADE_SIZE,
    VERSION,
    BookAction,
    DeltaFlags,
    Exchange,
    LevelsFlags,
    PacketKind,
    Side,
    StatusCode,
    Template,
    TradeFlags,
    book_levels_size,
    max_levels_per_message,
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
from feeder.wire.ring import PacketRing, RingFull

__all__ = [
    "ASK",
    "BID",
    "BOOK_DELTA_SIZE",
    "BOOK_LEVELS_SIZE",
    "DEFAULT_EXPONENT",
    "DEFAULT_MAX_PACKET_SIZE",
    "HEADER_SIZE",
    "INSTRUMENT_DEFINITION_SIZE",
    "LEVEL_SIZE",
    "MAGIC",
    "MAX_LEVELS_PER_SIDE",
    "MAX_UDP_PAYLOAD",
    "MIN_PACKET_SIZE",
    "STATUS_SIZE",
    "SYMBOL_SIZE",
    "TRADE_SIZE",
    "VERSION",
    "BookAction",
    "BookDelta",
    "BookLevels",
    "DeltaFlags",
    "EncoderStateError",
    "Exchange",
    "InstrumentDefinition",
    "Level",
    "LevelsFlags",
    "Message",
    "MessageTooLarge",
    "Packet",
    "PacketEncoder",
    "PacketFull",
    "PacketHeader",
    "PacketKind",
    "PacketRing",
    "Reject",
    "RejectCode",
    "RingFull",
    "Side",
    "Status",
    "StatusCode",
    "Template",
    "Trade",
    "TradeFlags",
    "book_levels_size",
    "decode_header",
    "decode_packet",
    "encoded_size",
    "from_fixed",
    "max_levels_per_message",
    "to_fixed",
]
