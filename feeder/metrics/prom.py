"""Prometheus ``/metrics`` for ``feeder run``: read at scrape time, never on the hot path.

The hot path only bumps plain integers and the log-linear histogram; this collector turns them
into metric families when Prometheus asks (in prometheus-client's HTTP thread), so exporting
costs the feeder nothing per message and needs no lock (int reads are atomic under the GIL;
a scrape may see a histogram mid-update, which shifts a count by one at most).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import start_http_server

from feeder.metrics.histogram import Histogram
from feeder.net import snmp


class Source(Protocol):
    """What the collector reads: ``FeederApp`` provides it."""

    def report(self) -> dict[str, Any]: ...


def _quantiles(name: str, doc: str, hist: Histogram, labels: dict[str, str]) -> Iterable[Metric]:
    s = hist.summary()
    g = GaugeMetricFamily(name, doc, labels=[*labels, "quantile"])
    for q, v in (("0.5", s.p50), ("0.95", s.p95), ("0.99", s.p99), ("0.999", s.p999), ("1", s.max)):
        g.add_metric([*labels.values(), q], v / 1e9)
    yield g
    c = CounterMetricFamily(
        name.removesuffix("_seconds") + "_samples", f"{doc} (samples)", labels=list(labels)
    )
    c.add_metric(list(labels.values()), s.count)
    yield c


class FeederCollector:
    def __init__(
        self,
        source: Source,
        histograms: Callable[[], dict[str, Histogram]],
        snmp_reader: Callable[[], snmp.Snapshot] = snmp.read_snmp,
    ) -> None:
        self.source = source
        self.histograms = histograms
        self.snmp_reader = snmp_reader

    def collect(self) -> Iterable[Metric]:
        r = self.source.report()
        per_ex: dict[str, CounterMetricFamily] = {}
        fields = {
            "messages": "market messages published",
            "trades": "trades published",
            "book_updates": "book updates received",
            "gaps": "sequence gaps detected",
            "resyncs": "book resyncs",
            "checksum_errors": "checksum mismatches",
            "reconnects": "reconnects",
        }
        for field, doc in fields.items():
            per_ex[field] = CounterMetricFamily(
                f"feeder_exchange_{field}", doc, labels=["exchange"]
            )
        parse = CounterMetricFamily(
            "feeder_exchange_parse_errors",
            "frames refused, by reason",
            labels=["exchange", "reason"],
        )
        for name, ex in r["exchanges"].items():
            for field in fields:
                per_ex[field].add_metric([name], ex[field])
            for reason, n in ex["parse_errors"].items():
                parse.add_metric([name, reason], n)
        yield from per_ex.values()
        yield parse
        ch = {
            k: CounterMetricFamily(
                f"feeder_channel_{k}", f"{k} sent per channel", labels=["channel"]
            )
            for k in ("messages", "packets", "bytes", "heartbeats")
        }
        for st in r.get("channels", []):
            for k, fam in ch.items():
                fam.add_metric([str(st["channel"])], st[k])
        yield from ch.values()
        send = CounterMetricFamily("feeder_send_fallbacks", "transport failures that fell back")
        send.add_metric([], r.get("send_fallbacks", 0))
        yield send
        backlog = GaugeMetricFamily("feeder_send_backlog", "packets waiting for the network")
        backlog.add_metric([], r.get("send_backlog", 0))
        yield backlog
        drops = CounterMetricFamily(
            "feeder_kernel_udp_errors",
            "kernel UDP loss counters (/proc/net/snmp of this host)",
            labels=["counter"],
        )
        udp = self.snmp_reader().get("Udp", {})
        for name in snmp.UDP_LOSS_COUNTERS:
            if name in udp:
                drops.add_metric([name], udp[name])
        yield drops
        for name, hist in self.histograms().items():
            yield from _quantiles(
                f"feeder_{name}_seconds", f"{name.replace('_', ' ')} latency", hist, {}
            )


def serve(port: int, addr: str, collector: FeederCollector) -> CollectorRegistry:
    """Start the scrape endpoint in a background thread; returns its registry."""
    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(port, addr=addr, registry=registry)
    return registry
