"""Send path pps on the veth topology: sendto vs sendmmsg vs AF_XDP, in one run.

Each method sends 64-byte datagrams from namespace a as fast as it can for a few seconds while
namespace b drains them with recvmmsg; pps is what the sender achieved, ``delivered`` what the
receiver got (loss would show as delivered < sent). Usage: ``python -m bench.send [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench.common import save, table
from bench.topo import pair
from feeder.net.topology import TwoHostTopology


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    seconds = 1.5 if args.quick else args.seconds
    if os.geteuid() != 0:
        print("bench.send needs root (network namespaces)", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with TwoHostTopology.build(f"bs{os.getpid() % 100000}") as topo:
        for i, method in enumerate(("sendto", "sendmmsg", "xdp")):
            dest = f"239.101.0.1:{42000 + i}"
            try:
                s, d = pair(topo, ["--method", method, "--size", str(args.size)], [], dest, seconds)
            except RuntimeError as e:
                rows.append({"method": method, "error": str(e).splitlines()[-1][:200]})
                continue
            rows.append(
                {
                    "method": s["method"],
                    "sent": s["sent"],
                    "pps": s["pps"],
                    "pps_per_cpu_s": s["pps_per_cpu_s"],
                    "delivered": d["received"],
                }
            )
    base = next((r["pps"] for r in rows if r.get("method") == "sendto" and "pps" in r), 0.0)
    for r in rows:
        if "pps" in r and base:
            r["ratio_vs_sendto"] = r["pps"] / base
    print(
        table(
            ["method", "sent", "pps", "pps/cpu-s", "delivered", "x sendto"],
            [
                [
                    r["method"],
                    r.get("sent", "-"),
                    r.get("pps", 0.0),
                    r.get("pps_per_cpu_s", 0.0),
                    r.get("delivered", "-"),
                    r.get("ratio_vs_sendto", 0.0),
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        if "error" in r:
            print(f"  {r['method']}: {r['error']}", file=sys.stderr)
    path = save("send", {"seconds": seconds, "size": args.size, "results": rows})
    print(f"-> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
