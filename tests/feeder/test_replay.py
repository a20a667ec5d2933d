"""feeder replay / record: deterministic corpora through the real parse -> book -> encode path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feeder.exchanges import ADAPTERS
from feeder.normalize.decimal import render
from feeder.sim.corpus import generate
from feeder.sim.protocols import PROTOCOLS

EXCHANGES = sorted(set(ADAPTERS) & set(PROTOCOLS))


def feeder(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feeder", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_replay_of_a_corpus_ends_with_the_true_books(exchange: str, tmp_path: Path) -> None:
    corpus = generate(exchange, symbols=3, events=1500)
    frames = tmp_path / "frames.jsonl"
    frames.write_text("\n".join(corpus.lines) + "\n")
    args = ["replay", "--exchange", exchange, "--input", str(frames), "--json"]
    for sym, body in corpus.snapshots.items():
        snap = tmp_path / f"{len(args)}.json"
        snap.write_bytes(body)
        args += ["--snapshot", f"{sym}={snap}"]
    proc = feeder(*args)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["messages"] == len(corpus.lines)
    assert report["parse_errors"] == {}
    depth = ADAPTERS[exchange].book_depth or 10
    for sym, truth in corpus.books.items():
        got = report["symbols"][sym]
        assert got["gaps"] == 0 and got["resyncs"] == 0 and got["state"] == "live"
        assert got["trades"] == corpus.trades[sym]
        assert got["traded_qty"] == render(corpus.traded_qty[sym])
        n = min(10, depth)
        assert got["bids"][:n] == [[render(p), render(q)] for p, q in truth.top_bids(n)]
        assert got["asks"][:n] == [[render(p), render(q)] for p, q in truth.top_asks(n)]


def test_replay_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    proc = feeder("replay", "--exchange", "binance", "--input", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "--input" in proc.stderr and "Traceback" not in proc.stderr
    frames = tmp_path / "f.jsonl"
    frames.write_text("{garbage\n")
    proc = feeder("replay", "--exchange", "nasdaq", "--input", str(frames))
    assert proc.returncode == 2 and "unknown exchange 'nasdaq'" in proc.stderr
    proc = feeder("replay", "--exchange", "binance", "--input", str(frames), "--snapshot", "X")
    assert proc.returncode == 2 and "SYMBOL=FILE" in proc.stderr


def test_replay_counts_garbage_lines(tmp_path: Path) -> None:
    corpus = generate("binance", symbols=1, events=200)
    frames = tmp_path / "f.jsonl"
    frames.write_text("\n".join([corpus.lines[0], "{garbage", *corpus.lines[1:]]) + "\n")
    snap = tmp_path / "s.json"
    snap.write_bytes(next(iter(corpus.snapshots.values())))
    sym = next(iter(corpus.snapshots))
    proc = feeder(
        "replay",
        "--exchange",
        "binance",
        "--input",
        str(frames),
        "--snapshot",
        f"{sym}={snap}",
        "--json",
    )
    report = json.loads(proc.stdout)
    assert report["parse_errors"] == {"bad_json": 1}
    assert report["messages"] == len(corpus.lines) + 1


def test_record_then_replay_from_the_simulator(tmp_path: Path) -> None:
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feeder",
            "sim",
            "--exchanges",
            "binance",
            "--symbols",
            "2",
            "--rate",
            "500",
            "--ready-file",
            str(tmp_path / "r"),
            "--duration",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        import time

        deadline = time.monotonic() + 15
        while not (tmp_path / "r").exists() or not (tmp_path / "r").read_text():
            assert time.monotonic() < deadline and sim.poll() is None
            time.sleep(0.05)
        port = json.loads((tmp_path / "r").read_text())["port"]
        out = tmp_path / "rec.jsonl"
        proc = feeder(
            "record",
            "--exchange",
            "binance",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--sim",
            f"http://127.0.0.1:{port}",
            "--output",
            str(out),
            "--duration",
            "2",
        )
        assert proc.returncode == 0, proc.stderr
        lines = out.read_text().splitlines()
        assert len(lines) > 50 and all(line.startswith("{") for line in lines)
        snaps = sorted(tmp_path.glob("rec.jsonl.*.snapshot.json"))
        assert len(snaps) == 2
        args = ["replay", "--exchange", "binance", "--input", str(out), "--json"]
        for s in snaps:
            args += ["--snapshot", f"{s.name.split('.')[2]}={s}"]
        report = json.loads(feeder(*args).stdout)
        assert report["parse_errors"] == {}
        for st in report["symbols"].values():
            assert st["gaps"] == 0 and st["state"] == "live" and st["book_updates"] > 0
    finally:
        sim.terminate()
        sim.wait(10)
