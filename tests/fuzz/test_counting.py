"""Every bad frame is counted, by reason, by the runtime's own connection code.

A scripted exchange (a real aiohttp WebSocket server on loopback, plus the REST endpoints the
adapter calls: KuCoin's token, Binance's and KuCoin's depth snapshots) sends real frames from
the simulator's corpus with bad ones mixed in: text that is not JSON, JSON of the wrong shape,
a frame missing its price fields, a price with more decimals than the scale. ``ExchangeConnection``
reads them through the real ``ExchangeRouter``; its ``stats.parse_errors`` must hold exactly
the reasons the adapter gives each bad frame, the good frames must still reach the router, and
the connection must not have dropped.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from feeder.book.sync import SymbolBook
from feeder.exchanges import ADAPTERS, adapter_class
from feeder.exchanges.base import ParseError
from feeder.instruments import Registry
from feeder.publish.book_output import WireOutput
from feeder.publish.channels import ChannelMap
from feeder.publish.publisher import Publisher
from feeder.publish.sendpath import Candidate, SendPath
from feeder.runtime.connection import ExchangeConnection
from feeder.runtime.router import ExchangeRouter
from feeder.sim.corpus import Corpus, generate
from tests.feeder.fakes import MemoryTransport
from tests.fuzz.wellformed import CheckingSink

REASONS = {"bad_json", "unexpected", "missing_field", "inexact"}


def _numbers(tree: Any, fn: Any) -> Any:
    """``tree`` with every decimal value (a JSON float, or text with a point) passed to fn;
    fn returning None removes the key."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            new = _numbers(v, fn)
            if new is not None:
                out[k] = new
        return out
    if isinstance(tree, list):
        return [_numbers(v, fn) for v in tree]
    decimal_text = isinstance(tree, str) and tree.replace(".", "", 1).isdigit() and "." in tree
    if isinstance(tree, float) or decimal_text:
        return fn(tree)
    return tree


def bad_frames(exchange: str, trade_frame: str) -> list[str]:
    """One bad frame per reason the test expects, made from a good trade frame."""
    tree = json.loads(trade_frame)
    too_precise = _numbers(
        copy.deepcopy(tree), lambda v: 0.123456789 if isinstance(v, float) else "0.123456789"
    )
    no_numbers = _numbers(copy.deepcopy(tree), lambda v: None)
    return ["{not json", "[1, 2]", json.dumps(too_precise), json.dumps(no_numbers)]


def first_trade(exchange: str, corpus: Corpus) -> str:
    adapter = adapter_class(exchange)()
    for line in corpus.lines:
        sink = CheckingSink()
        adapter.parse(line, sink.receive_ts_ns, sink)
        if sink.trades:
            return line
    raise AssertionError(f"{exchange}: no trade in the corpus")


def offline(exchange: str, frames: list[str]) -> tuple[Counter[str], int]:
    """The reasons and the trade count the adapter itself gives these frames."""
    adapter = adapter_class(exchange)()
    reasons: Counter[str] = Counter()
    sink = CheckingSink()
    for f in frames:
        try:
            adapter.parse(f, sink.receive_ts_ns, sink)
        except ParseError as e:
            reasons[e.reason] += 1
    return reasons, sink.trades


def scripted_exchange(frames: list[str], corpus: Corpus) -> web.Application:
    """A WebSocket that sends ``frames`` on connect (then stays open), and REST answers."""

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        for f in frames:
            await sock.send_str(f)
        async for _ in sock:  # subscriptions and pings: read and ignore
            pass
        return sock

    async def token(request: web.Request) -> web.Response:
        endpoint = f"ws://{request.host}/ws"
        body = {
            "code": "200000",
            "data": {
                "token": "t",
                "instanceServers": [{"endpoint": endpoint, "pingInterval": 18000}],
            },
        }
        return web.json_response(body)

    async def snapshot(request: web.Request) -> web.Response:
        return web.Response(body=corpus.snapshots[request.query["symbol"]])

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/ws/", ws)  # KuCoin's endpoint, as url_from_token writes it
    app.router.add_post("/api/v1/bullet-public", token)
    app.router.add_get("/api/v3/depth", snapshot)
    app.router.add_get("/api/v1/market/orderbook/level2_100", snapshot)
    return app


async def run_connection(exchange: str, frames: list[str], corpus: Corpus) -> ExchangeConnection:
    runner = web.AppRunner(scripted_exchange(frames, corpus))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    adapter = adapter_class(exchange)()
    path = SendPath([Candidate("memory", lambda: MemoryTransport(capacity=1 << 20))])
    path.start()
    publisher = Publisher(path, ChannelMap.single("239.1.1.1", 31001, 1))
    registry = Registry()
    for s in corpus.books:
        registry.add(exchange, adapter.exchange_id, s, 1)
    output = WireOutput(publisher, list(registry))
    books = {
        i.symbol: SymbolBook(i.symbol, i.instrument_id, adapter.sequence, output, lambda s: None)
        for i in registry
    }
    instruments = {i.symbol: i for i in registry}
    try:
        async with aiohttp.ClientSession() as http:
            conn = ExchangeConnection(
                adapter,
                list(corpus.books),
                books,
                lambda reply: ExchangeRouter(exchange, instruments, books, output, reply),
                http,
                url=f"ws://127.0.0.1:{port}/ws",
                rest_url=f"http://127.0.0.1:{port}",
                after_frame=lambda read_ns: publisher.poll(),
            )
            task = asyncio.create_task(conn.run())
            # Not a timing assertion: the bound only stops a hang from hanging the suite.
            deadline = time.monotonic() + 30
            while conn.stats.frames < len(frames) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await conn.stop()  # run() returns once the connection is closed
            await asyncio.wait_for(task, 10)
    finally:
        await runner.cleanup()
    return conn


@pytest.mark.parametrize("exchange", sorted(ADAPTERS))
def test_bad_frames_are_counted_by_reason(exchange: str) -> None:
    corpus = generate(exchange, symbols=2, events=60, seed=5)
    bad = bad_frames(exchange, first_trade(exchange, corpus))
    good = corpus.lines
    frames = good[: len(good) // 2] + bad + good[len(good) // 2 :] + bad[:2]
    expected, trades = offline(exchange, frames)
    assert set(expected) == REASONS, expected  # the bad frames cover every reason they should
    assert sum(expected.values()) == len(bad) + 2

    conn = asyncio.run(run_connection(exchange, frames, corpus))

    assert conn.stats.frames == len(frames)
    assert dict(conn.stats.parse_errors) == dict(expected)
    assert conn.router.trades == trades > 0
    assert conn.stats.failures == 0 and conn.stats.reconnects == 0, conn.stats.last_error
