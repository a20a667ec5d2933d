"""End to end over veth (root; runs in CI): simulator with faults -> feeder run -> receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from feeder.exchanges import ADAPTERS
from feeder.sim.protocols import PROTOCOLS
from tests.privilege import require_root

KEYS = {
    "sent",
    "received",
    "gaps",
    "duplicates",
    "drops",
    "send_path",
    "rate_msgs_per_s",
    "latency_us",
}


def demo(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "feeder", "demo", "--json", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert isinstance(doc, dict)
    return doc


def test_faults_are_detected_books_equal_and_others_keep_flowing() -> None:
    require_root("the demo builds network namespaces")
    exchanges = sorted(set(ADAPTERS) & set(PROTOCOLS))
    report = demo(
        "--duration",
        "8",
        "--symbols",
        "2",
        "--rate",
        "250",
        "--sim-fault",
        "binance:skip_sequence@1000",
        "--sim-fault",
        "binance:malformed@1100",
        "--sim-fault",
        "binance:drop_connection@1300",
    )
    assert set(report) >= KEYS and set(report["latency_us"]) >= {"p50", "p95", "p99", "p999", "max"}
    assert report["topology"].startswith("two namespaces")
    assert report["received"] == report["sent"] > 0 and report["gaps"] == 0
    assert isinstance(report["drops"], int) and isinstance(report["drops_detail"], dict)
    # Tick-to-wire on whichever path the demo took (AF_XDP: the time frames went to the kernel).
    assert report["tick_to_wire_us"]["count"] > 0, report["send_path"]
    ex = report["exchanges"]
    assert set(ex) == set(exchanges)
    b = ex["binance"]
    assert b["gaps"] >= 1  # the skipped update was detected ...
    assert b["resyncs"] >= 1  # ... and the symbol resynced
    assert b["parse_errors"].get("bad_json", 0) >= 1  # malformed frame counted
    assert b["reconnects"] >= 1  # dropped connection survived
    for name, e in ex.items():
        assert e["books_mismatched"] == [], (name, e)
        assert e["symbols_not_live"] == [], (name, e)  # every resync finished
        assert e["books_equal"] == 2, (name, e)
        assert e["messages"] > 0, name
        if name != "binance":
            assert e["reconnects"] == 0 and e["gaps"] == 0, (name, e)


def test_tick_to_wire_over_kernel_udp() -> None:
    require_root("the demo builds network namespaces")
    report = demo(
        "--duration", "4", "--exchanges", "binance", "--symbols", "2", "--send-path", "udp"
    )
    assert report["send_path"] == "udp-sendmmsg"
    # Timed once every book was live; what was read before that is counted, not timed.
    ttw = report["tick_to_wire_us"]
    assert ttw["count"] > 0 and 0 < ttw["p50"] <= ttw["max"]
    assert ttw["count"] + report["tick_to_wire_not_timed"] <= report["sent"]


def test_synthetic_spine_report() -> None:
    require_root("the demo builds network namespaces")
    report = demo("--source", "synthetic", "--duration", "2", "--rate", "5000")
    assert set(report) >= KEYS
    assert report["received"] == report["sent"] == 10_000
    assert report["gaps"] == 0 and report["duplicates"] == 0
    # auto: AF_XDP copy mode on veth as root, kernel UDP where AF_XDP is unavailable
    assert report["send_path"] in ("xdp-copy", "udp-sendmmsg")


def test_only_dead_demos_namespaces_are_cleaned_up() -> None:
    require_root("creates network namespaces")
    import os

    from pyroute2 import netns

    from feeder.demo import PREFIX, remove_dead_demos

    dead = f"{PREFIX}4194305-a"  # above the kernel's pid_max: never a live process
    alive = f"{PREFIX}{os.getpid()}-a"
    netns.create(dead)
    netns.create(alive)
    try:
        removed = remove_dead_demos()
        assert dead in removed and alive not in removed
        assert alive in netns.listnetns() and dead not in netns.listnetns()
    finally:
        for name in (dead, alive):
            if name in netns.listnetns():
                netns.remove(name)
