"""Server-side protocols, one module per exchange; ``PROTOCOLS`` maps names to classes."""

from __future__ import annotations

from feeder.sim.protocol import SimProtocol
from feeder.sim.protocols.binance import BinanceSim
from feeder.sim.protocols.bithumb import BithumbSim
from feeder.sim.protocols.bybit import BybitSim
from feeder.sim.protocols.coinbase import CoinbaseSim
from feeder.sim.protocols.kraken import KrakenSim
from feeder.sim.protocols.kucoin import KucoinSim
from feeder.sim.protocols.okx import OkxSim
from feeder.sim.protocols.upbit import UpbitSim

PROTOCOLS: dict[str, type[SimProtocol]] = {
    "binance": BinanceSim,
    "bithumb": BithumbSim,
    "bybit": BybitSim,
    "coinbase": CoinbaseSim,
    "kucoin": KucoinSim,
    "upbit": UpbitSim,
    "okx": OkxSim,
    "kraken": KrakenSim,
}
