"""Instrument ids: every (exchange, symbol) the feeder publishes gets a stable u32 id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    instrument_id: int
    exchange: str
    exchange_id: int
    symbol: str
    channel: int
    price_exponent: int = 8
    qty_exponent: int = 8


class Registry:
    """Assigns ids in configuration order, so a restart with the same config keeps them."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], Instrument] = {}

    def add(self, exchange: str, exchange_id: int, symbol: str, channel: int) -> Instrument:
        key = (exchange, symbol)
        inst = self.by_key.get(key)
        if inst is None:
            inst = Instrument(len(self.by_key) + 1, exchange, exchange_id, symbol, channel)
            self.by_key[key] = inst
        return inst

    def get(self, exchange: str, symbol: str) -> Instrument:
        return self.by_key[(exchange, symbol)]

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self.by_key.values())

    def __len__(self) -> int:
        return len(self.by_key)
