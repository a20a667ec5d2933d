"""In-memory transports for publisher / send-path tests."""

from __future__ import annotations

from feeder.publish.transport import TransportError


class MemoryTransport:
    """Records what it sends; can be told to fail after N flushes or to stall."""

    def __init__(
        self,
        name: str = "memory",
        capacity: int = 8,
        fail_after: int | None = None,
        stalled: bool = False,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.fail_after = fail_after
        self.stalled = stalled
        self.staged: list[tuple[bytes, int]] = []
        self.sent: list[tuple[bytes, int]] = []
        self.flushes = 0
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self.staged)

    def offer(self, packet: bytes | memoryview, dest: int) -> bool:
        if len(self.staged) >= self.capacity:
            return False
        self.staged.append((bytes(packet), dest))
        return True

    def flush(self) -> int:
        self.flushes += 1
        if self.fail_after is not None and self.flushes > self.fail_after:
            raise TransportError(f"{self.name}: interface gone")
        if self.stalled:
            return 0
        n = len(self.staged)
        self.sent.extend(self.staged)
        self.staged.clear()
        return n

    def take_unsent(self) -> list[tuple[bytes, int]]:
        out, self.staged = self.staged, []
        return out

    def close(self) -> None:
        self.closed = True

    def info(self) -> dict[str, object]:
        return {"transport": self.name}
