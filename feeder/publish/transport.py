"""Transports: the ways a datagram leaves the host. The kernel UDP one lives here.

A transport stages datagrams (``offer``) and sends what is staged (``flush``). A full queue is
not an error (datagrams stay staged); a hard failure raises ``TransportError`` and the transport
hands back what it never sent (``take_unsent``) so the send path can give it to the next one
without losing a sequence number.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Protocol

from feeder.net.mcast import BufferReport, open_sender
from feeder.net.mmsg import BatchSender, make_sender


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


class UdpTransport:
    """Kernel UDP: ``sendmmsg`` batches when libc has it, else one ``sendto`` per datagram."""

    def __init__(
        self, sock: socket.socket, sender: BatchSender, buffer: BufferReport | None
    ) -> None:
        self._sock = sock
        self._sender = sender
        self.buffer = buffer
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
        sender = make_sender(opened.sock, batch, 1472, destinations, prefer_mmsg=prefer_mmsg)
        return cls(opened.sock, sender, opened.buffer)

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
        return d
