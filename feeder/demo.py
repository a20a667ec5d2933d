"""``feeder demo``: the whole path on a two-host topology, with a report.

Builds two network namespaces joined by a veth pair (or, without root, falls back to loopback
and says so), runs ``feeder listen`` in the receiving namespace as its own process, publishes a
synthetic stream from the sending namespace for a bounded time, then reports what was sent and
received, gaps, duplicates, kernel drops, rates, latency percentiles, the send path and the
host's ``hosttune check`` summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from pyroute2 import netns as pyroute2_netns

from feeder.faults import Plan
from feeder.listen.dropfilter import DropRule
from feeder.net import snmp
from feeder.net.netns import entered
from feeder.net.topology import TwoHostTopology, list_stale, topology_support
from feeder.publish.ab import line_b
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import Candidate, SendPath
from feeder.publish.transport import UdpTransport
from feeder.source.synthetic import SyntheticSource

PREFIX = "mdfd"  # names of demo namespaces/links start with this


@dataclass(frozen=True)
class DemoConfig:
    duration_s: float = 5.0
    rate: int = 20_000
    channels: int = 4
    group: str = "239.100.0.1"
    port: int = 31001
    single_port: bool = False
    send_path: str = "auto"
    source: str = "sim"  # "sim": simulated exchanges -> feeder run; "synthetic": spine only
    exchanges: tuple[str, ...] = ()  # default: every exchange the simulator speaks
    symbols: int = 3
    sim_faults: tuple[str, ...] = ()  # EXCHANGE:KIND[@EVENTS], injected by the simulator
    self_tune: bool = True  # let feeder run lock memory and pin its hot loop
    flush_us: int | None = None  # feeder run --flush-us (None: its default)
    faults: tuple[str, ...] | None = None  # the fault matrix: () = every fault
    # A/B feeds and re-requests (sim source): line B's first group (None: line A only) ...
    group_b: str | None = "239.200.0.1"
    port_b: int | None = None  # ... and port (None: ``port``)
    recovery: bool = True  # the feeder answers re-requests, the receiver asks for what it lost
    drop_a: DropRule | None = None  # loss injected at the receiver (kernel socket filter)
    drop_b: DropRule | None = None


def remove_dead_demos() -> list[str]:
    """Namespaces of demos whose process is gone (killed runs). A running demo's are left
    alone: the pid in the name says whose they are."""
    removed = []
    for name in list_stale(PREFIX):
        pid = name[len(PREFIX) :].rsplit("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            with contextlib.suppress(OSError):
                pyroute2_netns.remove(name)
                removed.append(name)
    return removed


def udp_counters(topo: TwoHostTopology | None) -> list[snmp.Snapshot]:
    """UDP counters of the sending and receiving hosts (one set on loopback)."""
    if topo is None:
        return [snmp.read_snmp()]
    return [snmp.read_snmp_in(topo.a.netns), snmp.read_snmp_in(topo.b.netns)]


def udp_drops(topo: TwoHostTopology | None, before: list[snmp.Snapshot]) -> dict[str, int]:
    """Kernel UDP losses since ``before`` (/proc/net/snmp): RcvbufErrors, SndbufErrors..."""
    drops: dict[str, int] = {}
    for side, old, new in zip(("tx", "rx"), before, udp_counters(topo), strict=False):
        for name, n in snmp.udp_losses(snmp.diff(old, new)).items():
            drops[f"{side}.{name}" if topo else name] = n
    return drops


def _channel_map(cfg: DemoConfig) -> ChannelMap:
    if cfg.single_port:
        return ChannelMap.single(cfg.group, cfg.port, cfg.channels)
    return ChannelMap.multi(cfg.group, cfg.port, cfg.channels)


def _candidates(
    cfg: DemoConfig,
    iface: str,
    dests: tuple[tuple[str, int], ...],
    netns: str | None,
    loopback: bool,
) -> list[Candidate]:
    def udp(mmsg: bool) -> Candidate:
        return Candidate(
            "udp-sendmmsg" if mmsg else "udp-sendto",
            lambda: UdpTransport.open(
                iface, dests, ttl=0 if loopback else 1, loop=loopback, prefer_mmsg=mmsg, netns=netns
            ),
        )

    if cfg.send_path == "udp-sendto":
        return [udp(False)]
    fallback = [udp(True), udp(False)]
    if cfg.send_path == "xdp" or (cfg.send_path == "auto" and not loopback):
        from feeder.runtime.app import xdp_candidates

        return xdp_candidates(iface, dests, ttl=1, netns=netns) + fallback
    return fallback


def _hosttune_summary() -> dict[str, Any]:
    from hosttune.engine import run_checks, summarize
    from hosttune.host import Host
    from hosttune.knobs import all_knobs
    from hosttune.profile import load_profile

    rows = run_checks(Host(), load_profile(), all_knobs())
    failing = [r.id for r in rows if r.status.value == "fail"]
    return {**summarize(rows), "failing": failing}


def _listener_argv(
    cfg: DemoConfig, iface: str, dests: tuple[tuple[str, int], ...], ready: Path
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "feeder",
        "listen",
        "--iface",
        iface,
        "--json",
        "--quiet",
        "--until-end",
        "--duration",
        str(cfg.duration_s + 30),
        "--ready-file",
        str(ready),
    ]
    for g, p in dict.fromkeys(dests):
        argv += ["--dest", f"{g}:{p}"]
    return argv


def run_demo(cfg: DemoConfig, log: Any = None) -> dict[str, Any]:
    if cfg.source == "synthetic":
        return run_synthetic(cfg, log)
    return run_exchanges(cfg, log)


def run_synthetic(cfg: DemoConfig, log: Any = None) -> dict[str, Any]:
    say = log or (lambda msg: print(msg, file=sys.stderr))
    chmap = _channel_map(cfg)
    support = topology_support()
    topo: TwoHostTopology | None = None
    tmp = Path(tempfile.mkdtemp(prefix="feeder-demo-"))
    ready = tmp / "ready"
    listener: subprocess.Popen[str] | None = None
    try:
        if support.ok:
            remove_dead_demos()
            topo = TwoHostTopology.build(f"{PREFIX}{os.getpid()}")
            tx_iface, rx_iface = topo.a.address, topo.b.address
            tx_ns: str | None = topo.a.netns
            topology = (
                f"two namespaces {topo.a.netns} ({tx_iface}) <-veth-> {topo.b.netns} ({rx_iface})"
            )
            argv = topo.b.argv(_listener_argv(cfg, rx_iface, chmap.destinations, ready))
        else:
            say(f"demo: cannot build the veth topology ({support.reason}); using loopback")
            tx_iface = rx_iface = "127.0.0.1"
            tx_ns = None
            topology = f"loopback 127.0.0.1 (fallback: {support.reason})"
            argv = _listener_argv(cfg, rx_iface, chmap.destinations, ready)
        say(f"demo: {topology}; {chmap.describe()}")

        snmp_before = udp_counters(topo)
        listener = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while not ready.exists():
            if listener.poll() is not None or time.monotonic() > deadline:
                out, err = listener.communicate(timeout=5)
                raise RuntimeError(f"receiver did not start: {err.strip() or out.strip()}")
            time.sleep(0.01)

        path = SendPath(_candidates(cfg, tx_iface, chmap.destinations, tx_ns, topo is None))
        path.start()
        from feeder.runtime.app import require_send_path

        require_send_path(cfg.send_path, path)
        pub = Publisher(path, chmap)
        source = SyntheticSource(pub)
        say(f"demo: sending {cfg.rate} msg/s for {cfg.duration_s:g} s via {path.name}")
        t0 = time.monotonic()
        source.run(cfg.rate, cfg.duration_s)
        drained = pub.close()
        elapsed = time.monotonic() - t0
        out, err = listener.communicate(timeout=cfg.duration_s + 30)
        if listener.returncode != 0:
            raise RuntimeError(f"receiver failed ({listener.returncode}): {err.strip()}")
        rx = json.loads(out)
        drops = udp_drops(topo, snmp_before)
        send_path = path.name
        path.close()
        sent = sum(s.messages for s in pub.stats())
        return {
            "topology": topology,
            "channels": chmap.describe(),
            "send_path": send_path,
            "send_path_events": path.stats.events,
            "sent": sent,
            "received": rx["received"],
            "gaps": rx["gaps"],
            "missing_messages": rx["missing_messages"],
            "duplicates": rx["duplicates"],
            "drops": sum(drops.values()),
            "drops_detail": drops,
            "rejected": rx["rejected"],
            "drained": drained,
            "rate_msgs_per_s": round(sent / elapsed, 1) if elapsed else 0.0,
            "packets": sum(s.packets for s in pub.stats()),
            "latency_us": rx["latency_us"],
            "duration_s": round(elapsed, 3),
            "hosttune": _hosttune_summary(),
            "receiver": {
                k: rx[k] for k in ("datagrams", "bytes", "heartbeats", "rcvbuf", "channels")
            },
        }
    finally:
        if listener is not None and listener.poll() is None:
            listener.kill()
            listener.wait()
        if topo is not None:
            topo.close()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


def _render_lines(report: dict[str, Any]) -> list[str]:
    """A/B arbitration and recovery, when the run had them."""
    out = []
    if loss := report.get("loss_injected"):
        rules = "  ".join(
            f"{line.upper()}: {text.split(' dropped')[0]}" for line, text in loss.items()
        )
        out.append(f"loss         injected at the receiver ({rules}); in kernel drops")
    if ab := report.get("ab"):
        a, b = ab["lines"]["a"], ab["lines"]["b"]
        out.append(
            f"A/B lines    A {a['packets']} pkts ({a['first']} first, {a['lost_messages']} msgs "
            f"lost)  B {b['packets']} pkts ({b['first']} first, {b['lost_messages']} msgs lost)  "
            f"lost on both {ab['lost_on_both_messages']}"
        )
    if rec := report.get("recovery"):
        refused = rec["feeder"].get("refused", {})
        out.append(
            f"recovery     {rec['requests']} requests, {rec['recovered_messages']} msgs recovered,"
            f" {rec['unrecoverable_messages']} unrecoverable; feeder served "
            f"{rec['feeder'].get('served', 0)}, refused {sum(refused.values())}"
        )
    return out


def render(report: dict[str, Any]) -> str:
    lat = report["latency_us"]
    ht = report["hosttune"]
    lines = [
        f"topology     {report['topology']}",
        f"channels     {report['channels']}",
        f"send path    {report['send_path']}",
        f"sent         {report['sent']} messages in {report['packets']} packets "
        f"({report['rate_msgs_per_s']:.0f} msg/s over {report['duration_s']} s)",
        f"received     {report['received']}",
        f"gaps         {report['gaps']} ({report['missing_messages']} messages missing)",
        f"duplicates   {report['duplicates']}",
        f"kernel drops {report['drops']} {report['drops_detail'] or ''}".rstrip(),
        f"latency µs   p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  "
        f"p99.9 {lat['p999']}  max {lat['max']}  (send time -> kernel RX timestamp)",
        *(
            [
                f"tick-to-wire p50 {ttw['p50']}  p95 {ttw['p95']}  p99 {ttw['p99']}  "
                f"p99.9 {ttw['p999']}  max {ttw['max']} µs  (exchange frame read -> "
                f"{_tx_point(report['send_path'])}, {ttw['count']} messages once every book "
                "was live; "
                f"{report.get('tick_to_wire_not_timed', 0)} read during start-up sync not timed)"
            ]
            if (ttw := report.get("tick_to_wire_us"))
            else []
        ),
        *_render_lines(report),
        *(
            f"  {name:<9} {ex['messages']:>7} msgs  {ex['resyncs']} resyncs  {ex['reconnects']} "
            f"reconnects  books equal {ex['books_equal']}/"
            f"{ex['books_equal'] + len(ex['books_mismatched'])}"
            for name, ex in report.get("exchanges", {}).items()
        ),
        f"hosttune     {ht['pass']} pass, {ht['warn']} warn, {ht['fail']} fail, {ht['skip']} skip"
        + (f" (failing: {', '.join(ht['failing'])})" if ht["failing"] else ""),
    ]
    return "\n".join(lines)


# --- simulator -> feeder run -> listen ------------------------------------------------------


class _Proc:
    """A child process of the demo, with its ready file and output."""

    def __init__(self, name: str, argv: list[str], ready: Path | None) -> None:
        self.name = name
        self.ready = ready
        self.p: subprocess.Popen[str] = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait_ready(self, timeout_s: float = 20.0) -> str:
        assert self.ready is not None
        deadline = time.monotonic() + timeout_s
        while not (self.ready.exists() and self.ready.stat().st_size):
            if self.p.poll() is not None or time.monotonic() > deadline:
                out, err = self.finish(5)
                raise RuntimeError(
                    f"{self.name} did not start: {err.strip()[-2000:] or out.strip()}"
                )
            time.sleep(0.02)
        return self.ready.read_text()

    def finish(self, timeout_s: float) -> tuple[str, str]:
        try:
            return self.p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # Stuck: ask for every thread's stack (faulthandler, see feeder.cli) before the
            # kill, so the report says where it was.
            with contextlib.suppress(ProcessLookupError):
                self.p.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.p.communicate(timeout=1.0)
            self.p.kill()
            out, err = self.p.communicate()
            return out, f"{err}\n{self.name} did not finish within {timeout_s:g} s: killed"

    def stop(self, timeout_s: float = 15.0) -> tuple[str, str]:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        return self.finish(timeout_s)

    def json(self, out: str, err: str) -> dict[str, Any]:
        try:
            doc = json.loads(out)
        except json.JSONDecodeError:
            raise RuntimeError(
                f"{self.name} failed ({self.p.returncode}): {err.strip()[-2000:]}"
            ) from None
        assert isinstance(doc, dict)
        return doc


def _as_is(argv: Sequence[str]) -> list[str]:
    return list(argv)


def _http(netns: str | None, method: str, url: str) -> Any:
    """An HTTP call from inside ``netns`` (the simulator listens on that namespace's loopback)."""

    def call() -> Any:
        req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    if netns is None:
        return call()
    with entered(netns):
        return call()


def _tx_point(send_path: str) -> str:
    """Where tick-to-wire ends on this send path."""
    if send_path.startswith("xdp"):
        return "AF_XDP frame handed to the kernel (no kernel TX stamp on this path)"
    return "kernel TX timestamp"


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One report for a feeder that ran more than once (a restart): counters add up, the
    last run's state and latency stand."""
    merged = dict(runs[-1])
    for key in ("sent", "packets", "queued_without_sender"):
        merged[key] = sum(r.get(key, 0) for r in runs)
    merged["elapsed_s"] = sum(r["elapsed_s"] for r in runs)
    merged["send_path_events"] = [e for r in runs for e in r["send_path_events"]]
    exchanges: dict[str, dict[str, Any]] = {}
    for r in runs:
        for name, ex in r["exchanges"].items():
            into = exchanges.get(name)
            if into is None:
                exchanges[name] = {**ex, "parse_errors": dict(ex["parse_errors"])}
                continue
            for k, v in ex.items():
                if k == "parse_errors":
                    for reason, n in v.items():
                        into[k][reason] = into[k].get(reason, 0) + n
                elif isinstance(v, int) and not isinstance(v, bool):
                    into[k] = into.get(k, 0) + v
                else:
                    into[k] = v  # state, last error, symbols: the last run's
    merged["exchanges"] = exchanges
    return merged


def compare_books(
    truth: dict[str, Any], got: dict[str, Any], depths: dict[str, int]
) -> dict[str, Any]:
    """Per exchange: symbols whose receiver book equals the simulator's top levels."""
    out: dict[str, Any] = {}
    for exchange, symbols in truth.items():
        depth = depths.get(exchange, 10)
        mismatched = []
        for sym, book in symbols.items():
            mine = got.get(exchange, {}).get(sym)
            if (
                mine is None
                or mine["bids"][:depth] != book["bids"][:depth]
                or mine["asks"][:depth] != book["asks"][:depth]
            ):
                mismatched.append(sym)
        out[exchange] = {
            "symbols": len(symbols),
            "equal": len(symbols) - len(mismatched),
            "mismatched": mismatched,
        }
    return out


RECOVERY_PORT = 31900  # in the demo's own namespace; on loopback a free port is found


def _free_udp_port(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))
        port: int = s.getsockname()[1]
        return port


def _lines_argv(
    cfg: DemoConfig, chmap: ChannelMap, tx_addr: str, loopback: bool
) -> tuple[list[str], list[str]]:
    """Extra arguments for ``feeder listen`` and ``feeder run``: line B, recovery, loss."""
    listen: list[str] = []
    run: list[str] = []
    if cfg.group_b is not None:
        port_b = cfg.port if cfg.port_b is None else cfg.port_b
        for g, p in dict.fromkeys(line_b(chmap, cfg.group_b, port_b).destinations):
            listen += ["--dest-b", f"{g}:{p}"]
        run += ["--group-b", cfg.group_b, "--port-b", str(port_b)]
    if cfg.recovery:
        where = f"{tx_addr}:{_free_udp_port(tx_addr) if loopback else RECOVERY_PORT}"
        listen += ["--recovery", where]
        run += ["--recovery-listen", where]
    for flag, rule in (("--drop-a", cfg.drop_a), ("--drop-b", cfg.drop_b)):
        if rule is not None:
            listen += [flag, str(rule)]
    return listen, run


def _lines_report(
    cfg: DemoConfig, run_report: dict[str, Any], rx: dict[str, Any]
) -> dict[str, Any]:
    """The ``ab`` and ``recovery`` sections: arbitration per line, what was re-requested."""
    out: dict[str, Any] = {}
    loss = {k: str(r) for k, r in (("a", cfg.drop_a), ("b", cfg.drop_b)) if r is not None}
    if loss:
        out["loss_injected"] = {
            line: f"data packets with first_seq % {r.replace(':', ' == ')} dropped on line "
            f"{line.upper()} (kernel socket filter at the receiver)"
            for line, r in loss.items()
        }
    if "ab" in rx:
        out["ab"] = {**run_report.get("ab", {}), **rx["ab"]}
    if "recovery" in rx:
        r = rx["recovery"]
        out["recovery"] = {
            "requests": r["requests"],
            "retries": r["retries"],
            "recovered_messages": r["recovered_messages"],
            "unrecoverable_messages": r["unrecoverable_messages"],
            "unrecoverable": r["unrecoverable"],
            "receiver": r,
            "feeder": run_report.get("recovery", {}),
        }
    return out


def run_exchanges(cfg: DemoConfig, log: Any = None) -> dict[str, Any]:
    from feeder.exchanges import ADAPTERS
    from feeder.sim.protocols import PROTOCOLS

    say = log or (lambda msg: print(msg, file=sys.stderr))
    exchanges = list(cfg.exchanges) or [e for e in ADAPTERS if e in PROTOCOLS]
    plan = None
    if cfg.faults is not None:
        plan = Plan.build(cfg.faults, cfg.rate)
        exchanges += sorted(plan.exchanges() - set(exchanges))
        cfg = dataclasses.replace(
            cfg,
            sim_faults=cfg.sim_faults + tuple(plan.sim),
            drop_a=cfg.drop_a or plan.drop_a,
            drop_b=cfg.drop_b or plan.drop_b,
            duration_s=max(cfg.duration_s, 10.0),
            group_b=cfg.group_b or "239.200.0.1",
            recovery=True,
        )
    chmap = _channel_map(cfg)
    support = topology_support()
    tmp = Path(tempfile.mkdtemp(prefix="feeder-demo-"))
    topo: TwoHostTopology | None = None
    procs: list[_Proc] = []
    py = [sys.executable, "-m", "feeder"]
    try:
        if support.ok:
            remove_dead_demos()
            topo = TwoHostTopology.build(f"{PREFIX}{os.getpid()}")
            tx_addr, rx_addr = topo.a.address, topo.b.address
            in_a, in_b = topo.a.argv, topo.b.argv
            tx_ns: str | None = topo.a.netns
            topology = (
                f"two namespaces {topo.a.netns} ({tx_addr}) <-veth-> {topo.b.netns} ({rx_addr})"
            )
        else:
            say(f"demo: cannot build the veth topology ({support.reason}); using loopback")
            tx_addr = rx_addr = "127.0.0.1"
            in_a = in_b = _as_is
            tx_ns = None
            topology = f"loopback 127.0.0.1 (fallback: {support.reason})"
        say(f"demo: {topology}; {chmap.describe()}; exchanges {', '.join(exchanges)}")

        sim_ready = tmp / "sim.json"
        sim = _Proc(
            "simulator",
            in_a(
                [
                    *py,
                    "sim",
                    "--exchanges",
                    ",".join(exchanges),
                    "--symbols",
                    str(cfg.symbols),
                    "--rate",
                    str(cfg.rate),
                    "--ready-file",
                    str(sim_ready),
                    *[arg for fault in cfg.sim_faults for arg in ("--fault", fault)],
                ]
            ),
            sim_ready,
        )
        procs.append(sim)
        info = json.loads(sim.wait_ready())
        sim_url = f"http://127.0.0.1:{info['port']}"

        rx_ready = tmp / "rx"
        listen_argv = [
            *py,
            "listen",
            "--iface",
            rx_addr,
            "--json",
            "--quiet",
            "--books",
            "--until-end",
            "--duration",
            str(cfg.duration_s + 60),
            "--ready-file",
            str(rx_ready),
        ]
        for g, p in dict.fromkeys(chmap.destinations):
            listen_argv += ["--dest", f"{g}:{p}"]
        listen_lines, run_lines = _lines_argv(cfg, chmap, tx_addr, topo is None)
        listen_argv += listen_lines
        if plan is not None:
            listen_argv += plan.listen
            run_lines += plan.run
        snmp_before = udp_counters(topo)
        listener = _Proc("receiver", in_b(listen_argv), rx_ready)
        procs.append(listener)
        listener.wait_ready()

        chan_args = ["--group", cfg.group, "--port", str(cfg.port), "--channels", str(cfg.channels)]
        if cfg.single_port:
            chan_args.append("--single-port")
        feeder_argv = in_a(
            [
                *py,
                "run",
                "--sim",
                sim_url,
                "--iface",
                tx_addr,
                "--json",
                "--send-path",
                cfg.send_path,
                *chan_args,
                *run_lines,
                *([] if cfg.self_tune else ["--no-tune"]),
                *([] if cfg.flush_us is None else ["--flush-us", str(cfg.flush_us)]),
            ]
        )
        feeder = _Proc("feeder", feeder_argv, None)
        procs.append(feeder)
        say(f"demo: simulator -> feeder run -> multicast -> feeder listen for {cfg.duration_s:g} s")
        earlier_runs: list[dict[str, Any]] = []
        restart_at = time.monotonic() + cfg.duration_s / 2 if plan and plan.restart else None
        deadline = time.monotonic() + cfg.duration_s
        while time.monotonic() < deadline and feeder.p.poll() is None:
            time.sleep(0.1)
            if restart_at is not None and time.monotonic() >= restart_at:
                restart_at = None
                say("demo: restarting feeder run (fault matrix: feeder_restart)")
                earlier_runs.append(feeder.json(*feeder.stop()))
                feeder = _Proc("feeder", feeder_argv, None)
                procs.append(feeder)
        if feeder.p.poll() is not None:
            _, err = feeder.finish(5)
            raise RuntimeError(
                f"feeder run exited early ({feeder.p.returncode}): {err.strip()[-2000:]}"
            )
        # Quiesce: stop the markets, let the last frames cross, then read the truth.
        _http(tx_ns, "POST", f"{sim_url}/control/pause")
        time.sleep(1.5)
        truth = _http(tx_ns, "GET", f"{sim_url}/control/books?depth=10")
        sim_stats = _http(tx_ns, "GET", f"{sim_url}/control/stats")
        run_report = merge_runs([*earlier_runs, feeder.json(*feeder.stop())])
        rx = listener.json(*listener.finish(30))
        sim.stop()
        drops = udp_drops(topo, snmp_before)
        depths = {name: min(10, ADAPTERS[name].book_depth or 10) for name in exchanges}
        books = compare_books(truth, rx.get("books", {}), depths)
        report: dict[str, Any] = {
            "topology": topology,
            "channels": chmap.describe(),
            "send_path": run_report["send_path"],
            "send_path_events": run_report["send_path_events"],
            "sent": run_report["sent"],
            "received": rx["received"],
            "gaps": rx["gaps"],
            "missing_messages": rx["missing_messages"],
            "duplicates": rx["duplicates"],
            "drops": sum(drops.values()),
            "drops_detail": drops,
            "rejected": rx["rejected"],
            "drained": run_report.get("drained", False),
            "rate_msgs_per_s": round(run_report["sent"] / max(run_report["elapsed_s"], 1e-9), 1),
            "packets": run_report["packets"],
            "latency_us": rx["latency_us"],
            "tick_to_wire_us": run_report.get("tick_to_wire_us", {}),
            "tick_to_wire_not_timed": run_report.get("tick_to_wire_not_timed", 0),
            "duration_s": run_report["elapsed_s"],
            "exchanges": {
                name: {
                    "messages": ex["messages"],
                    "trades": ex["trades"],
                    "resyncs": ex["resyncs"],
                    "reconnects": ex["reconnects"],
                    "gaps": ex["gaps"],
                    "checksum_errors": ex["checksum_errors"],
                    "parse_errors": ex["parse_errors"],
                    "books_equal": books.get(name, {}).get("equal", 0),
                    "books_mismatched": books.get(name, {}).get("mismatched", []),
                    "symbols_not_live": sorted(
                        s for s, v in ex.get("symbols", {}).items() if v.get("state") != "live"
                    ),
                    "sim_events": sim_stats.get(name, {}).get("events", 0),
                }
                for name, ex in run_report["exchanges"].items()
            },
            **_lines_report(cfg, run_report, rx),
            "sessions": max((c["sessions"] for c in rx.get("channels", [])), default=0),
            "queued_without_sender": run_report.get("queued_without_sender", 0),
            "receiver_paused_s": rx.get("paused_s", 0.0),
            "hosttune": _hosttune_summary(),
        }
        if plan is not None:
            report["faults"] = plan.judge(report)
        return report
    finally:
        for proc in procs:
            if proc.p.poll() is None:
                proc.p.kill()
                proc.p.wait()
        if topo is not None:
            topo.close()
        shutil.rmtree(tmp, ignore_errors=True)
