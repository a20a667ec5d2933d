"""``make bench``: every benchmark in one bounded run; each prints its table and writes JSON.

``python -m bench [--quick] [NAME ...]`` with NAME among pipeline, send, recv, recv_capacity,
latency, peer, soak (default: all that exist).
"""

from __future__ import annotations

import importlib
import sys
import time

ORDER = ["pipeline", "send", "recv", "recv_capacity", "latency", "peer", "soak"]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")] or ORDER
    failed = []
    for name in names:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ImportError as e:
            print(f"== {name}: not available ({e})", file=sys.stderr)
            continue
        print(f"\n== bench.{name}", flush=True)
        t0 = time.monotonic()
        rc = mod.main(["--quick"] if quick else [])
        print(f"   ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
