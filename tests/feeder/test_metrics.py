"""/metrics: families built at scrape time from the run's counters and histograms."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

from feeder.metrics.histogram import Histogram
from feeder.metrics.prom import FeederCollector, serve


class FakeApp:
    def report(self) -> dict[str, Any]:
        return {
            "exchanges": {
                "okx": {
                    "messages": 10,
                    "trades": 3,
                    "book_updates": 7,
                    "gaps": 1,
                    "resyncs": 1,
                    "checksum_errors": 2,
                    "reconnects": 0,
                    "parse_errors": {"bad_json": 4},
                },
            },
            "channels": [
                {"channel": 1, "messages": 10, "packets": 2, "bytes": 300, "heartbeats": 5}
            ],
            "send_fallbacks": 1,
            "send_backlog": 0,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scrape_shows_counters_and_latency_quantiles() -> None:
    hist = Histogram()
    hist.record_many([1_000, 2_000, 3_000, 4_000_000])
    collector = FeederCollector(
        FakeApp(),
        lambda: {"tick_to_wire": hist},
        snmp_reader=lambda: {"Udp": {"RcvbufErrors": 7, "InErrors": 9}},
    )
    port = free_port()
    serve(port, "127.0.0.1", collector)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'feeder_exchange_gaps_total{exchange="okx"} 1.0' in text
    assert 'feeder_exchange_parse_errors_total{exchange="okx",reason="bad_json"} 4.0' in text
    assert 'feeder_channel_heartbeats_total{channel="1"} 5.0' in text
    assert 'feeder_kernel_udp_errors_total{counter="RcvbufErrors"} 7.0' in text
    assert "feeder_send_fallbacks_total 1.0" in text
    p50 = next(
        line
        for line in text.splitlines()
        if line.startswith('feeder_tick_to_wire_seconds{quantile="0.5"}')
    )
    assert 1.9e-6 <= float(p50.split()[-1]) <= 2.1e-6
    assert "feeder_tick_to_wire_samples_total 4.0" in text
