"""Tick-to-wire and end-to-end latency of the demo at fixed rates, with and without
self-tuning, over kernel UDP and AF_XDP.

Each cell runs ``feeder demo --json`` (simulator -> feeder run -> veth -> receiver) with one
exchange (binance, 4 symbols) at a target rate of market messages per second, and reports
tick-to-wire (exchange frame read -> kernel TX timestamp; on AF_XDP, which has no kernel TX
stamp, the time the frame was handed to the kernel) and end-to-end (packet send time ->
receiver's kernel RX timestamp) percentiles in µs. ``flush µs`` is ``feeder run
--flush-us``: 50 (the default) lets a burst of frames share packets for up to 50 µs, 0 sends
after every frame.
Usage: ``python -m bench.latency [--quick] [--rates 1000,10000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from bench.common import save, table

MSGS_PER_EVENT = 1.6  # the simulated market: ~1.6 wire messages per event (measured)


# (send path, self-tuning, --flush-us): the default, the lowest-latency flush, untuned, AF_XDP.
CELLS: tuple[tuple[str, bool, int], ...] = (
    ("udp", True, 50),
    ("udp", True, 0),
    ("udp", False, 50),
    ("xdp", True, 50),
    ("xdp", False, 50),
)


def run_cell(rate: int, tune: bool, path: str, duration: float, flush_us: int) -> dict[str, Any]:
    events = max(1, int(rate / MSGS_PER_EVENT))
    argv = [
        sys.executable,
        "-m",
        "feeder",
        "demo",
        "--json",
        "--exchanges",
        "binance",
        "--symbols",
        "4",
        "--rate",
        str(events),
        "--duration",
        str(duration),
        "--send-path",
        path,
        "--flush-us",
        str(flush_us),
    ]
    if not tune:
        argv.append("--no-tune")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if proc.returncode not in (0, 1):
        return {"error": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr else "failed"}
    r = json.loads(proc.stdout)
    return {
        "send_path": r["send_path"],
        "msgs_per_s": r["rate_msgs_per_s"],
        "gaps": r["gaps"],
        "tick_to_wire_us": r.get("tick_to_wire_us", {}),
        "end_to_end_us": r["latency_us"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,10000,50000")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--quick", action="store_true", help="one rate, short runs")
    args = ap.parse_args(argv)
    rates = [1000] if args.quick else [int(r) for r in args.rates.split(",")]
    duration = 3.0 if args.quick else args.duration
    rows: list[dict[str, Any]] = []
    for rate in rates:
        for path, tune, flush_us in CELLS:
            cell = run_cell(rate, tune, path, duration, flush_us)
            rows.append(
                {
                    "target_msgs_per_s": rate,
                    "path": path,
                    "self_tune": tune,
                    "flush_us": flush_us,
                    **cell,
                }
            )

    def pct(d: dict[str, Any], k: str) -> object:
        return d.get(k, "-") if d and d.get("count") else "-"

    print(
        table(
            [
                "target/s",
                "path",
                "tuned",
                "flush µs",
                "msgs/s",
                "gaps",
                "t2w p50",
                "t2w p99",
                "t2w p99.9",
                "e2e p50",
                "e2e p99",
                "e2e p99.9",
            ],
            [
                [
                    r["target_msgs_per_s"],
                    r.get("send_path", r["path"]),
                    "yes" if r["self_tune"] else "no",
                    r["flush_us"],
                    r.get("msgs_per_s", "-"),
                    r.get("gaps", "-"),
                    pct(r.get("tick_to_wire_us", {}), "p50"),
                    pct(r.get("tick_to_wire_us", {}), "p99"),
                    pct(r.get("tick_to_wire_us", {}), "p999"),
                    pct(r.get("end_to_end_us", {}), "p50"),
                    pct(r.get("end_to_end_us", {}), "p99"),
                    pct(r.get("end_to_end_us", {}), "p999"),
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        if "error" in r:
            print(f"  {r['target_msgs_per_s']}/s {r['path']}: {r['error']}", file=sys.stderr)
    out = save("latency", {"duration_s": duration, "results": rows})
    print(
        f"(µs; t2w = exchange frame read -> kernel TX timestamp, e2e = send time -> receiver "
        f"kernel RX timestamp) -> {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
