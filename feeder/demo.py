"""``feeder demo``: the whole path on a two-host topology, with a report.

Builds two network namespaces joined by a veth pair (or, without root, falls back to loopback
and says so), runs ``feeder listen`` in the receiving namespace as its own process, publishes a
synthetic stream from the sending namespace for a bounded time, then reports what was sent and
received, gaps, duplicates, kernel drops, rates, latency percentiles, the send path and the
host's ``hosttune check`` summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeder.net import snmp
from feeder.net.topology import TwoHostTopology, cleanup_stale, topology_support
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
    return [udp(True), udp(False)]


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
    say = log or (lambda msg: print(msg, file=sys.stderr))
    chmap = _channel_map(cfg)
    support = topology_support()
    topo: TwoHostTopology | None = None
    tmp = Path(tempfile.mkdtemp(prefix="feeder-demo-"))
    ready = tmp / "ready"
    listener: subprocess.Popen[str] | None = None
    try:
        if support.ok:
            cleanup_stale(PREFIX)
            topo = TwoHostTopology.build(f"{PREFIX}{os.getpid() % 100000:05d}")
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

        def counters() -> list[snmp.Snapshot]:
            if topo is None:
                return [snmp.read_snmp()]
            return [snmp.read_snmp_in(topo.a.netns), snmp.read_snmp_in(topo.b.netns)]

        snmp_before = counters()
        listener = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while not ready.exists():
            if listener.poll() is not None or time.monotonic() > deadline:
                out, err = listener.communicate(timeout=5)
                raise RuntimeError(f"receiver did not start: {err.strip() or out.strip()}")
            time.sleep(0.01)

        path = SendPath(_candidates(cfg, tx_iface, chmap.destinations, tx_ns, topo is None))
        path.start()
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
        drops: dict[str, int] = {}
        for side, before, after in zip(("tx", "rx"), snmp_before, counters(), strict=False):
            for name, n in snmp.udp_losses(snmp.diff(before, after)).items():
                drops[f"{side}.{name}" if topo else name] = n
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
        f"hosttune     {ht['pass']} pass, {ht['warn']} warn, {ht['fail']} fail, {ht['skip']} skip"
        + (f" (failing: {', '.join(ht['failing'])})" if ht["failing"] else ""),
    ]
    return "\n".join(lines)
