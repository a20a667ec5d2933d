"""Soak: 10,000 subscribed streams for a bounded time; loss, memory over time and CPU.

Three processes on loopback, as in production: ``feeder sim`` serving several exchanges with
many symbols each, ``feeder run`` subscribed to every symbol's trades and book (two streams a
symbol), and ``feeder listen`` counting what arrives. The default is 5 exchanges x 1,000
symbols x 2 = 10,000 streams for 60 s; ``--quick`` is 3 x 150 x 2 for 8 s.

The exchanges are the ones whose subscriptions are fast under their real pacing rules (Binance,
OKX, Coinbase, KuCoin and Upbit take 1,000 symbols in a few messages; Bybit's 5 symbols per
message at 5/s would need 40 s), so no rate limit is overridden. Binance and KuCoin books start
from REST snapshots: 2,000 REST calls at start.

Reported: messages sent and received, loss (sent - received, and the receiver's gaps), books
live at the end, exchange-side gaps, the feeder's RSS sampled every second with its growth
after warm-up as a percentage and a least-squares slope, and each process's CPU. Nothing here
is a pass/fail threshold: ``ok`` means no loss and every book live.

Warm-up is subscriptions and snapshots (the first third of the run) and, when the run is long
enough, the books reaching their steady size: a book's price dicts, churned by inserts and
deletes, resize once to a larger table after roughly 50-150 updates of that symbol (+2.2 KB a
book, measured) and then stay there. At 200 events/s over 1,000 symbols that is ~750 s in, so
``--duration 900`` shows it: flat, a one-time step of about 11 MB as every book resizes, flat
again. ``books_at_steady_size`` says whether the measured window starts after that point.

JSON goes to ``bench/results/soak.json`` (``soak-quick.json`` for ``--quick``).
Usage: ``python -m bench.soak [--quick] [--duration S] [--symbols N] [--rate R]``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from bench.common import save, table


@dataclass(frozen=True)
class Preset:
    exchanges: tuple[str, ...]
    symbols: int
    duration_s: float


FULL = Preset(("binance", "okx", "coinbase", "kucoin", "upbit"), 1000, 60.0)
QUICK = Preset(("binance", "okx", "coinbase"), 150, 8.0)
READY_TIMEOUT_S = 60.0
# Updates per symbol after which its book's dicts have their steady-state table size.
STEADY_UPDATES = 150


def _wait_for(path: Path, proc: subprocess.Popen[str], what: str) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return path.read_text()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {READY_TIMEOUT_S:.0f} s")


class Simulator:
    """``feeder sim`` in a child process (a context manager): ``url`` once it serves."""

    def __init__(
        self, exchanges: Sequence[str], symbols: int, rate: float, duration_s: float
    ) -> None:
        self.args = [
            "--exchanges",
            ",".join(exchanges),
            "--symbols",
            str(symbols),
            "--rate",
            str(rate),
            "--duration",
            str(duration_s),
        ]
        self.url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="soak-sim-")
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Simulator:
        ready = Path(self._dir.name) / "ready.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feeder", "sim", *self.args, "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            info = json.loads(_wait_for(ready, self.proc, "feeder sim"))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.url = f"http://127.0.0.1:{info['port']}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        self._dir.cleanup()


class Listener:
    """A running ``feeder listen``; ``result()`` waits for its end-of-session summary."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def result(self, timeout_s: float = 60) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout_s)
        if not out.strip():
            raise RuntimeError(f"feeder listen printed no summary: {err[-2000:]}")
        doc: dict[str, Any] = json.loads(out)
        return doc


@contextmanager
def start_listener(channel_args: Sequence[str], timeout_s: float) -> Iterator[Listener]:
    """``feeder listen`` on loopback for ``channel_args`` (--group/--port/--channels), until
    every channel ends its session (or ``timeout_s``)."""
    with tempfile.TemporaryDirectory(prefix="soak-listen-") as tmp:
        ready = Path(tmp) / "ready"
        argv = [sys.executable, "-m", "feeder", "listen", "--iface", "127.0.0.1", *channel_args]
        argv += ["--until-end", "--duration", str(timeout_s), "--json", "--quiet"]
        argv += ["--rcvbuf", str(64 << 20), "--ready-file", str(ready)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(ready, proc, "feeder listen")
            yield Listener(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def unique_channels(channels: int) -> list[str]:
    """A group and port range no other run on this host is likely to share."""
    group = f"239.{random.randint(64, 250)}.{random.randint(0, 255)}.1"
    port = random.randint(20_000, 50_000)
    return ["--group", group, "--port", str(port), "--channels", str(channels)]


def slope_per_min(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60 * sum((t - mt) * (v - mv) for t, v in samples) / var


def memory_figures(rss: Sequence[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    after = [(t, mb) for t, mb in rss if t >= warmup_s]
    start = after[0][1] if after else 0.0
    end = after[-1][1] if after else 0.0
    return {
        "warmup_s": round(warmup_s, 1),
        "start_mb": round(start, 1),
        "end_mb": round(end, 1),
        "peak_mb": round(max((mb for _, mb in rss), default=0.0), 1),
        "growth_pct": round(100 * (end - start) / start, 2) if start else None,
        "slope_mb_per_min": round(slope_per_min(after), 3),
        "rss_mb": [[round(t, 1), round(mb, 1)] for t, mb in rss],
    }


def _cpu(proc: psutil.Process | None) -> float | None:
    """CPU% over the process's life so far (user + system over wall time)."""
    if proc is None:
        return None
    try:
        t = proc.cpu_times()
        busy: float = t.user + t.system
        started: float = proc.create_time()
        return round(100 * busy / (time.time() - started), 1)
    except psutil.Error:
        return None


def soak(
    exchanges: Sequence[str],
    symbols: int,
    rate: float,
    duration_s: float,
    channels: int = 4,
) -> dict[str, Any]:
    """One bounded soak run; the figures as a dict (see the module doc)."""
    chan = unique_channels(channels)
    with Simulator(exchanges, symbols, rate, duration_s + 120) as sim:
        sim_ps = psutil.Process(sim.proc.pid) if sim.proc is not None else None
        with start_listener(chan, timeout_s=duration_s + 120) as listener:
            listen_ps = psutil.Process(listener.proc.pid)
            argv = [sys.executable, "-m", "feeder", "run", "--sim", sim.url, "--json"]
            argv += ["--duration", str(duration_s), *chan]
            # Files, not pipes: nobody reads a pipe while sampling, and the report is large.
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                feeder = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
                feeder_ps = psutil.Process(feeder.pid)
                t0 = time.monotonic()
                rss: list[tuple[float, float]] = []
                cpu = None
                while feeder.poll() is None:
                    try:
                        rss.append((time.monotonic() - t0, feeder_ps.memory_info().rss / 2**20))
                        cpu = _cpu(feeder_ps)
                    except psutil.Error:
                        break
                    time.sleep(1.0)
                feeder.wait(timeout=120)
                out.seek(0)
                err.seek(0)
                if feeder.returncode != 0:
                    raise RuntimeError(
                        f"feeder run failed ({feeder.returncode}): {err.read()[-3000:]}"
                    )
                report: dict[str, Any] = json.load(out)
            sim_cpu = _cpu(sim_ps)
            listen_cpu = _cpu(listen_ps)
            listened = listener.result(timeout_s=120)
    ex = report["exchanges"]
    books = sum(len(e["symbols"]) for e in ex.values())
    live = sum(1 for e in ex.values() for s in e["symbols"].values() if s["state"] == "live")
    sent, received = report["sent"], listened["received"]
    # Measure after the books reach their steady size if that leaves a third of the run.
    steady_s = STEADY_UPDATES * symbols / rate
    steady = steady_s <= duration_s * 2 / 3
    memory = memory_figures(rss, warmup_s=max(duration_s / 3, steady_s if steady else 0))
    memory["books_at_steady_size"] = steady
    doc = {
        "config": {
            "exchanges": list(exchanges),
            "symbols_per_exchange": symbols,
            "rate_events_per_s_per_exchange": rate,
            "duration_s": duration_s,
            "channels": channels,
        },
        "streams": books * 2,  # trades and book per symbol
        "books_live": live,
        "books": books,
        "sent": sent,
        "received": received,
        "loss": sent - received,
        "receiver_gaps": listened["gaps"],
        "receiver_missing": listened["missing_messages"],
        "exchange_gaps": sum(e["gaps"] for e in ex.values()),
        "resyncs": sum(e["resyncs"] for e in ex.values()),
        "reconnects": sum(e["reconnects"] for e in ex.values()),
        "parse_errors": {n: e["parse_errors"] for n, e in ex.items() if e["parse_errors"]},
        "msgs_per_s": round(sent / report["elapsed_s"], 1) if report["elapsed_s"] else 0,
        "events_per_symbol": round(rate * duration_s / symbols, 1),
        "memory": memory,
        "cpu_pct": {"feeder": cpu, "simulator": sim_cpu, "receiver": listen_cpu},
        "send_path": report["send_path"],
    }
    doc["ok"] = doc["loss"] == 0 and doc["receiver_missing"] == 0 and live == books
    return doc


def render(doc: dict[str, Any]) -> str:
    m = doc["memory"]
    rows = [
        ["streams (symbols x trades+book)", doc["streams"]],
        ["books live at the end", f"{doc['books_live']} / {doc['books']}"],
        ["messages sent", doc["sent"]],
        ["messages received", doc["received"]],
        ["loss (sent - received)", doc["loss"]],
        ["receiver gaps / missing", f"{doc['receiver_gaps']} / {doc['receiver_missing']}"],
        ["exchange-side gaps / resyncs", f"{doc['exchange_gaps']} / {doc['resyncs']}"],
        ["messages/s", doc["msgs_per_s"]],
        ["feeder RSS after warm-up (MB)", f"{m['start_mb']} -> {m['end_mb']}"],
        ["warm-up (s) / books at steady size", f"{m['warmup_s']} / {m['books_at_steady_size']}"],
        ["RSS growth after warm-up", f"{m['growth_pct']} %"],
        ["RSS slope (MB/min)", m["slope_mb_per_min"]],
        ["CPU % feeder / sim / receiver", " / ".join(str(v) for v in doc["cpu_pct"].values())],
    ]
    return table(["soak", "value"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 exchanges x 150 symbols, 8 s")
    ap.add_argument("--symbols", type=int, help="symbols per exchange")
    ap.add_argument("--exchanges", help="comma-separated simulated exchanges")
    ap.add_argument("--duration", type=float, help="seconds (default 60, quick 8)")
    ap.add_argument("--rate", type=float, default=200, help="events/s per exchange")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else FULL
    exchanges = args.exchanges.split(",") if args.exchanges else list(base.exchanges)
    symbols = args.symbols or base.symbols
    duration = args.duration or base.duration_s
    doc = soak(exchanges, symbols, args.rate, duration)
    print(render(doc))
    path = save("soak-quick" if args.quick else "soak", doc)
    print(f"-> {path}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
