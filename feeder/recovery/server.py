"""The feeder's re-request service: answers ``Request``s from the retransmission buffers.

``RecoveryService`` is the decision logic (sync, clock injected, no sockets): decode, rate-limit,
check session/channel/range, look the range up, and return the datagrams to send back: the
original packets, then a ``Reply``. ``RecoveryServer`` is its asyncio ``DatagramProtocol``; it
runs in the feeder's event loop next to the exchange connections. ``RecoveryEndpoint`` is what
``feeder run`` holds: the per-channel buffers the publisher fills, and the server once started.

Abuse resistance, because a re-request port is an amplifier (32 bytes in, up to
``max_packets`` x 1.4 KB out): garbage and rate-limited requests get no answer at all (only a
counter moves), every requester has a token bucket and all of them share a global one, one
answer holds at most ``max_packets`` packets, and answers are dropped, not queued without bound,
when the socket cannot keep up. The socket is bound to one configured address; 0.0.0.0 is
refused unless the operator asks for it (``open_socket``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from feeder.net import validate
from feeder.net.netns import socket_in
from feeder.recovery.buffer import Found, RetransmitBuffer, RetransmitStore
from feeder.recovery.protocol import (
    Malformed,
    Reply,
    ReplyStatus,
    Request,
    decode_request,
    encode_reply,
)
from feeder.runtime.ratelimit import TokenBucket
from feeder.wire import DEFAULT_MAX_PACKET_SIZE

log = logging.getLogger("feeder.recovery")


@dataclass(frozen=True)
class RecoveryLimits:
    max_packets: int = 64  # packets in one answer; the receiver asks again for the rest
    requester_rate: float = 200.0  # requests/s per requesting address ...
    requester_burst: int = 400  # ... saved up to this many
    total_rate: float = 2000.0  # requests/s from everyone together
    total_burst: int = 4000
    max_requesters: int = 1024  # addresses with a bucket; the least recently seen is forgotten
    max_queued_bytes: int = 4 << 20  # answers waiting for the socket beyond this are dropped

    def __post_init__(self) -> None:
        validate.int_in(self.max_packets, 1, 4096, "recovery max_packets")
        validate.int_in(self.requester_burst, 1, 1 << 20, "recovery requester_burst")
        validate.int_in(self.total_burst, 1, 1 << 20, "recovery total_burst")
        validate.int_in(self.max_requesters, 1, 1 << 20, "recovery max_requesters")
        if not (self.requester_rate > 0 and self.total_rate > 0):
            raise ValueError("recovery rates must be positive (requests per second)")


@dataclass
class RecoveryCounters:
    requests: int = 0  # well-formed requests received
    served: int = 0  # answered with at least one packet
    served_packets: int = 0
    served_messages: int = 0
    not_available: int = 0  # nothing of the range held (older than the buffer)
    refused_rate: int = 0  # over a requester's or the global rate: dropped unanswered
    refused_session: int = 0
    refused_range: int = 0  # unknown channel, count 0, first_seq 0
    replies_dropped: int = 0  # the socket could not keep up
    malformed: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "served": self.served,
            "served_packets": self.served_packets,
            "served_messages": self.served_messages,
            "not_available": self.not_available,
            "refused": {
                "rate": self.refused_rate,
                "session": self.refused_session,
                "range": self.refused_range,
            },
            "replies_dropped": self.replies_dropped,
            "malformed": dict(self.malformed),
        }


class RecoveryService:
    def __init__(
        self,
        buffers: Mapping[int, RetransmitBuffer],
        session_id: int,
        limits: RecoveryLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buffers = buffers
        self.session_id = session_id
        self.limits = limits or RecoveryLimits()
        self.counters = RecoveryCounters()
        self._clock = clock
        self._total = TokenBucket(self.limits.total_rate, self.limits.total_burst, clock)
        self._requesters: OrderedDict[str, TokenBucket] = OrderedDict()

    def _allowed(self, host: str) -> bool:
        bucket = self._requesters.get(host)
        if bucket is None:
            lim = self.limits
            bucket = TokenBucket(lim.requester_rate, lim.requester_burst, self._clock)
            self._requesters[host] = bucket
            if len(self._requesters) > lim.max_requesters:
                self._requesters.popitem(last=False)
        else:
            self._requesters.move_to_end(host)
        # The requester's own budget first: a flooder must not use up everyone else's.
        return bucket.try_take() and self._total.try_take()

    def handle(self, data: bytes, source: tuple[str, int]) -> list[bytes]:
        """The datagrams to send back to ``source`` for one received datagram."""
        req = decode_request(data)
        c = self.counters
        if isinstance(req, Malformed):
            c.malformed[req.reason] += 1
            return []
        c.requests += 1
        if not self._allowed(source[0]):
            c.refused_rate += 1
            return []
        buf = self.buffers.get(req.channel_id)
        if req.session_id != self.session_id:
            c.refused_session += 1
            return [self._reply(req, ReplyStatus.UNKNOWN_SESSION, buf)]
        if buf is None or req.count == 0 or req.first_seq == 0:
            c.refused_range += 1
            return [self._reply(req, ReplyStatus.BAD_REQUEST, buf)]
        found = buf.find(req.first_seq, req.count, self.limits.max_packets)
        if not found.packets:
            c.not_available += 1
            return [self._reply(req, ReplyStatus.NOT_AVAILABLE, buf)]
        c.served += 1
        c.served_packets += len(found.packets)
        c.served_messages += found.count
        return [*found.packets, self._reply(req, ReplyStatus.SERVED, buf, found)]

    def _reply(
        self,
        req: Request,
        status: ReplyStatus,
        buf: RetransmitBuffer | None,
        found: Found | None = None,
    ) -> bytes:
        return encode_reply(
            Reply(
                status,
                req.channel_id,
                self.session_id,
                req.first_seq,
                req.count,
                req.request_id,
                found.first if found is not None else 0,
                found.count if found is not None else 0,
                len(found.packets) if found is not None else 0,
                buf.oldest_seq if buf is not None else 0,
                buf.next_seq if buf is not None else 0,
            )
        )


class RecoveryServer(asyncio.DatagramProtocol):
    """``RecoveryService`` on an asyncio datagram endpoint."""

    def __init__(self, service: RecoveryService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None
        self._queued: Callable[[], int] = lambda: 0
        self.socket_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not always a DatagramTransport subclass (CPython's selector one is not), but one
        # in behaviour: it has sendto.
        self.transport = cast(asyncio.DatagramTransport, transport)
        # Bytes the transport holds because the socket was full (asyncio and uvloop have it).
        self._queued = getattr(transport, "get_write_buffer_size", self._queued)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        t = self.transport
        if t is None:
            return
        limit = self.service.limits.max_queued_bytes
        for reply in self.service.handle(data, addr):
            if self._queued() > limit:
                self.service.counters.replies_dropped += 1
                continue
            t.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a receiver that went away, and the like: not fatal.
        self.socket_errors += 1
        log.debug("recovery socket: %s", exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def open_socket(
    address: str, port: int, *, allow_any: bool = False, netns: str | None = None
) -> socket.socket:
    """A non-blocking UDP socket bound to ``address:port`` for re-requests.

    0.0.0.0 would answer re-requests arriving on every interface, including ones facing
    networks that should never reach the feeder; it is refused unless ``allow_any``.
    """
    addr = validate.ipv4(address, "recovery address")
    validate.int_in(port, 0, 65535, "recovery port")  # 0: any free port (tests)
    if addr.is_multicast or addr == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"recovery address {addr} must be a unicast address of this host")
    if addr.is_unspecified and not allow_any:
        raise ValueError(
            "recovery address 0.0.0.0 listens for re-requests on every interface; give the "
            "address of the interface receivers reach the feeder on, or allow it explicitly "
            "(--allow-any-recovery-addr, [recovery] allow_any_address = true)"
        )
    if netns is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    else:
        sock = socket_in(netns, socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.bind((str(addr), port))
    except OSError as e:
        sock.close()
        raise ValueError(f"recovery address {addr}:{port}: {e.strerror or e}") from e
    sock.setblocking(False)
    return sock


async def serve(
    sock: socket.socket, service: RecoveryService
) -> tuple[asyncio.DatagramTransport, RecoveryServer]:
    """Start answering on ``sock`` in the running event loop."""
    loop = asyncio.get_running_loop()
    protocol = RecoveryServer(service)
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    return transport, protocol


class RecoveryEndpoint:
    """A feeder's recovery service for a whole run: the buffers the publisher fills from the
    start, and the socket that answers from them once ``start``ed."""

    def __init__(
        self,
        channels: Iterable[int],
        address: str,
        port: int,
        *,
        buffer_packets: int,
        slot_size: int = DEFAULT_MAX_PACKET_SIZE,
        allow_any: bool = False,
        netns: str | None = None,
        limits: RecoveryLimits | None = None,
    ) -> None:
        self.store = RetransmitStore.for_channels(channels, buffer_packets, slot_size)
        self.address, self.port = address, port
        self.allow_any, self.netns = allow_any, netns
        self.limits = limits or RecoveryLimits()
        self.service: RecoveryService | None = None
        self._server: RecoveryServer | None = None

    async def start(self, session_id: int) -> None:
        sock = open_socket(self.address, self.port, allow_any=self.allow_any, netns=self.netns)
        self.service = RecoveryService(self.store, session_id, self.limits)
        try:
            _, self._server = await serve(sock, self.service)
        except BaseException:
            sock.close()
            raise
        log.info("answering re-requests on %s:%d", self.address, self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def report(self) -> dict[str, Any]:
        counters = self.service.counters.to_json() if self.service else RecoveryCounters().to_json()
        return {
            "address": f"{self.address}:{self.port}",
            "buffer_packets": next(iter(self.store.values())).capacity if self.store else 0,
            "buffer_bytes": self.store.memory_bytes(),
            "buffer_resets": sum(b.resets for b in self.store.values()),
            **counters,
        }
