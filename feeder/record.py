"""``feeder record``: raw frames from a live (or simulated) connection, one per line.

The output is exactly what ``feeder replay`` reads. For exchanges whose books start from a REST
snapshot, the snapshot is saved next to the output (``FILE.SYMBOL.snapshot.json``).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from feeder.exchanges import adapter_class
from feeder.exchanges.base import SnapshotSource


def sim_endpoints(sim: str, exchange: str) -> tuple[str, str]:
    with urllib.request.urlopen(f"{sim.rstrip('/')}/control/info", timeout=5) as r:
        info = json.loads(r.read())["exchanges"]
    if exchange not in info:
        raise ValueError(f"the simulator at {sim} does not serve {exchange}")
    return info[exchange]["url"], info[exchange]["rest_url"]


async def record(
    exchange: str,
    symbols: list[str],
    output: Path,
    sim: str | None,
    duration_s: float,
    count: int | None,
) -> dict[str, Any]:
    adapter = adapter_class(exchange)()
    url, rest = sim_endpoints(sim, exchange) if sim else (None, None)
    frames = 0
    snapshots: dict[str, str] = {}
    deadline = time.monotonic() + duration_s
    async with aiohttp.ClientSession() as http:
        ws_url = adapter.url(url)
        token = adapter.token_request(rest)
        if token is not None:
            async with http.request(token.method, token.url, params=token.params) as r:
                ws_url, _ = adapter.url_from_token(await r.read(), url)
        with output.open("w", encoding="utf-8") as out:
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                for m in adapter.subscribe(symbols):
                    await ws.send_str(m)
                if adapter.snapshot_source is SnapshotSource.REST:
                    await asyncio.sleep(0.2)
                    for sym in symbols:
                        req = adapter.snapshot_request(sym, rest)
                        async with http.request(req.method, req.url, params=req.params) as r:
                            body = await r.read()
                        safe = "".join(c if c.isalnum() else "_" for c in sym)
                        file = output.with_name(f"{output.name}.{safe}.snapshot.json")
                        file.write_bytes(body)
                        snapshots[sym] = str(file)
                while time.monotonic() < deadline and (count is None or frames < count):
                    try:
                        msg = await asyncio.wait_for(
                            ws.receive(), max(deadline - time.monotonic(), 0.01)
                        )
                    except TimeoutError:
                        break
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        text = msg.data
                    elif msg.type is aiohttp.WSMsgType.BINARY:
                        text = msg.data.decode("utf-8", errors="replace")
                    else:
                        break
                    # One frame per line; a raw newline can only be JSON whitespace.
                    out.write(text.replace("\n", " ") + "\n")
                    frames += 1
    return {"frames": frames, "snapshots": snapshots}
