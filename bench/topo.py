"""Run two benchmark processes across the veth topology and collect their JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from feeder.net.topology import TwoHostTopology

BLAST = [sys.executable, "-m", "bench.blast"]


def pair(
    topo: TwoHostTopology, send_args: list[str], drain_args: list[str], dest: str, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drain in namespace b, send from namespace a; both results."""
    ready = tempfile.mktemp(prefix="bench-ready-")
    drain = subprocess.Popen(
        topo.b.argv(
            [
                *BLAST,
                "drain",
                "--iface",
                topo.b.address,
                "--dest",
                dest,
                "--seconds",
                str(seconds + 10),
                "--ready",
                ready,
                *drain_args,
            ]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            if drain.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"drain did not start: {drain.communicate()[1][-500:]}")
            time.sleep(0.01)
        sender = subprocess.run(
            topo.a.argv(
                [
                    *BLAST,
                    "send",
                    "--iface",
                    topo.a.address,
                    "--dest",
                    dest,
                    "--seconds",
                    str(seconds),
                    *send_args,
                ]
            ),
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        if sender.returncode != 0:
            raise RuntimeError(f"sender failed: {sender.stderr[-800:]}")
        out, err = drain.communicate(timeout=seconds + 30)
        if drain.returncode != 0:
            raise RuntimeError(f"drain failed: {err[-800:]}")
        return json.loads(sender.stdout), json.loads(out)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.wait()
        if os.path.exists(ready):
            os.unlink(ready)
