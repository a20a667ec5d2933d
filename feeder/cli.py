"""``feeder demo | listen``: argument parsing and exit codes; the work lives in the modules.

Exit codes: 0 done; 1 the run found a problem (gaps, receiver failure); 2 usage or setup error
(a message says what was wrong and how to fix it; no traceback for user mistakes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _channel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--group", default="239.100.0.1", help="first multicast group (default %(default)s)"
    )
    p.add_argument("--port", type=int, default=31001, help="first UDP port (default %(default)s)")
    p.add_argument("--channels", type=int, default=4, help="channels (default %(default)s)")
    p.add_argument(
        "--single-port",
        action="store_true",
        help="all channels on one group:port (channel id in the header tells them apart)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feeder", description="Market-data feeder: publish and receive binary multicast."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what the feeder decides")
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser(
        "demo", help="two-host demo over veth (loopback without root), with a report"
    )
    d.add_argument(
        "--duration", type=float, default=5.0, help="seconds of traffic (default %(default)s)"
    )
    d.add_argument(
        "--rate", type=int, default=20_000, help="messages per second (default %(default)s)"
    )
    d.add_argument(
        "--send-path",
        choices=["auto", "udp", "udp-sendto"],
        default="auto",
        help="transport: auto (best available), udp (kernel sendmmsg), udp-sendto",
    )
    d.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _channel_args(d)

    ls = sub.add_parser("listen", help="join the groups, track sequences, report gaps and latency")
    ls.add_argument(
        "--iface", required=True, metavar="ADDR", help="address of the receiving interface"
    )
    ls.add_argument(
        "--dest",
        action="append",
        default=[],
        metavar="GROUP:PORT",
        help="a group:port to join (repeatable); default: from --group/--port/--channels",
    )
    _channel_args(ls)
    ls.add_argument("--count", type=int, help="stop after N messages")
    ls.add_argument("--duration", type=float, help="stop after S seconds")
    ls.add_argument(
        "--until-end", action="store_true", help="stop when every channel sent end-of-session"
    )
    ls.add_argument("--rcvbuf", type=int, default=32 << 20, help="SO_RCVBUF request (bytes)")
    ls.add_argument("--json", action="store_true", help="JSON summary on stdout at exit")
    ls.add_argument("--quiet", action="store_true", help="no periodic status line")
    ls.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    from feeder.demo import DemoConfig, render, run_demo

    cfg = DemoConfig(
        duration_s=args.duration,
        rate=args.rate,
        channels=args.channels,
        group=args.group,
        port=args.port,
        single_port=args.single_port,
        send_path=args.send_path,
    )
    if cfg.duration_s <= 0 or cfg.rate <= 0:
        raise ValueError("--duration and --rate must be positive")
    report = run_demo(cfg)
    print(json.dumps(report, indent=2) if args.json else render(report))
    lost = report["gaps"] or report["received"] != report["sent"]
    return EXIT_PROBLEM if lost else EXIT_OK


def _status_line(rx: object) -> None:
    from feeder.listen.receiver import Receiver

    assert isinstance(rx, Receiver)
    s = rx.latency_ns.summary()
    print(
        f"rx {rx.messages} msgs, {rx.datagrams} pkts, gaps "
        f"{sum(c.gaps for c in rx.tracker.channels.values())}, dup "
        f"{sum(c.duplicates for c in rx.tracker.channels.values())}, rejected "
        f"{sum(rx.rejects.values())}, latency µs p50 {s.p50 / 1e3:.1f} p99 {s.p99 / 1e3:.1f} "
        f"max {s.max / 1e3:.1f}",
        file=sys.stderr,
    )


def cmd_listen(args: argparse.Namespace) -> int:
    from feeder.listen.receiver import Receiver, ReceiverConfig, parse_destinations
    from feeder.publish.channels import ChannelMap

    if args.dest:
        dests = parse_destinations(args.dest)
    else:
        make = ChannelMap.single if args.single_port else ChannelMap.multi
        dests = make(args.group, args.port, args.channels).destinations
    rx = Receiver(ReceiverConfig(destinations=dests, iface_addr=args.iface, rcvbuf=args.rcvbuf))
    try:
        for b in rx.buffers:
            if b.capped:
                print(f"feeder listen: warning: {b}", file=sys.stderr)
        if args.ready_file:
            args.ready_file.write_text(str(os.getpid()))
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the run, still reports
            rx.run(
                count=args.count,
                duration_s=args.duration,
                until_end=args.until_end,
                on_tick=None if args.quiet else _status_line,
            )
        summary = rx.summary()
    finally:
        rx.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _status_line(rx)
    return EXIT_PROBLEM if summary["gaps"] else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="feeder: %(message)s"
    )
    handler = {"demo": cmd_demo, "listen": cmd_listen}[args.cmd]
    try:
        return handler(args)
    except (ValueError, OSError) as e:
        # Bad arguments, absent interfaces, missing privileges: a message, not a traceback.
        if os.environ.get("FEEDER_DEBUG"):
            raise
        print(f"feeder {args.cmd}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_PROBLEM
