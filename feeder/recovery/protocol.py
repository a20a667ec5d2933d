"""The re-request protocol (docs/wire-format.md section 13): fixed little-endian layouts.

A receiver asks for ``count`` messages of one channel from ``first_seq`` (a ``Request``, 32
bytes, over unicast UDP); the feeder answers with the original data packets, unchanged, then one
``Reply`` (64 bytes) saying what it served and, when it served less, why. Decoding never raises:
anything that is not exactly a message of this format comes back as ``Malformed(reason)``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

REQUEST_MAGIC: Final = b"MDRQ"
REPLY_MAGIC: Final = b"MDRS"
VERSION: Final = 1
KIND_REQUEST: Final = 1

Fields = tuple[tuple[str, str], ...]  # (name, struct format code), in wire order

REQUEST_FIELDS: Final[Fields] = (
    ("magic", "4s"),
    ("version", "B"),
    ("kind", "B"),
    ("channel_id", "H"),
    ("session_id", "Q"),
    ("first_seq", "Q"),
    ("count", "I"),
    ("request_id", "I"),
)
REPLY_FIELDS: Final[Fields] = (
    ("magic", "4s"),
    ("version", "B"),
    ("status", "B"),
    ("channel_id", "H"),
    ("session_id", "Q"),
    ("first_seq", "Q"),
    ("count", "I"),
    ("request_id", "I"),
    ("served_first", "Q"),
    ("served_count", "I"),
    ("served_packets", "I"),
    ("oldest_seq", "Q"),
    ("next_seq", "Q"),
)
REQUEST: Final = struct.Struct("<" + "".join(fmt for _, fmt in REQUEST_FIELDS))
REPLY: Final = struct.Struct("<" + "".join(fmt for _, fmt in REPLY_FIELDS))
REQUEST_SIZE: Final = REQUEST.size  # 32
REPLY_SIZE: Final = REPLY.size  # 64
U32_MAX: Final = (1 << 32) - 1
U64_MAX: Final = (1 << 64) - 1

ReadableBuffer = bytes | bytearray | memoryview


class ReplyStatus(IntEnum):
    """What the feeder did with a request (closed: a new value needs a new version)."""

    SERVED = 1  # served_first .. +served_count were sent (all or part of the request)
    NOT_AVAILABLE = 2  # nothing of the range is held: older than the buffer, or never sent
    UNKNOWN_SESSION = 3  # the request names a session this feeder is not running
    BAD_REQUEST = 4  # unknown channel, count 0 or first_seq 0


@dataclass(frozen=True, slots=True)
class Request:
    channel_id: int
    session_id: int
    first_seq: int
    count: int
    request_id: int

    @property
    def end_seq(self) -> int:
        """One past the last requested sequence number."""
        return self.first_seq + self.count


@dataclass(frozen=True, slots=True)
class Reply:
    status: ReplyStatus
    channel_id: int
    session_id: int  # the feeder's current session (tells a receiver it restarted)
    first_seq: int  # as requested
    count: int  # as requested
    request_id: int  # as requested
    served_first: int  # first sequence of the packets sent back (0 when none)
    served_count: int  # messages in the packets sent back
    served_packets: int
    oldest_seq: int  # oldest sequence the feeder still holds for the channel (0: none)
    next_seq: int  # the sequence the channel sends next

    @property
    def served_end(self) -> int:
        return self.served_first + self.served_count


@dataclass(frozen=True, slots=True)
class Malformed:
    """Not a message of this protocol; ``reason`` is a short counter label."""

    reason: str


def encode_request(
    channel_id: int, session_id: int, first_seq: int, count: int, request_id: int
) -> bytes:
    return REQUEST.pack(
        REQUEST_MAGIC, VERSION, KIND_REQUEST, channel_id, session_id, first_seq, count, request_id
    )


def encode_reply(r: Reply) -> bytes:
    return REPLY.pack(
        REPLY_MAGIC,
        VERSION,
        int(r.status),
        r.channel_id,
        r.session_id,
        r.first_seq,
        r.count,
        r.request_id,
        r.served_first,
        r.served_count,
        r.served_packets,
        r.oldest_seq,
        r.next_seq,
    )


def decode_request(data: ReadableBuffer) -> Request | Malformed:
    if len(data) != REQUEST_SIZE:
        return Malformed("bad_length")
    magic, version, kind, channel, session, first, count, request_id = REQUEST.unpack(data)
    if magic != REQUEST_MAGIC:
        return Malformed("bad_magic")
    if version != VERSION:
        return Malformed("bad_version")
    if kind != KIND_REQUEST:
        return Malformed("bad_kind")
    if first + count > U64_MAX:
        return Malformed("bad_range")
    return Request(channel, session, first, count, request_id)


def decode_reply(data: ReadableBuffer) -> Reply | Malformed:
    if len(data) != REPLY_SIZE:
        return Malformed("bad_length")
    fields = REPLY.unpack(data)
    if fields[0] != REPLY_MAGIC:
        return Malformed("bad_magic")
    if fields[1] != VERSION:
        return Malformed("bad_version")
    try:
        status = ReplyStatus(fields[2])
    except ValueError:
        return Malformed("bad_status")
    return Reply(status, *fields[3:])
