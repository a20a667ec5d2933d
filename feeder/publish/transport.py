"""Transports: the ways a datagram leaves the host. The kernel UDP one lives here.

A transport stages datagrams (``offer``) and sends what is staged (``flush``). A full queue is
not an error (datagrams stay staged); a hard failure raises ``TransportError`` and the transport
hands back what it never sent (``take_unsent``) so the send path can give it to the next one
without losing a sequence number.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from feeder.net.mcast import BufferReport, open_sender, request_buffer
from feeder.net.mmsg import BatchSender, make_sender
from feeder.net.timestamps import (
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
    enable,
    tx_record,
)

_ERRQUEUE = socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT


def udp_payload(frame: memoryview) -> memoryview | None:
    """The UDP payload of a looped-back TX datagram (Ethernet or bare IPv4 framing)."""
    if len(frame) >= 34 and frame[12] == 0x08 and frame[13] == 0x00:
        frame = frame[14:]  # Ethernet (veth, lo: 14-byte header)
    if len(frame) < 28 or frame[0] >> 4 != 4:
        return None
    start = (frame[0] & 0x0F) * 4 + 8
    return frame[start:] if start <= len(frame) else None


class TransportError(Exception):
    """The transport can no longer send (interface gone, ring error...)."""


class TransportUnavailable(Exception):
    """The transport cannot be created on this host; the message says why."""


class Transport(Protocol):
    name: str

    @property
    def pending(self) -> int: ...
    def offer(self, packet: bytes | memoryview, dest: int) -> bool: ...
    def flush(self) -> int: ...
    def take_unsent(self) -> list[tuple[bytes, int]]: ...
    def close(self) -> None: ...
    def info(self) -> dict[str, object]: ...


@runtime_checkable
class TxStamped(Protocol):
    """A transport whose datagrams come back with kernel TX timestamps."""

    def drain_tx(self, on_packet: Callable[[memoryview, int], None], limit: int = 4096) -> int: ...


TX_STAMP_QUEUE_BYTES = 8 << 20


class UdpTransport:
    """Kernel UDP: ``sendmmsg`` batches when libc has it, else one ``sendto`` per datagram."""

    def __init__(
        self,
        sock: socket.socket,
        sender: BatchSender,
        buffer: BufferReport | None,
        tx_timestamps: bool = False,
    ) -> None:
        self._sock = sock
        self._sender = sender
        self.buffer = buffer
        self.tx_timestamps = tx_timestamps
        self._errbuf = bytearray(2048)
        self._errview = memoryview(self._errbuf)
        if tx_timestamps:
            # Without OPT_TSONLY the kernel returns the packet with its timestamp, so the
            # latency of every message in it can be read back (see metrics/ticktowire.py).
            enable(sock, SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE)
            # The error queue is charged to the receive buffer, and stamps that do not fit are
            # dropped silently: give it room, past rmem_max where we may.
            request_buffer(sock, "rcv", TX_STAMP_QUEUE_BYTES, force=True)
        self.name = "udp-sendmmsg" if type(sender).__name__ == "MmsgSender" else "udp-sendto"

    @classmethod
    def open(
        cls,
        iface_addr: str,
        destinations: Sequence[tuple[str, int]],
        *,
        ttl: int = 1,
        loop: bool = False,
        sndbuf: int | None = 4 << 20,
        batch: int = 64,
        prefer_mmsg: bool = True,
        netns: str | None = None,
        tx_timestamps: bool = False,
        huge_pages: bool = True,
    ) -> UdpTransport:
        try:
            opened = open_sender(
                iface_addr,
                ttl=ttl,
                loop=loop,
                sndbuf=sndbuf,
                force_buffer=True,
                blocking=False,
                netns=netns,
            )
        except (OSError, ValueError) as e:
            raise TransportUnavailable(f"kernel UDP socket on {iface_addr}: {e}") from e
        sender = make_sender(
            opened.sock, batch, 1472, destinations, prefer_mmsg=prefer_mmsg, huge_pages=huge_pages
        )
        return cls(opened.sock, sender, opened.buffer, tx_timestamps)

    @property
    def pending(self) -> int:
        return self._sender.pending

    def offer(self, packet: bytes | memoryview, dest: int) -> bool:
        if not self._sender.free:
            return False
        self._sender.stage(packet, dest)
        return True

    def flush(self) -> int:
        try:
            return self._sender.flush()
        except OSError as e:
            raise TransportError(f"{self.name}: {e.strerror or e}") from e

    def take_unsent(self) -> list[tuple[bytes, int]]:
        unsent = self._sender.unsent()
        self._sender.clear()
        return unsent

    def drain_tx(self, on_packet: Callable[[memoryview, int], None], limit: int = 4096) -> int:
        """Hand each returned datagram's payload and TX timestamp to ``on_packet``."""
        if not self.tx_timestamps:
            return 0
        n = 0
        sock, buf, view = self._sock, self._errbuf, self._errview
        while n < limit:
            try:
                size, anc, _flags, _addr = sock.recvmsg_into([buf], 512, _ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            rec = tx_record(anc)
            if rec is None:
                continue
            n += 1
            payload = udp_payload(view[:size])
            if payload is not None:
                on_packet(payload, rec.ns)
        return n

    def close(self) -> None:
        self._sock.close()

    def info(self) -> dict[str, object]:
        d: dict[str, object] = {"transport": self.name}
        if self.buffer is not None:
            d["sndbuf_requested"] = self.buffer.requested
            d["sndbuf_granted"] = self.buffer.granted
            d["sndbuf_capped"] = self.buffer.capped
            if self.buffer.capped:
                d["sndbuf_fix"] = self.buffer.fix
        d["huge_pages"] = self._sender.slots.huge
        return d
