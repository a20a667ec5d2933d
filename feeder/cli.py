"""``feeder demo | listen``: argument parsing and exit codes; the work lives in the modules.

Exit codes: 0 done; 1 the run found a problem (gaps, receiver failure); 2 usage or setup error
(a message says what was wrong and how to fix it; no traceback for user mistakes).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _line_b_args(p: argparse.ArgumentParser, *, iface: bool = True) -> None:
    p.add_argument(
        "--group-b",
        metavar="GROUP",
        help="A/B feeds: line B's first multicast group (every packet is sent on both lines)",
    )
    p.add_argument(
        "--port-b", type=int, metavar="PORT", help="line B's first port (default: --port)"
    )
    if iface:
        p.add_argument("--iface-b", metavar="ADDR", help="line B's interface (default: --iface)")


def _addr_port(spec: str, what: str) -> tuple[str, int]:
    from feeder.net import validate

    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{what} {spec!r}: expected ADDR:PORT, e.g. 10.0.0.5:31900")
    return str(validate.ipv4(host, what)), validate.port(int(port))


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
        "--rate",
        type=int,
        default=None,
        help="events/s per exchange (sim, default 300) or messages/s (synthetic, default 20000)",
    )
    d.add_argument(
        "--send-path",
        choices=["auto", "xdp", "udp", "udp-sendto"],
        default="auto",
        help="transport: auto (AF_XDP if it works here, else kernel UDP), xdp (AF_XDP "
        "required), udp (kernel sendmmsg), udp-sendto",
    )
    d.add_argument("--json", action="store_true", help="print the report as one JSON object")
    d.add_argument(
        "--source",
        choices=["sim", "synthetic"],
        default="sim",
        help="sim: simulated exchanges through feeder run (default); synthetic: spine only",
    )
    d.add_argument("--no-tune", action="store_true", help="run the feeder without self-tuning")
    d.add_argument(
        "--flush-us", type=int, metavar="US", help="passed to feeder run (batching delay bound)"
    )
    d.add_argument(
        "--sim-fault",
        action="append",
        default=[],
        metavar="EXCHANGE:KIND[@EVENTS]",
        help="have the simulator inject a fault (repeatable), e.g. binance:skip_sequence@100",
    )
    d.add_argument(
        "--faults",
        nargs="*",
        metavar="NAME",
        help="run the fault matrix (all faults, or the NAMEs given); the JSON gains "
        "a faults list: name, injected, detected, recovered, ok",
    )
    d.add_argument("--exchanges", default="", help="comma-separated (default: all simulated)")
    d.add_argument(
        "--symbols", type=int, default=3, help="symbols per exchange (default %(default)s)"
    )
    _channel_args(d)
    _line_b_args(d, iface=False)
    d.add_argument(
        "--no-ab", action="store_true", help="line A only (default: A/B feeds, line B on --group-b)"
    )
    d.add_argument(
        "--no-recovery",
        action="store_true",
        help="no re-request service (default: the feeder answers, the receiver asks)",
    )
    _drop_args(d)

    r = sub.add_parser("run", help="connect to exchanges and publish their books and trades")
    r.add_argument("--config", metavar="FILE", help="TOML config (exchanges, symbols, channels)")
    r.add_argument(
        "--exchange",
        action="append",
        default=[],
        metavar="NAME",
        help="exchange to run (repeatable); with --symbols for a quick run",
    )
    r.add_argument("--symbols", metavar="A,B", help="comma-separated symbols for --exchange")
    r.add_argument(
        "--sim",
        metavar="URL",
        help="use the simulator at URL (http://HOST:PORT) instead of the real exchanges",
    )
    r.add_argument("--iface", metavar="ADDR", help="address of the sending interface")
    r.add_argument(
        "--send-path",
        choices=["auto", "xdp", "udp", "udp-sendto"],
        help="transport: auto (AF_XDP zero-copy, copy, then kernel UDP), xdp (AF_XDP required;"
        " kernel UDP only if it fails while running), udp, udp-sendto (default: config, auto)",
    )
    r.add_argument("--duration", type=float, help="stop after S seconds")
    r.add_argument("--top-n", type=int, help="also publish the top N levels after each update")
    r.add_argument(
        "--no-tune",
        action="store_true",
        help="no self-tuning (mlockall, CPU pinning): for comparisons",
    )
    r.add_argument("--cpu", type=int, help="pin the hot loop to this CPU (default: first isolated)")
    r.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    r.add_argument(
        "--sender-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="fault injection: create the sender S seconds after the exchanges start",
    )
    r.add_argument(
        "--xdp-unavailable",
        metavar="REASON",
        help="fault injection: treat AF_XDP as unavailable for REASON",
    )
    r.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        help="address for /metrics (default %(default)s; 0.0.0.0 exposes it)",
    )
    r.add_argument("--ttl", type=int, help="multicast TTL (default: config, 1)")
    r.add_argument(
        "--allow-ttl",
        action="store_true",
        help="allow a TTL above 1 (the feed then crosses routers)",
    )
    r.add_argument("--json", action="store_true", help="JSON report on stdout at exit")
    _channel_args(r)
    _line_b_args(r)
    r.add_argument(
        "--recovery-listen",
        metavar="ADDR:PORT",
        help="answer receivers' re-requests for lost packets on this unicast address",
    )
    r.add_argument(
        "--allow-any-recovery-addr",
        action="store_true",
        help="allow --recovery-listen 0.0.0.0 (answers re-requests on every interface)",
    )
    r.add_argument(
        "--flush-us",
        type=int,
        metavar="US",
        help="inside a burst of frames, send once the oldest unsent frame is this old "
        "(default 50; 0: after every frame; config feeder.flush_us)",
    )
    r.add_argument(
        "--recovery-buffer",
        type=int,
        metavar="PACKETS",
        help="packets kept per channel for re-requests (default 2048, config "
        "recovery.buffer_packets); size it for the longest receiver stall to be repaired",
    )

    sm = sub.add_parser("sim", help="serve simulated exchanges (real protocols) on loopback")
    sm.add_argument("--exchanges", default="binance", help="comma-separated (default %(default)s)")
    sm.add_argument(
        "--symbols", type=int, default=4, help="symbols per exchange (default %(default)s)"
    )
    sm.add_argument("--rate", type=float, default=200, help="market events/s per exchange")
    sm.add_argument("--host", default="127.0.0.1")
    sm.add_argument("--port", type=int, default=0, help="TCP port (0: any free one)")
    sm.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="EXCHANGE:KIND[@EVENTS]",
        help="inject a fault, e.g. okx:corrupt_checksum@300 (repeatable)",
    )
    sm.add_argument("--duration", type=float, help="stop after S seconds")
    sm.add_argument("--seed", type=int, default=1)
    sm.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)

    rp = sub.add_parser("replay", help="recorded raw frames through parse -> book -> encode")
    rp.add_argument("--exchange", required=True, help="exchange the frames come from")
    rp.add_argument(
        "--input",
        required=True,
        type=Path,
        metavar="FILE.jsonl",
        help="one WebSocket text frame per line, as the exchange sent it",
    )
    rp.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="SYMBOL=FILE",
        help="REST depth snapshot for SYMBOL, as the exchange's REST API returns it",
    )
    rp.add_argument("--sink", default="null", help="null (default) or udp://GROUP:PORT")
    rp.add_argument("--iface", default="127.0.0.1", help="sending interface for a udp sink")
    rp.add_argument("--json", action="store_true", help="JSON summary on stdout")

    rc = sub.add_parser("record", help="capture raw frames from an exchange (or the simulator)")
    rc.add_argument("--exchange", required=True)
    rc.add_argument("--symbols", required=True, metavar="A,B")
    rc.add_argument("--sim", metavar="URL", help="record from the simulator at URL")
    rc.add_argument("--output", required=True, type=Path, metavar="FILE.jsonl")
    rc.add_argument("--duration", type=float, default=10.0)
    rc.add_argument("--count", type=int, help="stop after N frames")

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
    ls.add_argument(
        "--books",
        action="store_true",
        help="decode every message and rebuild the books (top 10 in the JSON summary)",
    )
    _line_b_args(ls)
    ls.add_argument(
        "--dest-b",
        action="append",
        default=[],
        metavar="GROUP:PORT",
        help="a line-B group:port to join (repeatable); default: from --group-b/--port-b",
    )
    ls.add_argument(
        "--recovery",
        metavar="ADDR:PORT",
        help="the feeder's re-request address: ask it for what is lost (feeder run "
        "--recovery-listen)",
    )
    _drop_args(ls)
    ls.add_argument(
        "--pause-after",
        type=int,
        metavar="N",
        help="fault injection: stop reading for --pause-s after N datagrams",
    )
    ls.add_argument("--pause-s", type=float, default=0.0, metavar="S")
    ls.add_argument(
        "--min-sessions",
        type=int,
        default=1,
        metavar="N",
        help="with --until-end: wait for N sessions to end (a feeder restart)",
    )
    ls.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    return p


def _drop_args(p: argparse.ArgumentParser) -> None:
    for line in ("a", "b"):
        p.add_argument(
            f"--drop-{line}",
            metavar="M:R",
            help=f"inject loss on line {line.upper()}: the kernel drops data packets whose "
            "first sequence number is R modulo M (a socket filter at the receiver)",
        )


def cmd_demo(args: argparse.Namespace) -> int:
    from feeder.demo import DemoConfig, render, run_demo
    from feeder.listen.dropfilter import DropRule

    rate = args.rate if args.rate is not None else (300 if args.source == "sim" else 20_000)
    cfg = DemoConfig(
        duration_s=args.duration,
        rate=rate,
        channels=args.channels,
        group=args.group,
        port=args.port,
        single_port=args.single_port,
        send_path=args.send_path,
        source=args.source,
        symbols=args.symbols,
        exchanges=tuple(e for e in args.exchanges.split(",") if e),
        sim_faults=tuple(args.sim_fault),
        faults=None if args.faults is None else tuple(args.faults),
        self_tune=not args.no_tune,
        flush_us=args.flush_us,
        group_b=None if args.no_ab else (args.group_b or "239.200.0.1"),
        port_b=args.port_b,
        recovery=not args.no_recovery,
        drop_a=DropRule.parse(args.drop_a) if args.drop_a else None,
        drop_b=DropRule.parse(args.drop_b) if args.drop_b else None,
    )
    if cfg.duration_s <= 0 or cfg.rate <= 0:
        raise ValueError("--duration and --rate must be positive")
    if cfg.drop_b is not None and cfg.group_b is None:
        raise ValueError("--drop-b needs line B: leave out --no-ab")
    report = run_demo(cfg)
    print(json.dumps(report, indent=2) if args.json else render(report))
    lost = report["missing_messages"] or report["received"] != report["sent"]
    failed = [f for f in report.get("faults", []) if not f["ok"]]
    return EXIT_PROBLEM if lost or failed else EXIT_OK


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


def _run_config(args: argparse.Namespace) -> object:
    import dataclasses
    import urllib.request

    from feeder.config import ExchangeConfig, FeederConfig, check_symbols, load_config
    from feeder.exchanges import adapter_class
    from feeder.net.validate import port as validate_port

    cfg = (
        load_config(args.config)
        if args.config
        else FeederConfig(
            group=args.group, port=args.port, channels=args.channels, single_port=args.single_port
        )
    )
    if args.exchange:
        for name in args.exchange:
            adapter_class(name)  # unknown exchange: a clear error now, not after connecting
        symbols = tuple(s for s in (args.symbols or "").split(",") if s)
        exchanges = tuple(
            ExchangeConfig(name, symbols, (i % cfg.channels) + 1)
            for i, name in enumerate(args.exchange)
        )
        cfg = dataclasses.replace(cfg, exchanges=exchanges)
    if args.sim:
        with urllib.request.urlopen(f"{args.sim.rstrip('/')}/control/info", timeout=5) as r:
            info: dict[str, Any] = json.loads(r.read())["exchanges"]
        if not cfg.exchanges:
            cfg = dataclasses.replace(
                cfg,
                exchanges=tuple(
                    ExchangeConfig(name, tuple(e["symbols"]), (i % cfg.channels) + 1)
                    for i, (name, e) in enumerate(info.items())
                ),
            )
        fixed = []
        for ex in cfg.exchanges:
            if ex.name not in info:
                raise ValueError(f"the simulator at {args.sim} does not serve {ex.name}")
            e = info[ex.name]
            fixed.append(
                dataclasses.replace(
                    ex,
                    url=e["url"],
                    rest_url=e["rest_url"],
                    symbols=ex.symbols or tuple(e["symbols"]),
                )
            )
        cfg = dataclasses.replace(cfg, exchanges=tuple(fixed))
    for ex in cfg.exchanges:
        if not ex.symbols:
            raise ValueError(f"{ex.name}: no symbols (give --symbols A,B)")
        check_symbols(ex.name, ex.symbols, f"--symbols for {ex.name}")
    if args.iface:
        cfg = dataclasses.replace(cfg, interface=args.iface)
    if args.ttl is not None:
        cfg = dataclasses.replace(cfg, ttl=args.ttl)
    if args.allow_ttl:
        cfg = dataclasses.replace(cfg, allow_ttl_above_1=True)
    if args.send_path:
        cfg = dataclasses.replace(cfg, send_path=args.send_path)
    if args.no_tune:
        cfg = dataclasses.replace(cfg, self_tune=False)
    if args.flush_us is not None:
        if not 0 <= args.flush_us <= 1_000_000:
            raise ValueError(f"--flush-us {args.flush_us}: give 0 .. 1000000 µs")
        cfg = dataclasses.replace(cfg, flush_us=args.flush_us)
    if args.sender_delay < 0:
        raise ValueError("--sender-delay must be >= 0")
    cfg = dataclasses.replace(
        cfg, sender_delay_s=args.sender_delay, xdp_unavailable=args.xdp_unavailable
    )
    if args.metrics_port is not None:
        validate_port(args.metrics_port)
        cfg = dataclasses.replace(
            cfg, metrics_port=args.metrics_port, metrics_addr=args.metrics_addr
        )
    if args.cpu is not None:
        if args.cpu not in os.sched_getaffinity(0):
            raise ValueError(f"--cpu {args.cpu}: not one of this process's CPUs")
        cfg = dataclasses.replace(cfg, cpu=args.cpu)
    if args.top_n is not None:
        if not 0 <= args.top_n <= 50:
            raise ValueError(f"--top-n {args.top_n}: use 0 (off) .. 50")
        cfg = dataclasses.replace(cfg, top_n=args.top_n)
    return _lines_and_recovery(args, cfg)


def _lines_and_recovery(args: argparse.Namespace, cfg: Any) -> object:
    """--group-b/--port-b/--iface-b and --recovery-listen over the config, checked."""
    import dataclasses

    from feeder.config import check_lines_and_recovery

    if args.group_b is not None:
        cfg = dataclasses.replace(cfg, group_b=args.group_b)
    if args.port_b is not None:
        cfg = dataclasses.replace(cfg, port_b=args.port_b)
    if args.iface_b is not None:
        cfg = dataclasses.replace(cfg, interface_b=args.iface_b)
    if args.recovery_listen:
        addr, port = _addr_port(args.recovery_listen, "--recovery-listen")
        cfg = dataclasses.replace(cfg, recovery_address=addr, recovery_port=port)
    if args.allow_any_recovery_addr:
        cfg = dataclasses.replace(cfg, allow_any_recovery_address=True)
    if args.recovery_buffer is not None:
        cfg = dataclasses.replace(cfg, recovery_buffer_packets=args.recovery_buffer)
    check_lines_and_recovery(cfg)
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from feeder.config import FeederConfig, check_exposure
    from feeder.privileges import drop_for
    from feeder.runtime.app import FeederApp

    cfg = _run_config(args)
    assert isinstance(cfg, FeederConfig)
    check_exposure(cfg)
    # First, while this is the only thread and before any socket: keep only what cfg needs.
    privileges = drop_for(cfg)
    print(f"feeder run: {privileges.summary()}", file=sys.stderr)
    app = FeederApp(cfg)
    report = _event_loop_run(app.run(args.duration))
    report["privileges"] = privileges.as_json()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        exchanges: dict[str, Any] = report["exchanges"]  # type: ignore[assignment]
        for name, ex in exchanges.items():
            print(
                f"{name}: {ex['messages']} messages, {ex['resyncs']} resyncs, "
                f"{ex['reconnects']} reconnects, parse errors {ex['parse_errors']}",
                file=sys.stderr,
            )
    del asyncio
    return EXIT_OK


def _event_loop_run(coro: object) -> dict[str, object]:
    """Run on uvloop when it is installed (faster loop), else the stdlib loop."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def cmd_sim(args: argparse.Namespace) -> int:
    from feeder.sim.run import build, serve

    names = [n.strip() for n in args.exchanges.split(",") if n.strip()]
    sim = build(names, args.symbols, args.rate, args.fault, args.seed)
    _event_loop_run(serve(sim, args.host, args.port, args.duration, args.ready_file))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from feeder.replay import discover_symbols, parse_sink, replay

    try:
        lines = args.input.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"--input {args.input}: {e.strerror or e}") from e
    snapshots = {}
    for spec in args.snapshot:
        sym, sep, file = spec.partition("=")
        if not sep or not sym or not file:
            raise ValueError(f"--snapshot {spec!r}: use SYMBOL=FILE")
        if not Path(file).is_file():
            raise ValueError(f"--snapshot {spec!r}: {file} is not a file")
        snapshots[sym] = Path(file)
    symbols = discover_symbols(args.exchange, lines)
    transport, chmap = parse_sink(args.sink, args.iface)
    report = replay(args.exchange, lines, snapshots, symbols, transport, chmap)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['messages']} frames in {report['elapsed_s']:.3f} s "
            f"({report['msgs_per_s']:.0f}/s); parse errors {report['parse_errors']}"
        )
        for sym, st in report["symbols"].items():
            print(
                f"  {sym}: {st['trades']} trades ({st['traded_qty']}), {st['book_updates']} "
                f"book updates, {st['gaps']} gaps, {st['resyncs']} resyncs, {st['state']}"
            )
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    from feeder.record import record

    symbols = [s for s in args.symbols.split(",") if s]
    n = _event_loop_run(
        record(args.exchange, symbols, args.output, args.sim, args.duration, args.count)
    )
    print(f"recorded {n['frames']} frames to {args.output}", file=sys.stderr)
    for sym, file in n["snapshots"].items():  # type: ignore[attr-defined]
        print(f"  snapshot {sym}: {file}  (replay with --snapshot {sym}={file})", file=sys.stderr)
    return EXIT_OK


def cmd_listen(args: argparse.Namespace) -> int:
    from feeder.listen.dropfilter import DropRule
    from feeder.listen.receiver import Receiver, ReceiverConfig, parse_destinations
    from feeder.publish.ab import line_b
    from feeder.publish.channels import ChannelMap

    make = ChannelMap.single if args.single_port else ChannelMap.multi
    if args.dest:
        dests = parse_destinations(args.dest)
    else:
        dests = make(args.group, args.port, args.channels).destinations
    dests_b: tuple[tuple[str, int], ...] = ()
    if args.dest_b:
        dests_b = parse_destinations(args.dest_b)
    elif args.group_b:
        a = make(args.group, args.port, args.channels)
        port_b = args.port if args.port_b is None else args.port_b
        dests_b = line_b(a, args.group_b, port_b).destinations
    if (args.iface_b or args.drop_b) and not dests_b:
        raise ValueError("--iface-b/--drop-b need line B: give --group-b or --dest-b")
    rx = Receiver(
        ReceiverConfig(
            destinations=dests,
            iface_addr=args.iface,
            rcvbuf=args.rcvbuf,
            books=args.books,
            destinations_b=dests_b,
            iface_b=args.iface_b,
            recovery=_addr_port(args.recovery, "--recovery") if args.recovery else None,
            drop_a=DropRule.parse(args.drop_a) if args.drop_a else None,
            drop_b=DropRule.parse(args.drop_b) if args.drop_b else None,
        )
    )
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
                pause_after=args.pause_after,
                pause_s=args.pause_s,
                min_sessions=args.min_sessions,
            )
        rx.finish()
        summary = rx.summary()
    finally:
        rx.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _status_line(rx)
    # A gap that was recovered is not a problem; what is still missing is.
    return EXIT_PROBLEM if summary["missing_messages"] else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    # SIGUSR1 prints every thread's stack to stderr (a stuck run says where it is stuck).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="feeder: %(message)s"
    )
    handler = {
        "demo": cmd_demo,
        "listen": cmd_listen,
        "run": cmd_run,
        "sim": cmd_sim,
        "replay": cmd_replay,
        "record": cmd_record,
    }[args.cmd]
    try:
        return handler(args)
    except (ValueError, OSError) as e:
        # Bad arguments, absent interfaces, missing privileges: a message, not a traceback.
        if os.environ.get("FEEDER_DEBUG"):
            raise
        print(f"feeder {args.cmd}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as e:
        # A run that could not complete (a child process failed, the network vanished).
        if os.environ.get("FEEDER_DEBUG"):
            raise
        print(f"feeder {args.cmd}: {e}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return EXIT_PROBLEM
