"""Exchange adapters, one module per exchange; ``ADAPTERS`` maps names to classes."""

from __future__ import annotations

from feeder.exchanges.base import Adapter
from feeder.exchanges.binance import BinanceAdapter
from feeder.exchanges.bybit import BybitAdapter
from feeder.exchanges.kucoin import KucoinAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "binance": BinanceAdapter,
    "bybit": BybitAdapter,
    "kucoin": KucoinAdapter,
}


def adapter_class(name: str) -> type[Adapter]:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(
            f"unknown exchange {name!r} (known: {', '.join(sorted(ADAPTERS))})"
        ) from None
