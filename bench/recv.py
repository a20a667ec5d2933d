"""Receiver pps on the veth topology, and whether the kernel dropped anything (RcvbufErrors).

The fastest sender available (AF_XDP copy, else sendmmsg) blasts 64-byte datagrams from
namespace a; namespace b drains with recvmmsg (the receiver's path) and, for comparison, with
one recv_into per datagram. Drops come from /proc/net/snmp of the receiving namespace.
Usage: ``python -m bench.recv [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench.common import save, table
from bench.topo import pair
from feeder.net import snmp
from feeder.net.topology import TwoHostTopology


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    seconds = 1.5 if args.quick else args.seconds
    if os.geteuid() != 0:
        print("bench.recv needs root (network namespaces)", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with TwoHostTopology.build(f"br{os.getpid() % 100000}") as topo:
        for i, (drain, extra) in enumerate((("recvmmsg", []), ("recv_into", ["--plain"]))):
            for method in ("xdp", "sendmmsg"):
                before = snmp.read_snmp_in(topo.b.netns)
                try:
                    s, d = pair(
                        topo, ["--method", method], extra, f"239.102.0.1:{43000 + i}", seconds
                    )
                except RuntimeError:
                    continue  # no AF_XDP here: fall back to the next sender
                lost = snmp.udp_losses(snmp.diff(before, snmp.read_snmp_in(topo.b.netns)))
                rows.append(
                    {
                        "receiver": drain,
                        "sender": s["method"],
                        "sent": s["sent"],
                        "received": d["received"],
                        "rx_pps": d["pps"],
                        "rcvbuf_errors": lost.get("RcvbufErrors", 0),
                        "drops": lost,
                    }
                )
                break
    print(
        table(
            ["receiver", "sender", "sent", "received", "rx pps", "RcvbufErrors"],
            [
                [
                    r["receiver"],
                    r["sender"],
                    r["sent"],
                    r["received"],
                    r["rx_pps"],
                    r["rcvbuf_errors"],
                ]
                for r in rows
            ],
        )
    )
    path = save("recv", {"seconds": seconds, "results": rows})
    print(f"-> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
