"""Helper process for the send/recv benchmarks: send or drain datagrams as fast as possible.

``python -m bench.blast send --iface ADDR --dest G:P --seconds S --method sendto|sendmmsg|xdp``
``python -m bench.blast drain --iface ADDR --dest G:P --seconds S``
Both print one JSON object (counts, elapsed, CPU seconds) on stdout. Run them inside the
topology's namespaces with ``feeder.net.nsexec``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from feeder.net.mcast import open_receiver, open_sender
from feeder.net.mmsg import make_receiver, make_sender


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def send(args: argparse.Namespace) -> dict[str, object]:
    group, port = args.dest.rsplit(":", 1)
    payload = bytes(range(256)) * (args.size // 256 + 1)
    payload = payload[: args.size]
    if args.method == "xdp":
        from xdp.transport import XdpTransport

        t = XdpTransport.open(args.iface, [(group, int(port))], mode="copy")
        name = t.name
        sent = 0
        t0, c0 = time.perf_counter(), cpu_s()
        end = t0 + args.seconds
        while time.perf_counter() < end:
            for _ in range(256):
                if not t.offer(payload, 0):
                    break
            sent += t.flush()
        t.close()
    else:
        opened = open_sender(args.iface, ttl=1, sndbuf=8 << 20, force_buffer=True)
        batch = 1 if args.method == "sendto" else args.batch
        s = make_sender(
            opened.sock,
            batch,
            max(args.size, 64),
            [(group, int(port))],
            prefer_mmsg=args.method == "sendmmsg",
        )
        name = args.method
        sent = 0
        t0, c0 = time.perf_counter(), cpu_s()
        end = t0 + args.seconds
        while time.perf_counter() < end:
            while s.free:
                s.stage(payload, 0)
            sent += s.flush()
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - c0
    return {
        "method": name,
        "sent": sent,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "pps": sent / elapsed,
        "pps_per_cpu_s": sent / cpu if cpu else 0.0,
    }


def drain(args: argparse.Namespace) -> dict[str, object]:
    group, port = args.dest.rsplit(":", 1)
    opened = open_receiver(
        group, int(port), args.iface, rcvbuf=64 << 20, force_buffer=True, blocking=False
    )
    rx = make_receiver(opened.sock, 64, 2048, prefer_mmsg=not args.plain)
    if args.ready:
        open(args.ready, "w").close()
    got = 0
    first = last = last_pc = 0.0
    end = time.monotonic() + args.seconds
    import select

    poller = select.poll()
    poller.register(opened.sock, select.POLLIN)
    while time.monotonic() < end:
        if not poller.poll(50):
            if got and time.monotonic() - last > args.idle:
                break
            continue
        while True:
            n = rx.recv(wait=False)
            if not n:
                break
            now = time.perf_counter()
            if not got:
                first = now
            got += n
            last = time.monotonic()
            last_pc = now
    span = (last_pc - first) if got > 1 else 0.0
    return {"received": got, "span_s": span, "pps": got / span if span else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["send", "drain"])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--method", default="sendmmsg", choices=["sendto", "sendmmsg", "xdp"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--plain", action="store_true", help="drain with recv_into, not recvmmsg")
    ap.add_argument("--idle", type=float, default=1.0)
    ap.add_argument("--ready")
    args = ap.parse_args()
    print(json.dumps(send(args) if args.mode == "send" else drain(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
