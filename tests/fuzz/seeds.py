"""Real inputs to start fuzzing from, per exchange: what the simulator actually sends.

Two sources: ``feeder.sim.corpus`` (every market-data frame kind, deterministic) and a short
live session against the simulator over a real WebSocket, which adds what only a conversation
produces: subscription acknowledgements, welcome and pong frames, REST snapshot bodies and, for
KuCoin, the bullet-token answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass, field

import aiohttp

from feeder.exchanges import ADAPTERS, adapter_class
from feeder.exchanges.base import SnapshotSource
from feeder.sim.corpus import generate
from feeder.sim.run import build

SYMBOLS = 3


@dataclass(repr=False)
class Seeds:
    frames: list[str] = field(default_factory=list)
    snapshots: list[bytes] = field(default_factory=list)  # REST snapshot bodies
    tokens: list[bytes] = field(default_factory=list)  # token answers (KuCoin)
    symbols: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # hypothesis prints its arguments: keep failures readable
        return f"Seeds({len(self.frames)} frames, {len(self.snapshots)} snapshots)"


async def _session(
    http: aiohttp.ClientSession, name: str, url: str, rest: str, seeds: Seeds, listen_s: float
) -> None:
    adapter = adapter_class(name)()
    ws_url = adapter.url(url)
    token = adapter.token_request(rest)
    if token is not None:
        async with http.request(token.method, token.url, params=token.params) as r:
            body = await r.read()
        seeds.tokens.append(body)
        ws_url, _ = adapter.url_from_token(body, url)
    async with http.ws_connect(ws_url, max_msg_size=0) as ws:
        for m in adapter.subscribe(seeds.symbols):
            await ws.send_str(m)
        if adapter.ping.message is not None:
            await ws.send_str(adapter.ping.message())
        await ws.send_str('{"not": "a request"}')  # the exchange's error reply is a seed too
        if adapter.snapshot_source is SnapshotSource.REST:
            for sym in seeds.symbols:
                req = adapter.snapshot_request(sym, rest)
                async with http.request(req.method, req.url, params=req.params) as r:
                    seeds.snapshots.append(await r.read())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(listen_s):
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        seeds.frames.append(msg.data)
                    elif msg.type is aiohttp.WSMsgType.BINARY:
                        seeds.frames.append(msg.data.decode())


async def _record(listen_s: float) -> dict[str, Seeds]:
    names = sorted(ADAPTERS)
    sim = build(names, SYMBOLS, rate=300)
    await sim.start("127.0.0.1", 0)
    info = sim.info()["exchanges"]
    assert isinstance(info, dict)
    out = {n: Seeds(symbols=list(info[n]["symbols"])) for n in names}
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(
                *(
                    _session(http, n, info[n]["url"], info[n]["rest_url"], out[n], listen_s)
                    for n in names
                )
            )
    finally:
        await sim.stop()
    return out


@functools.cache
def collect(listen_s: float = 0.6, events: int = 120) -> dict[str, Seeds]:
    """Seeds for every exchange (recorded once per process): live frames, then the corpus's."""
    seeds = asyncio.run(_record(listen_s))
    for name, s in seeds.items():
        corpus = generate(name, SYMBOLS, events)
        s.frames.extend(corpus.lines)
        s.snapshots.extend(corpus.snapshots.values())
        assert s.frames, f"{name}: no seed frames"
    return seeds
