"""The server side of one exchange's protocol, as the simulator speaks it.

A protocol turns market events into the exact frames the exchange sends (field names, symbol
formats, sequence numbers, checksums, number formatting), answers client messages (subscribe,
unsubscribe, ping) and serves the REST endpoints the exchange's feed needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from aiohttp import web

from feeder.sim.market import LevelChange, SymbolMarket, Trade

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange


class SimProtocol(ABC):
    name: str
    #: WebSocket path under the exchange's prefix (``/binance/stream``).
    ws_path: str = "/ws"
    #: Text frames are the norm; Upbit sends JSON in binary frames.
    binary_frames: bool = False

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        #: Set by the corrupt-checksum fault: the next book frame carries a wrong checksum.
        self.corrupt_next_checksum = False

    def routes(self) -> list[web.RouteDef]:
        """REST endpoints (paths relative to the exchange prefix)."""
        return []

    async def on_connect(self, conn: SimConnection) -> None:  # noqa: B027 - optional hook
        """Called when a client connects (e.g. KuCoin's welcome message)."""

    @abstractmethod
    async def on_message(self, conn: SimConnection, text: str) -> None:
        """A client text frame: subscribe/unsubscribe/ping. Use ``conn.subscribe`` etc."""

    @abstractmethod
    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        """Frames announcing one book update (sequence numbers advance even if not sent)."""

    @abstractmethod
    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        """Frames announcing one trade."""

    def snapshot_frames(self, symbol: str, market: SymbolMarket) -> list[str]:
        """Frames a new subscriber gets first (exchanges that push snapshots)."""
        return []

    def rest_snapshot(self, symbol: str, market: SymbolMarket, limit: int = 1000) -> bytes:
        """The REST depth snapshot body (exchanges whose books start from REST). The REST
        route and the replay corpus generator both use it."""
        raise NotImplementedError(f"{self.name} pushes its snapshots")
