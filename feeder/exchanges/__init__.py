"""Exchange adapters, one module per exchange; ``ADAPTERS`` maps names to classes."""

from __future__ import annotations

from feeder.exchanges.base import Adapter
from feeder.exchanges.binance import BinanceAdapter
from feeder.exchanges.bithumb import BithumbAdapter
from feeder.exchanges.bybit import BybitAdapter
from feeder.exchanges.coinbase import CoinbaseAdapter
from feeder.exchanges.kraken import KrakenAdapter
from feeder.exchanges.kucoin import KucoinAdapter
from feeder.exchanges.okx import OkxAdapter
from feeder.exchanges.upbit import UpbitAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "binance": BinanceAdapter,
    "bithumb": BithumbAdapter,
    "bybit": BybitAdapter,
    "coinbase": CoinbaseAdapter,
    "kraken": KrakenAdapter,
    "kucoin": KucoinAdapter,
    "okx": OkxAdapter,
    "upbit": UpbitAdapter,
}


def adapter_class(name: str) -> type[Adapter]:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(
            f"unknown exchange {name!r} (known: {', '.join(sorted(ADAPTERS))})"
        ) from None
