"""Symbols and their precision per simulated exchange, in each exchange's own symbol format."""

from __future__ import annotations

from feeder.sim.market import SCALE, Instrument

# (base, quote, mid price, price places, qty places)
_COINS = [
    ("BTC", 30_000, 2, 5),
    ("ETH", 2_000, 2, 4),
    ("SOL", 150, 3, 3),
    ("XRP", 1, 4, 1),
    ("ADA", 1, 4, 1),
    ("DOGE", 1, 5, 0),
    ("LTC", 80, 2, 3),
    ("DOT", 7, 3, 2),
    ("AVAX", 35, 3, 2),
    ("LINK", 15, 3, 2),
]

_FORMAT = {
    "binance": ("{b}{q}", "USDT"),
    "bybit": ("{b}{q}", "USDT"),
    "okx": ("{b}-{q}", "USDT"),
    "kucoin": ("{b}-{q}", "USDT"),
    "coinbase": ("{b}-{q}", "USD"),
    "kraken": ("{b}/{q}", "USD"),
    "upbit": ("{q}-{b}", "KRW"),
    "bithumb": ("{q}-{b}", "KRW"),  # the v1 API uses Upbit's market codes
}

KRW_PER_USD = 1300


def instruments(exchange: str, count: int) -> list[Instrument]:
    """``count`` instruments for ``exchange`` (cycling through the coin list with suffixes)."""
    fmt, quote = _FORMAT[exchange]
    out = []
    for i in range(count):
        base, mid, pp, qp = _COINS[i % len(_COINS)]
        if i >= len(_COINS):
            base = f"{base}{i // len(_COINS)}"
        if quote == "KRW":
            mid, pp = mid * KRW_PER_USD, 0 if mid * KRW_PER_USD >= 1000 else 2
        out.append(Instrument(fmt.format(b=base, q=quote), pp, qp, mid=mid * SCALE))
    return out


def exchanges() -> list[str]:
    return list(_FORMAT)
