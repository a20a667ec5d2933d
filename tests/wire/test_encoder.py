"""Encoder behaviour: bounds, refusals with clear errors, and nothing lost on a refusal."""

from __future__ import annotations

import pytest

from feeder.wire import (
    BOOK_DELTA_SIZE,
    HEADER_SIZE,
    MAX_UDP_PAYLOAD,
    MIN_PACKET_SIZE,
    STATUS_SIZE,
    TRADE_SIZE,
    BookAction,
    BookLevels,
    EncoderStateError,
    MessageTooLarge,
    Packet,
    PacketEncoder,
    PacketFull,
    Side,
    Status,
    Trade,
    book_levels_size,
    decode_packet,
    max_levels_per_message,
)

TRADE = Trade(1, Side.BUY, 0, 100, 2, 3, 4, 5)


def open_encoder(max_packet_size: int = 1400, first_seq: int = 1) -> PacketEncoder:
    encoder = PacketEncoder(session_id=9, channel_id=1, max_packet_size=max_packet_size)
    encoder.begin(bytearray(max_packet_size), first_seq)
    return encoder


def decoded(view: memoryview) -> Packet:
    packet = decode_packet(view)
    assert isinstance(packet, Packet), packet
    return packet


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_packet_size": MIN_PACKET_SIZE - 1}, "max_packet_size=255"),
        ({"max_packet_size": MAX_UDP_PAYLOAD + 1}, "largest IPv4 UDP payload"),
        ({"session_id": -1}, "session_id=-1"),
        ({"session_id": 2**64}, "session_id"),
        ({"channel_id": 65536}, "channel_id=65536"),
    ],
)
def test_bad_configuration_is_a_clear_value_error(kwargs: dict[str, int], message: str) -> None:
    arguments = {"session_id": 1, "channel_id": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        PacketEncoder(**arguments)


@pytest.mark.parametrize("size", [MIN_PACKET_SIZE, 1400, MAX_UDP_PAYLOAD])
def test_packet_size_limits_are_accepted_and_filled_exactly(size: int) -> None:
    encoder = open_encoder(size)
    while encoder.fits(STATUS_SIZE):
        encoder.add_status(0, 1, 1, 0, 0)
    assert encoder.remaining < STATUS_SIZE
    packet = encoder.finish(0)
    assert size - STATUS_SIZE < len(packet) <= size
    assert decoded(packet).header.msg_count == (size - HEADER_SIZE) // STATUS_SIZE


def test_buffer_must_be_writable_and_large_enough() -> None:
    encoder = PacketEncoder(1, 1)
    with pytest.raises(ValueError, match="needs at least 1400"):
        encoder.begin(bytearray(1399), 1)
    with pytest.raises(ValueError, match="writable"):
        encoder.begin(bytes(1400), 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs at least 40"):
        encoder.heartbeat(bytearray(39), 1, 0)
    assert not encoder.is_open


@pytest.mark.parametrize("seq", [0, -1, 2**64])
def test_sequence_numbers_outside_1_to_u64_max_are_refused(seq: int) -> None:
    encoder = PacketEncoder(1, 1)
    with pytest.raises(ValueError, match="sequence numbers run from 1"):
        encoder.begin(bytearray(1400), seq)
    with pytest.raises(ValueError, match="sequence numbers run from 1"):
        encoder.heartbeat(bytearray(40), seq, 0)


def test_last_sequence_number_is_usable_but_not_exceeded() -> None:
    encoder = open_encoder(first_seq=2**64 - 1)
    encoder.add(TRADE)
    assert decoded(encoder.finish(0)).header.first_seq == 2**64 - 1
    encoder.begin(bytearray(1400), 2**64 - 1)
    encoder.add(TRADE)
    encoder.add(TRADE)
    with pytest.raises(ValueError, match="passes 2\\*\\*64-1"):
        encoder.finish(0)


# --- packet life cycle -----------------------------------------------------------------------


def test_finish_returns_a_view_of_exactly_the_packet_in_the_callers_buffer() -> None:
    buffer = bytearray(2000)
    encoder = PacketEncoder(1, 1)
    encoder.begin(buffer, 1)
    encoder.add(TRADE)
    assert (encoder.count, encoder.size, encoder.remaining) == (1, 90, 1400 - 90)
    packet = encoder.finish(0)
    assert len(packet) == HEADER_SIZE + TRADE_SIZE
    assert packet.obj is buffer  # no copy
    buffer[HEADER_SIZE + 4] = 0x42  # instrument_id's low byte
    assert packet[HEADER_SIZE + 4] == 0x42
    assert (encoder.is_open, encoder.count, encoder.size, encoder.remaining) == (False, 0, 0, 0)


def test_fits_is_exact() -> None:
    encoder = open_encoder()
    assert encoder.fits(1400 - HEADER_SIZE)
    assert not encoder.fits(1400 - HEADER_SIZE + 1)
    encoder.add(TRADE)
    assert encoder.fits(encoder.remaining)
    assert not encoder.fits(encoder.remaining + 1)


def test_state_errors() -> None:
    encoder = PacketEncoder(1, 1)
    assert not encoder.fits(TRADE_SIZE)
    with pytest.raises(EncoderStateError, match="call begin"):
        encoder.add(TRADE)
    with pytest.raises(EncoderStateError, match="call begin"):
        encoder.finish(0)
    encoder.begin(bytearray(1400), 1)
    with pytest.raises(EncoderStateError, match="send a heartbeat instead"):
        encoder.finish(0)
    encoder.add(TRADE)
    with pytest.raises(EncoderStateError, match="still open"):
        encoder.begin(bytearray(1400), 2)
    encoder.discard()
    assert not encoder.is_open
    encoder.begin(bytearray(1400), 1)  # fine after discard
    assert encoder.count == 0


def test_packet_full_refuses_without_touching_the_packet() -> None:
    encoder = open_encoder(MIN_PACKET_SIZE)
    while encoder.fits(BOOK_DELTA_SIZE):
        encoder.add_book_delta(1, Side.BUY, BookAction.ADD, 0, 1, 1, 1, 1, 1)
    count, size = encoder.count, encoder.size
    with pytest.raises(PacketFull, match=f"BookDelta needs 51 bytes but only {256 - size}"):
        encoder.add_book_delta(1, Side.BUY, BookAction.ADD, 0, 1, 1, 1, 1, 1)
    assert (encoder.count, encoder.size) == (count, size)
    packet = decoded(encoder.finish(0))
    assert len(packet.messages) == count


def test_heartbeat_does_not_disturb_an_open_packet() -> None:
    encoder = open_encoder()
    encoder.add(TRADE)
    encoder.heartbeat(bytearray(40), 5, 0)
    assert decoded(encoder.finish(0)).messages == (TRADE,)


# --- values the wire cannot carry -------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.add_trade(1, 3, 0, 1, 1, 1, 1, 1), r"Trade.side=3 is not a Side"),
        (lambda e: e.add_trade(1, -1, 0, 1, 1, 1, 1, 1), r"Trade.side=-1"),
        (lambda e: e.add_trade(1, 1, 0x80, 1, 1, 1, 1, 1), r"Trade.flags=0x80 sets bits"),
        (lambda e: e.add_trade(1, 1, 0, 2**63, 1, 1, 1, 1), r"Trade.price=.* fits i64"),
        (lambda e: e.add_trade(1, 1, 0, 1, 1, -1, 1, 1), r"Trade.trade_id=-1 .* fits u64"),
        (lambda e: e.add_trade(2**32, 1, 0, 1, 1, 1, 1, 1), r"Trade.instrument_id=.* u32"),
        (lambda e: e.add_trade(1, 1, 0, 1.5, 1, 1, 1, 1), r"Trade.price=1.5 is not an integer"),
        (lambda e: e.add_book_delta(1, 1, 0, 0, 1, 1, 1, 1, 1), r"action=0 is not a BookAction"),
        (lambda e: e.add_book_delta(1, 1, 5, 0, 1, 1, 1, 1, 1), r"action=5"),
        (lambda e: e.add_book_delta(1, 0, 1, 0, 1, 1, 1, 1, 1), r"side=0: .* only with CLEAR"),
        (lambda e: e.add_book_delta(1, 1, 1, 4, 1, 1, 1, 1, 1), r"BookDelta.flags=0x4"),
        (lambda e: e.add_book_delta(1, 1, 1, 0, 1, 1, -1, 1, 1), r"exchange_seq=-1"),
        (lambda e: e.add_book_levels(1, 8, 1, 1, 1, [], []), r"BookLevels.flags=0x8"),
        (
            lambda e: e.add_book_levels(1, 0, 1, 1, 1, [(1, 1)], [(2, 2**64)]),
            r"BookLevels.asks\[0\].qty=.* fits i64",
        ),
        (lambda e: e.add_book_levels(1, 0, -1, 1, 1, [], []), r"BookLevels.exchange_seq=-1"),
        (
            lambda e: e.add_instrument_definition(1, 1, 8, 8, "X" * 33),
            r"is 33 bytes of UTF-8; it must be 1..32",
        ),
        (lambda e: e.add_instrument_definition(1, 1, 8, 8, "원" * 11), r"is 33 bytes"),
        (lambda e: e.add_instrument_definition(1, 1, 8, 8, ""), r"is 0 bytes"),
        (lambda e: e.add_instrument_definition(1, 1, 8, 8, "A\x00B"), r"contains NUL"),
        (lambda e: e.add_instrument_definition(1, 1, 19, 8, "X"), r"price_exponent=19"),
        (lambda e: e.add_instrument_definition(1, 1, 8, -1, "X"), r"qty_exponent=-1"),
        (lambda e: e.add_instrument_definition(1, 65536, 8, 8, "X"), r"exchange_id=65536"),
        (lambda e: e.add_status(0, 1, 0, 0, 0), r"status=0 is reserved"),
        (lambda e: e.add_status(0, 1, 1, 2**32, 0), r"Status.detail=.* u32"),
        (lambda e: e.finish(-1), r"header.send_time_ns=-1"),
    ],
)
def test_out_of_range_values_name_the_field_and_lose_nothing(call: object, message: str) -> None:
    encoder = open_encoder()
    encoder.add(TRADE)
    with pytest.raises(ValueError, match=message):
        call(encoder)  # type: ignore[operator]
    assert encoder.count == 1
    assert decoded(encoder.finish(0)).messages == (TRADE,)


def test_exact_32_byte_symbol_is_accepted() -> None:
    encoder = open_encoder()
    encoder.add_instrument_definition(1, 1, 8, 8, "원" * 10 + "AB")
    assert decoded(encoder.finish(0)).messages[0].symbol == "원" * 10 + "AB"  # type: ignore[union-attr]


# --- BookLevels that can never fit ------------------------------------------------------------


@pytest.mark.parametrize("size", [MIN_PACKET_SIZE, 1400, 4096])
def test_largest_book_levels_fits_an_empty_packet_exactly(size: int) -> None:
    most = max_levels_per_message(size)
    bids = [(1000 - i, i + 1) for i in range(most // 2)]
    asks = [(2000 + i, i + 1) for i in range(most - most // 2)]
    encoder = open_encoder(size)
    encoder.add_book_levels(1, 0, 1, 1, 1, bids, asks)
    packet = encoder.finish(0)
    assert len(packet) <= size < len(packet) + 16
    levels = decoded(packet).messages[0]
    assert isinstance(levels, BookLevels)
    assert (list(levels.bids), list(levels.asks)) == (bids, asks)


@pytest.mark.parametrize(
    ("size", "n_bids", "n_asks"),
    [(1400, 83, 0), (1400, 41, 42), (MIN_PACKET_SIZE, 12, 0), (65507, 256, 0), (65507, 0, 256)],
)
def test_book_levels_that_cannot_fit_any_packet_are_refused(
    size: int, n_bids: int, n_asks: int
) -> None:
    encoder = open_encoder(size)
    encoder.add(TRADE)
    with pytest.raises(MessageTooLarge, match="cannot fit any packet") as refused:
        encoder.add_book_levels(1, 0, 1, 1, 1, [(1, 1)] * n_bids, [(2, 1)] * n_asks)
    assert "split it into snapshot chunks" in str(refused.value)
    assert isinstance(refused.value, ValueError)
    assert decoded(encoder.finish(0)).messages == (TRADE,)


def test_level_counts_are_capped_per_side_in_big_packets() -> None:
    assert max_levels_per_message(MAX_UDP_PAYLOAD) == 510
    encoder = open_encoder(MAX_UDP_PAYLOAD)
    encoder.add_book_levels(1, 0, 1, 1, 1, [(1, 1)] * 255, [(2, 1)] * 255)
    levels = decoded(encoder.finish(0)).messages[0]
    assert isinstance(levels, BookLevels)
    assert (len(levels.bids), len(levels.asks)) == (255, 255)


def test_book_levels_that_fit_an_empty_packet_but_not_this_one_is_packet_full() -> None:
    encoder = open_encoder()
    encoder.add(TRADE)
    most = max_levels_per_message(1400)
    assert not encoder.fits(book_levels_size(most, 0))
    with pytest.raises(PacketFull):
        encoder.add_book_levels(1, 0, 1, 1, 1, [(1, 1)] * most, [])


def test_add_rejects_non_messages() -> None:
    encoder = open_encoder()
    with pytest.raises(TypeError, match="not a wire message: str"):
        encoder.add("trade")  # type: ignore[arg-type]


def test_status_and_trade_share_one_packet_in_order() -> None:
    encoder = open_encoder(first_seq=41)
    status = Status(0, 1, 2, 3, 4)
    encoder.add(status)
    encoder.add(TRADE)
    packet = decoded(encoder.finish(99))
    assert packet.messages == (status, TRADE)
    assert (packet.header.first_seq, packet.header.next_seq) == (41, 43)
