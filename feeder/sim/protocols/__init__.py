"""Server-side protocols, one module per exchange; ``PROTOCOLS`` maps names to classes."""

from __future__ import annotations

from feeder.sim.protocol import SimProtocol
from feeder.sim.protocols.binance import BinanceSim
from feeder.sim.protocols.bybit import BybitSim
from feeder.sim.protocols.kucoin import KucoinSim

PROTOCOLS: dict[str, type[SimProtocol]] = {
    "binance": BinanceSim,
    "bybit": BybitSim,
    "kucoin": KucoinSim,
}
