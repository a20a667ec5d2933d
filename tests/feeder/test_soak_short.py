"""The soak (``bench/soak.py``), short: hundreds of streams through real processes, no loss.

``feeder sim`` with three exchanges x 150 symbols, ``feeder run`` subscribed to every symbol's
trades and book (900 streams), ``feeder listen`` counting on loopback. Everything sent must be
received, with no gap on either side and every book live at the end. Memory and CPU are
reported by the full soak, not asserted here.
"""

from __future__ import annotations

from bench.soak import QUICK, soak


def test_short_soak_loses_nothing() -> None:
    doc = soak(QUICK.exchanges, QUICK.symbols, rate=200, duration_s=QUICK.duration_s)
    assert doc["streams"] == len(QUICK.exchanges) * QUICK.symbols * 2
    assert doc["sent"] > 0
    assert doc["received"] == doc["sent"] and doc["loss"] == 0
    assert doc["receiver_gaps"] == 0 and doc["receiver_missing"] == 0
    assert doc["books_live"] == doc["books"] == len(QUICK.exchanges) * QUICK.symbols
    assert doc["exchange_gaps"] == 0 and doc["reconnects"] == 0
    assert doc["parse_errors"] == {}
    assert doc["ok"]
    assert doc["memory"]["rss_mb"], "the feeder's memory was never sampled"
