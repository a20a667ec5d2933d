"""Normalize cost per exchange: ``feeder replay``'s path vs ``orjson.loads`` on the same lines.

For each exchange: a generated corpus (the simulator's exact frames), timed best-of-N through
(1) ``orjson.loads`` alone — the floor any Python feeder pays —, (2) the adapter's parse into a
null sink, (3) parse + books, (4) the full replay (parse -> book -> encode -> null sink, with
sequence checks and checksums on). The ratio full/orjson is the figure that stays stable on a
noisy machine. The adapters remember text -> integer conversions (prices and sizes recur);
every timed pass starts with those memos cleared, so it is one cold pass over the data, not a
replay of values already converted. Usage: ``python -m bench.pipeline [--events N] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from bench.common import best_of, save, table
from feeder.exchanges import ADAPTERS, adapter_class
from feeder.exchanges.base import BookUpdate
from feeder.normalize.decimal import clear_memos
from feeder.publish.channels import ChannelMap
from feeder.replay import NullTransport, replay
from feeder.sim.corpus import generate
from feeder.sim.protocols import PROTOCOLS


class _NullSink:
    def trade(self, *a: object) -> None:
        pass

    def book(self, symbol: str, update: BookUpdate) -> None:
        pass

    def control(self, kind: str, detail: str) -> None:
        pass


def bench_exchange(exchange: str, events: int, repeat: int) -> dict[str, Any]:
    corpus = generate(exchange, symbols=4, events=events)
    lines = corpus.lines
    n = len(lines)
    loads = orjson.loads
    t_json = best_of(lambda: [loads(x) for x in lines], repeat)
    adapter = adapter_class(exchange)()
    sink = _NullSink()

    def parse_only() -> None:
        clear_memos()  # every timed pass starts cold: one pass over the data, not a replay
        for x in lines:
            adapter.parse(x, 0, sink)

    t_parse = best_of(parse_only, repeat)
    snaps = {}
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    for sym, body in corpus.snapshots.items():
        f = tmp / f"{abs(hash(sym))}.json"
        f.write_bytes(body)
        snaps[sym] = f
    chmap = ChannelMap.single("239.100.0.1", 31001, 1)
    symbols = list(corpus.books)
    reports = []

    def full() -> None:
        clear_memos()
        reports.append(replay(exchange, lines, snaps, symbols, NullTransport(), chmap))

    t_full = best_of(full, repeat)
    last = reports[-1]
    gaps = sum(s["gaps"] for s in last["symbols"].values())
    return {
        "exchange": exchange,
        "frames": n,
        "wire_messages": last["wire_messages"],
        "orjson_ns_per_frame": t_json / n * 1e9,
        "parse_ns_per_frame": t_parse / n * 1e9,
        "full_ns_per_frame": t_full / n * 1e9,
        "full_frames_per_s": n / t_full,
        "full_msgs_per_s": last["wire_messages"] / t_full,
        "ratio_parse_vs_orjson": t_parse / t_json,
        "ratio_full_vs_orjson": t_full / t_json,
        "gaps": gaps,
        "parse_errors": last["parse_errors"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small corpus, 2 repeats")
    ap.add_argument("--exchange", action="append", default=[])
    args = ap.parse_args(argv)
    events, repeat = (3000, 2) if args.quick else (args.events, args.repeat)
    names = args.exchange or sorted(set(ADAPTERS) & set(PROTOCOLS))
    rows = [bench_exchange(name, events, repeat) for name in names]
    print(
        table(
            [
                "exchange",
                "frames",
                "orjson ns",
                "parse ns",
                "full ns",
                "frames/s",
                "wire msgs/s",
                "full/orjson",
            ],
            [
                [
                    r["exchange"],
                    r["frames"],
                    r["orjson_ns_per_frame"],
                    r["parse_ns_per_frame"],
                    r["full_ns_per_frame"],
                    r["full_frames_per_s"],
                    r["full_msgs_per_s"],
                    r["ratio_full_vs_orjson"],
                ]
                for r in rows
            ],
        )
    )
    path = save("pipeline", {"events": events, "repeat": repeat, "results": rows})
    print(
        f"(ns per frame, best of {repeat}; full = parse -> book -> encode -> null sink, "
        f"sequence checks and checksums on) -> {path}",
        file=sys.stderr,
    )
    bad = [r["exchange"] for r in rows if r["gaps"] or r["parse_errors"]]
    if bad:
        print(f"corpus replay had gaps or parse errors: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
