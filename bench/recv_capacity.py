"""Receiver capacity: how fast ``feeder listen``'s receiver empties a full socket queue.

``bench.recv`` can only offer what one Python sender produces on this VM (~0.3-0.4 Mpps), so
it cannot tell whether the receiver would keep up with more. Here the sender's speed does not
matter: N wire packets are sent over the veth pair into the receiver's socket while nothing
reads it (its buffer forced large enough to hold them all, and the kernel's RcvbufErrors are
checked to be 0), then the receiver is started and timed until it has taken every packet.
Packets/s drained is the receiver's capacity. Same run, same queue, three drains:

- ``recvmmsg only``: the batch receive with RX timestamps and nothing else (the floor);
- ``receiver``: ``feeder listen``'s path (header decode, latency histogram, gap tracking);
- ``receiver + books``: the same with ``--books`` (every message decoded, books rebuilt).

Each packet carries one book delta, the worst case per packet (a feeder fills packets).
Usage: ``python -m bench.recv_capacity [--quick] [--packets N]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import save, table
from feeder.listen.receiver import Receiver, ReceiverConfig
from feeder.net import snmp
from feeder.net.mmsg import MmsgSender
from feeder.net.topology import TwoHostTopology
from feeder.wire import BID, BookAction, PacketEncoder

GROUP = "239.103.0.1"
# One 1-message packet is charged ~1.3 KB of receive buffer (skb truesize): room for all.
RCVBUF = 1 << 30


def encode_packets(n: int, session: int = 7, channel: int = 1) -> list[bytes]:
    """``n`` consecutive data packets of one book delta each, sequences 1..n."""
    enc = PacketEncoder(session, channel, 1400)
    buf = bytearray(1400)
    out = []
    now = time.time_ns()
    for seq in range(1, n + 1):
        enc.begin(buf, seq)
        price = 100_000_000 + (seq % 50) * 1_000_000
        enc.add_book_delta(1, BID, BookAction.UPDATE, 0, price, seq, seq, now, now)
        out.append(bytes(enc.finish(now)))
    return out


def fill(topo: TwoHostTopology, port: int, packets: list[bytes]) -> None:
    """Send every packet from namespace a (the receiver is not reading yet)."""
    with topo.a.socket() as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(topo.a.address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        tx = MmsgSender(sock, 64, 1472, [(GROUP, port)])
        for i in range(0, len(packets), 64):
            for p in packets[i : i + 64]:
                tx.stage(p)
            while tx.pending:
                tx.flush()
                if tx.blocked:
                    time.sleep(0.0005)
    time.sleep(0.2)  # let the last datagrams reach the socket


def drain(topo: TwoHostTopology, port: int, packets: list[bytes], mode: str) -> dict[str, Any]:
    cfg = ReceiverConfig(
        ((GROUP, port),), topo.b.address, rcvbuf=RCVBUF, netns=topo.b.netns, books=mode == "books"
    )
    rx = Receiver(cfg)
    try:
        before = snmp.read_snmp_in(topo.b.netns)
        fill(topo, port, packets)
        lost = snmp.udp_losses(snmp.diff(before, snmp.read_snmp_in(topo.b.netns)))
        n = len(packets)
        take: Callable[[], int]
        if mode == "raw":
            batch = rx._rx[0]  # the receiver's own batch receiver, without the processing
            take = lambda: batch.recv(wait=False)  # noqa: E731
        else:
            take = lambda: rx.poll(0)  # noqa: E731
        got = 0
        t0 = time.perf_counter()
        deadline = t0 + 60
        while got < n and time.perf_counter() < deadline:
            got += take()
        elapsed = time.perf_counter() - t0
        return {
            "mode": mode,
            "packets": n,
            "drained": got,
            "seconds": round(elapsed, 4),
            "pps": round(got / elapsed) if elapsed else 0,
            "ns_per_packet": round(elapsed * 1e9 / got) if got else 0,
            "rcvbuf_errors": lost.get("RcvbufErrors", 0),
            "gaps": sum(c.gaps for c in rx.tracker.channels.values()) if mode != "raw" else 0,
        }
    finally:
        rx.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.recv_capacity needs root (network namespaces)", file=sys.stderr)
        return 2
    n = 50_000 if args.quick else args.packets
    packets = encode_packets(n)
    rows = []
    with TwoHostTopology.build(f"bc{os.getpid() % 100000}") as topo:
        for i, mode in enumerate(("raw", "receiver", "books")):
            rows.append(drain(topo, 44000 + i, packets, mode))
    base = rows[0]["pps"] or 1
    names = {"raw": "recvmmsg only", "receiver": "receiver", "books": "receiver + books"}
    print(
        table(
            ["drain", "packets", "drained", "pps", "ns/packet", "x recvmmsg", "RcvbufErrors"],
            [
                [
                    names[r["mode"]],
                    r["packets"],
                    r["drained"],
                    r["pps"],
                    r["ns_per_packet"],
                    f"{r['pps'] / base:.2f}",
                    r["rcvbuf_errors"],
                ]
                for r in rows
            ],
        )
    )
    out = save("recv_capacity", {"packets": n, "results": rows})
    print(f"(a full queue emptied; 1 book delta per packet) -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
