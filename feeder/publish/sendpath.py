"""The one object publishers send through: which transport is used, and what to do without one.

Components are given a ``SendPath``, never a transport, so a transport attached later (a sender
created after the exchanges started) is used from that moment. Until then packets wait in an
ordered backlog; nothing is dropped for lack of a sender. On a hard transport failure the path
falls back to the next candidate and re-sends what the failed one never sent. Sequence numbers
belong to the publisher, so no switch can reuse or skip one.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from feeder.publish.transport import (
    Transport,
    TransportError,
    TransportUnavailable,
)

log = logging.getLogger("feeder.sendpath")


class BacklogFull(Exception):
    """The backlog is at its limit: the producer must wait for the network (back-pressure)."""


@dataclass(frozen=True)
class Candidate:
    """A transport the path may use, and how to make it (raises TransportUnavailable)."""

    name: str
    make: Callable[[], Transport]


@dataclass
class SendStats:
    packets: int = 0
    queued_without_sender: int = 0
    backlog_peak: int = 0
    fallbacks: int = 0
    events: list[str] = field(default_factory=list)


class SendPath:
    def __init__(
        self,
        candidates: Sequence[Candidate] = (),
        *,
        max_backlog: int = 1 << 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._candidates = list(candidates)
        self._next_candidate = 0
        self.transport: Transport | None = None
        self._backlog: deque[tuple[bytes, int]] = deque()
        self.max_backlog = max_backlog
        self.stats = SendStats()
        self._clock = clock
        self._t0 = clock()

    # --- choosing a transport (cold path) -------------------------------------------------

    def _event(self, text: str, level: int = logging.INFO) -> None:
        self.stats.events.append(f"+{self._clock() - self._t0:.3f}s {text}")
        log.log(level, text)

    def start(self) -> Transport | None:
        """Take the first candidate that can be created; say why the others could not."""
        while self._next_candidate < len(self._candidates):
            cand = self._candidates[self._next_candidate]
            self._next_candidate += 1
            try:
                transport = cand.make()
            except TransportUnavailable as e:
                self._event(f"{cand.name} unavailable: {e}", logging.WARNING)
                continue
            self.attach(transport, f"using {transport.name}")
            return transport
        if self.transport is None:
            self._event(
                "no transport available: packets are queued, nothing is sent", logging.ERROR
            )
        return None

    def attach(self, transport: Transport, why: str = "") -> None:
        """Use ``transport`` from now on (e.g. a sender created after the sources started)."""
        self.transport = transport
        self._event(why or f"attached {transport.name}")

    @property
    def name(self) -> str:
        return "none" if self.transport is None else self.transport.name

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    # --- hot path ---------------------------------------------------------------------------

    def submit(self, packet: memoryview, dest: int) -> None:
        """Hand one finished packet over. The bytes are copied before this returns."""
        t = self.transport
        if t is not None and not self._backlog:
            if t.offer(packet, dest):
                return
            self.flush()
            t = self.transport
            if t is not None and not self._backlog and t.offer(packet, dest):
                return
        self._queue(bytes(packet), dest)

    def _queue(self, data: bytes, dest: int) -> None:
        if len(self._backlog) >= self.max_backlog:
            raise BacklogFull(
                f"{len(self._backlog)} packets wait for {self.name}: the network is not keeping up"
            )
        if self.transport is None:
            self.stats.queued_without_sender += 1
        self._backlog.append((data, dest))
        if len(self._backlog) > self.stats.backlog_peak:
            self.stats.backlog_peak = len(self._backlog)

    def flush(self) -> int:
        """Send what is staged and what waits in the backlog; returns datagrams sent."""
        sent = 0
        while self.transport is not None:
            t = self.transport
            backlog = self._backlog
            while backlog and t.offer(*backlog[0]):
                backlog.popleft()
            try:
                n = t.flush()
            except TransportError as e:
                self._fail_over(str(e))
                continue
            sent += n
            if n == 0 or not backlog:
                break
        self.stats.packets += sent
        return sent

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Flush until nothing is pending (end of session); False if the network stayed full."""
        deadline = self._clock() + timeout_s
        while True:
            self.flush()
            t = self.transport
            if t is not None and not self._backlog and t.pending == 0:
                return True
            if self._clock() > deadline:
                return False
            time.sleep(0.0002)

    def _fail_over(self, why: str) -> None:
        failed = self.transport
        assert failed is not None
        self.stats.fallbacks += 1
        self._event(f"{failed.name} failed ({why}); falling back", logging.ERROR)
        unsent = failed.take_unsent()
        failed.close()
        self.transport = None
        # What the failed transport never sent goes first, ahead of the backlog.
        self._backlog.extendleft(reversed(unsent))
        self.start()

    def drain_tx(self, on_packet: Callable[[memoryview, int], None], limit: int = 4096) -> int:
        """TX timestamps of up to ``limit`` sent packets, where the transport has them (kernel
        UDP)."""
        # getattr, not isinstance(TxStamped): a runtime Protocol check costs microseconds and
        # this runs on every idle loop turn.
        drain = getattr(self.transport, "drain_tx", None)
        return int(drain(on_packet, limit)) if drain is not None else 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None
