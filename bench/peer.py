"""The same corpus through cryptofeed, side by side with this feeder, ratio printed.

cryptofeed is installed only for this benchmark, into its own venv (``bench/.peer-venv``;
PyPI needed the first time), and driven offline: its symbol table is filled in and its Binance
REST snapshot call reads the corpus's snapshot. It parses OKX (books with checksum validation,
trades) and Binance book updates (its Binance feed reads aggTrade, not trade: those frames
are ignored by it). Ours runs the full replay path (parse -> book -> encode) on the same lines.
Usage: ``python -m bench.peer [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

from bench.common import best_of, save, table
from feeder.publish.channels import ChannelMap
from feeder.replay import NullTransport, replay
from feeder.sim.corpus import generate

PEER_VENV = Path(__file__).parent / ".peer-venv"
PEER = "cryptofeed==2.4.1"


def peer_python() -> Path:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        venv.create(PEER_VENV, with_pip=True)
    check = subprocess.run([py, "-c", "import cryptofeed"], capture_output=True)
    if check.returncode != 0:
        print(f"installing {PEER} into {PEER_VENV} (benchmark only) ...", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", PEER], check=True)
    return py


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    events, repeat = (3000, 2) if args.quick else (args.events, 3)
    try:
        py = peer_python()
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"bench.peer: cannot install {PEER}: {e}", file=sys.stderr)
        return 0
    rows: list[dict[str, Any]] = []
    for exchange in ("okx", "binance"):
        corpus = generate(exchange, symbols=4, events=events)
        tmp = Path(tempfile.mkdtemp(prefix="bench-peer-"))
        frames = tmp / "frames.jsonl"
        frames.write_text("\n".join(corpus.lines) + "\n")
        snaps = {}
        for sym, body in corpus.snapshots.items():
            (tmp / f"{sym}.json").write_bytes(body)
            snaps[sym] = tmp / f"{sym}.json"
        worker = Path(__file__).with_name("peer_worker.py")
        out = subprocess.run(
            [py, worker, exchange, frames, tmp, str(repeat)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if out.returncode != 0:
            rows.append({"exchange": exchange, "error": out.stderr.strip()[-300:]})
            continue
        peer = json.loads(out.stdout.strip().splitlines()[-1])
        chmap = ChannelMap.single("239.100.0.1", 31001, 1)
        lines = corpus.lines
        symbols = list(corpus.books)

        def ours_once(
            ex: str = exchange,
            ls: list[str] = lines,
            sn: dict[str, Path] = snaps,
            sy: list[str] = symbols,
            ch: ChannelMap = chmap,
        ) -> None:
            replay(ex, ls, sn, sy, NullTransport(), ch)

        ours = best_of(ours_once, repeat)
        rows.append(
            {
                "exchange": exchange,
                "frames": len(lines),
                "ours_ns_per_frame": ours / len(lines) * 1e9,
                "cryptofeed_ns_per_frame": peer["seconds"] / len(lines) * 1e9,
                "speedup": peer["seconds"] / ours,
                "cryptofeed_callbacks": peer["callbacks"],
            }
        )
    print(
        table(
            ["exchange", "frames", "ours ns/frame", "cryptofeed ns/frame", "speedup"],
            [
                [
                    r["exchange"],
                    r.get("frames", "-"),
                    r.get("ours_ns_per_frame", 0.0),
                    r.get("cryptofeed_ns_per_frame", 0.0),
                    r.get("speedup", 0.0),
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        if "error" in r:
            print(f"  {r['exchange']}: {r['error']}", file=sys.stderr)
    print(f"-> {save('peer', {'events': events, 'peer': PEER, 'results': rows})}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
