"""The re-request format: exact layouts, round trips, and a decoder that never raises."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from feeder.recovery.protocol import (
    REPLY_SIZE,
    REQUEST_SIZE,
    Malformed,
    Reply,
    ReplyStatus,
    Request,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)

u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


def test_request_layout_is_the_documented_one() -> None:
    data = encode_request(3, 1_732_000_000_000_000_000, 1001, 25, 7)
    assert len(data) == REQUEST_SIZE == 32
    assert data[:4] == b"MDRQ" and data[4] == 1 and data[5] == 1
    assert struct.unpack_from("<HQQII", data, 6) == (3, 1_732_000_000_000_000_000, 1001, 25, 7)


def test_reply_layout_is_the_documented_one() -> None:
    r = Reply(ReplyStatus.SERVED, 3, 99, 1001, 25, 7, 1001, 25, 2, 900, 1200)
    data = encode_reply(r)
    assert len(data) == REPLY_SIZE == 64
    assert data[:4] == b"MDRS" and data[4] == 1 and data[5] == 1
    assert struct.unpack_from("<HQQIIQIIQQ", data, 6) == (
        3,
        99,
        1001,
        25,
        7,
        1001,
        25,
        2,
        900,
        1200,
    )
    assert decode_reply(data) == r


@given(u16, u64, u64, u32, u32)
def test_request_round_trip(channel: int, session: int, first: int, count: int, rid: int) -> None:
    got = decode_request(encode_request(channel, session, first, count, rid))
    if first + count > 2**64 - 1:
        assert got == Malformed("bad_range")
    else:
        assert got == Request(channel, session, first, count, rid)


@given(st.binary(max_size=80))
def test_request_decoder_never_raises(data: bytes) -> None:
    got = decode_request(data)
    assert isinstance(got, Request | Malformed)
    if isinstance(got, Request):
        assert len(data) == REQUEST_SIZE and data[:4] == b"MDRQ"


@given(st.binary(min_size=REQUEST_SIZE, max_size=REQUEST_SIZE))
def test_request_decoder_on_right_sized_garbage(data: bytes) -> None:
    got = decode_request(data)
    if isinstance(got, Malformed):
        assert got.reason in {"bad_magic", "bad_version", "bad_kind", "bad_range"}
    else:
        assert (
            encode_request(got.channel_id, got.session_id, got.first_seq, got.count, got.request_id)
            == data
        )


@given(st.binary(max_size=100))
def test_reply_decoder_never_raises(data: bytes) -> None:
    assert isinstance(decode_reply(data), Reply | Malformed)


def test_malformed_reasons() -> None:
    good = bytearray(encode_request(1, 2, 3, 4, 5))
    assert decode_request(bytes(good[:-1])) == Malformed("bad_length")
    assert decode_request(bytes(good) + b"\0") == Malformed("bad_length")
    assert decode_request(b"XDRQ" + bytes(good[4:])) == Malformed("bad_magic")
    assert decode_request(bytes(good[:4]) + b"\x02" + bytes(good[5:])) == Malformed("bad_version")
    assert decode_request(bytes(good[:5]) + b"\x09" + bytes(good[6:])) == Malformed("bad_kind")
    reply = bytearray(encode_reply(Reply(ReplyStatus.SERVED, 1, 2, 3, 4, 5, 3, 4, 1, 1, 8)))
    reply[5] = 9
    assert decode_reply(bytes(reply)) == Malformed("bad_status")
