"""``feeder sim``: serve simulated exchanges until stopped (or a duration ends)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from feeder.sim.catalog import instruments
from feeder.sim.faults import Fault
from feeder.sim.protocols import PROTOCOLS
from feeder.sim.server import FaultState, SimExchange, Simulator


def build(
    exchanges: Sequence[str], symbols: int, rate: float, faults: Sequence[str] = (), seed: int = 1
) -> Simulator:
    """``faults``: ``EXCHANGE:KIND[@EVENTS]`` specs, e.g. ``okx:corrupt_checksum@300``."""
    per: dict[str, list[FaultState]] = {name: [] for name in exchanges}
    for spec in faults:
        name, sep, rest = spec.partition(":")
        if not sep or name not in per:
            raise ValueError(
                f"fault {spec!r}: use EXCHANGE:KIND[@EVENTS] with one of {', '.join(exchanges)}"
            )
        per[name].append(FaultState(Fault.parse(rest)))
    sims = []
    for i, name in enumerate(exchanges):
        if name not in PROTOCOLS:
            raise ValueError(f"no simulator for {name!r} (have: {', '.join(sorted(PROTOCOLS))})")
        sims.append(
            SimExchange(
                name, PROTOCOLS[name], instruments(name, symbols), seed=seed + i, faults=per[name]
            )
        )
    return Simulator(sims, rate)


async def serve(
    sim: Simulator, host: str, port: int, duration_s: float | None, ready_file: Path | None
) -> None:
    await sim.start(host, port)
    text = json.dumps(sim.info(host))
    if ready_file is not None:
        ready_file.write_text(text)
    print(text, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if duration_s is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration_s)
    finally:
        await sim.stop()
        print(json.dumps({"stats": sim.stats()}), file=sys.stderr)
