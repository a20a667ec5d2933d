"""Runs inside the benchmark's own cryptofeed venv (never the project's): times cryptofeed's
parse + book path over a corpus file. Prints one JSON object. Not imported by the project.

Usage: python peer_worker.py EXCHANGE FRAMES.jsonl SNAPSHOT_DIR REPEAT
"""

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    exchange, frames, snapdir, repeat = (
        sys.argv[1],
        sys.argv[2],
        Path(sys.argv[3]),
        int(sys.argv[4]),
    )
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.symbols import Symbols

    lines = Path(frames).read_text().splitlines()
    counts = {"book": 0, "trade": 0}

    async def book(b: object, ts: float) -> None:
        counts["book"] += 1

    async def trade(t: object, ts: float) -> None:
        counts["trade"] += 1

    if exchange == "okx":
        from cryptofeed.exchanges import OKX as Feed

        symbols = sorted({json.loads(x)["arg"]["instId"] for x in lines if '"arg"' in x})
        std = {s: s for s in symbols}
        kwargs = {"checksum_validation": True}
    elif exchange == "binance":
        from cryptofeed.exchanges import Binance as Feed

        symbols = sorted({json.loads(x)["data"]["s"] for x in lines})
        std = {s.replace("USDT", "-USDT"): s for s in symbols}
        kwargs = {}
    else:
        print(json.dumps({"error": f"no peer harness for {exchange}"}))
        return 0
    Symbols.set(Feed.id, std, {"instrument_type": {k: "spot" for k in std}, "tick_size": {}})

    def make() -> Any:
        feed = Feed(
            symbols=list(std),
            channels=[L2_BOOK, TRADES],
            callbacks={L2_BOOK: book, TRADES: trade},
            **kwargs,
        )
        if exchange == "binance":
            from decimal import Decimal

            from cryptofeed.types import OrderBook

            async def snapshot(pair: str) -> None:  # the corpus's REST snapshot instead of HTTP
                resp = json.loads((snapdir / f"{pair}.json").read_text(), parse_float=Decimal)
                s = feed.exchange_symbol_to_std_symbol(pair)
                feed.last_update_id[s] = resp["lastUpdateId"]
                feed._l2_book[s] = OrderBook(
                    feed.id,
                    s,
                    max_depth=feed.max_depth,
                    bids={Decimal(p): Decimal(q) for p, q in resp["bids"]},
                    asks={Decimal(p): Decimal(q) for p, q in resp["asks"]},
                )

            feed._snapshot = snapshot
        return feed

    async def once() -> float:
        feed = make()
        t0 = time.perf_counter()
        for x in lines:
            await feed.message_handler(x, None, 0.0)
        return time.perf_counter() - t0

    best = min(asyncio.run(once()) for _ in range(repeat))
    print(json.dumps({"frames": len(lines), "seconds": best, "callbacks": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
