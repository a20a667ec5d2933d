"""KuCoin spot, public channels ``/market/match:<SYMBOLS>`` and ``/market/level2:<SYMBOLS>``.

Connecting takes a token (KuCoin docs, "WebSocket > Base Info > Introduction"):
``POST /api/v1/bullet-public`` answers ``{"code":"200000","data":{"token":..,"instanceServers":
[{"endpoint":"wss://ws-api-spot.kucoin.com/","pingInterval":18000,"pingTimeout":10000,..}]}}``;
the client connects to ``<endpoint>?token=<token>&connectId=<unique id>``, the server greets with
``{"id":<connectId>,"type":"welcome"}``, and the client sends ``{"id":..,"type":"ping"}`` every
``pingInterval`` ms (answered by ``"type":"pong"``). Subscriptions are
``{"id":..,"type":"subscribe","topic":"/market/level2:BTC-USDT,ETH-USDT","response":true}``
(answered by ``"type":"ack"``); a topic takes at most 100 symbols and a connection may send at
most 100 messages per 10 s.

Book procedure (docs "Orderbook - Increment", the calibration procedure): cache the
``trade.l2update`` messages, fetch ``GET /api/v1/market/orderbook/level2_100?symbol=`` (its
``sequence`` is the snapshot's), drop cached messages with ``sequenceEnd <= sequence``, apply
the one that straddles ``sequence + 1``, then each message's ``sequenceStart`` must follow the
previous ``sequenceEnd``: the ``ContiguousRange`` rule on [sequenceStart, sequenceEnd].
Each change ``[price, size, sequence]`` also carries its own sequence, the last modification of
that price; the docs skip changes at or below the snapshot's sequence inside the straddling
message. This adapter applies the whole message instead, which gives the same book: a price
appears once per message with its latest size, so a change already in the snapshot sets the
level to the size the snapshot holds. KuCoin also allows overlapping ranges
(``sequenceStart <= previous end + 1``); the rule treats an overlap as a gap and resyncs, since
applying it would re-apply changes older than the book holds. A change with
price ``"0"`` only advances the sequence and is skipped; size ``"0"`` deletes the level.

The snapshot holds the best 100 levels per side while the stream covers the whole book. Every
level the book holds has its true size, but a level deeper than the snapshot's 100 is missing
until the stream changes it, so as levels above are deleted such holes can rise towards the
top. The book is not truncated (KuCoin has no checksum that would need a fixed window).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from feeder.book.sequence import ContiguousRange, SequenceRule
from feeder.exchanges.base import (
    Adapter,
    BookUpdate,
    ParseError,
    Ping,
    Request,
    Sink,
    SnapshotSource,
    json_object,
)
from feeder.normalize.decimal import TEXT, InexactValue, parse, parse_pairs
from feeder.wire import Exchange, Side

_RULE = ContiguousRange()
MS = 1_000_000
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}
_U64 = 1 << 64
OK = "200000"  # KuCoin's REST success code


def _ping() -> str:
    # Any unique id does; KuCoin's own examples use the millisecond clock.
    return f'{{"id":"{time.time_ns() // MS}","type":"ping"}}'


def trade_id(text: str) -> int:
    """Current trade ids are decimal strings; older hex ids give 0 (the wire's "not numeric")."""
    if text.isdigit():
        n = int(text)
        if n < _U64:
            return n
    return 0


def _ping_interval(ms: object) -> float | None:
    """``pingInterval`` in seconds. It paces a sleep loop, so zero, negative, ``true`` or days
    (a ping flood, or none) are refused rather than used."""
    if ms is None:
        return None
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not 1 <= ms <= 3_600_000:
        raise ParseError("bad_token", f"pingInterval {ms!r:.40} is not 1 ms .. 1 h")
    return float(ms) / 1000


class KucoinAdapter(Adapter):
    name = "kucoin"
    symbol_pattern = r"[A-Z0-9]+-[A-Z0-9]+"
    symbol_example = "BTC-USDT"
    exchange_id = int(Exchange.KUCOIN)
    ws_url = "wss://ws-api-spot.kucoin.com/"  # the usual endpoint; the token answer decides
    rest_url = "https://api.kucoin.com"
    snapshot_source = SnapshotSource.REST
    # 18 s and 10 s are what bullet-public announces; url_from_token returns the live value.
    ping = Ping(interval_s=18.0, message=_ping, stale_after_s=28.0)
    subscribe_rate = 10.0  # 100 client messages per 10 s per connection
    symbols_per_message = 100  # symbols per topic
    book_depth = None

    def __init__(self, price_scale: int = 8, qty_scale: int = 8) -> None:
        super().__init__(price_scale, qty_scale)
        self._next_id = 0
        self.connect_id = ""

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    # --- connection handshake ------------------------------------------------------------------

    def token_request(self, rest_base: str | None = None) -> Request:
        return Request("POST", f"{rest_base or self.rest_url}/api/v1/bullet-public")

    def url_from_token(self, body: bytes, ws_base: str | None = None) -> tuple[str, float | None]:
        """``<endpoint>?token=..&connectId=..``; ``ws_base`` replaces the endpoint (simulator)."""
        try:
            msg = orjson.loads(body)
            if msg.get("code") != OK:
                raise ParseError("bad_token", f"code {msg.get('code')}: {msg.get('msg', '')}")
            data = msg["data"]
            server = data["instanceServers"][0]
            endpoint = str(server["endpoint"])
            interval_ms = server.get("pingInterval")
            token = str(data["token"])
        except ParseError:
            raise
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise ParseError("bad_token", f"{type(e).__name__}: {e}") from None
        base = ws_base.rstrip("/") + "/" if ws_base else endpoint
        self.connect_id = uuid.uuid4().hex
        query = urlencode({"token": token, "connectId": self.connect_id})
        return f"{base}?{query}", _ping_interval(interval_ms)

    # --- subscriptions -------------------------------------------------------------------------

    def _request(self, kind: str, symbols: Sequence[str]) -> list[str]:
        out = []
        step = self.symbols_per_message
        for i in range(0, len(symbols), step):
            names = ",".join(symbols[i : i + step])
            for channel in ("/market/match", "/market/level2"):
                self._next_id += 1
                out.append(
                    orjson.dumps(
                        {
                            "id": str(self._next_id),
                            "type": kind,
                            "topic": f"{channel}:{names}",
                            "privateChannel": False,
                            "response": True,
                        }
                    ).decode()
                )
        return out

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("subscribe", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("unsubscribe", symbols)

    # --- frames --------------------------------------------------------------------------------

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        msg = json_object(frame)
        kind = msg.get("type")
        try:
            if kind == "message":
                subject = msg.get("subject")
                if subject == "trade.l2update":
                    self._l2update(msg["data"], receive_ts_ns, sink)
                elif subject == "trade.l3match":
                    self._match(msg["data"], receive_ts_ns, sink)
                else:
                    sink.control("info", f"unhandled subject {subject!r}")
            elif kind == "pong":
                sink.control("pong", str(msg.get("id", "")))
            elif kind == "ack":
                sink.control("subscribed", str(msg.get("id", "")))
            elif kind == "welcome":
                sink.control("info", f"welcome {msg.get('id', '')}")
            elif kind == "ping":
                reply = {"id": msg.get("id", ""), "type": "pong"}
                sink.control("ping", orjson.dumps(reply).decode())
            elif kind == "error":
                sink.control("error", f"{msg.get('code', '')} {msg.get('data', '')}".strip())
            elif kind is None:
                raise ParseError("unexpected", "no type")
            else:
                sink.control("info", f"unhandled type {kind!r}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _match(self, d: dict[str, Any], receive_ts_ns: int, sink: Sink) -> None:
        side = _SIDES.get(d["side"])  # the taker's side
        if side is None:
            raise ParseError("unexpected", f"trade side {d['side']!r}")
        sink.trade(
            d["symbol"],
            side,
            parse(d["price"], self.price_scale),
            parse(d["size"], self.qty_scale),
            trade_id(str(d["tradeId"])),
            int(d["time"]),  # nanoseconds
            receive_ts_ns,
        )

    def _l2update(self, d: dict[str, Any], receive_ts_ns: int, sink: Sink) -> None:
        changes = d["changes"]
        # Positional (first, last, prev seq, checksum, exchange ts, receive ts): every book
        # frame builds one, and keyword arguments cost a third of the call.
        sink.book(
            d["symbol"],
            BookUpdate(
                False,
                self._changes(changes["bids"]),
                self._changes(changes["asks"]),
                int(d["sequenceStart"]),
                int(d["sequenceEnd"]),
                0,
                None,
                int(d["time"]) * MS,
                receive_ts_ns,
            ),
        )

    def _changes(self, rows: list[list[str]]) -> list[tuple[int, int]]:
        ps, qs = self.price_scale, self.qty_scale
        prices, sizes = TEXT[ps], TEXT[qs]
        out = []
        try:
            for p, q, _seq in rows:
                price = prices[p]
                if price:  # price "0": the change only moves the sequence on
                    out.append((price, sizes[q]))
        except TypeError:  # an unhashable value: let parse() name it as it always did
            for p, q, _seq in rows:
                if parse(p, ps):
                    parse(q, qs)
            raise
        return out

    # --- REST snapshot -------------------------------------------------------------------------

    def snapshot_request(self, symbol: str, rest_base: str | None = None) -> Request:
        return Request(
            "GET",
            f"{rest_base or self.rest_url}/api/v1/market/orderbook/level2_100",
            {"symbol": symbol},
        )

    def parse_snapshot(self, symbol: str, body: bytes, receive_ts_ns: int) -> BookUpdate:
        ps, qs = self.price_scale, self.qty_scale
        try:
            msg = orjson.loads(body)
            if msg.get("code") != OK:
                raise ParseError("bad_snapshot", f"code {msg.get('code')}: {msg.get('msg', '')}")
            d = msg["data"]
            return BookUpdate(
                True,
                parse_pairs(d["bids"], TEXT[ps], TEXT[qs]),
                parse_pairs(d["asks"], TEXT[ps], TEXT[qs]),
                last_seq=int(d["sequence"]),
                exchange_ts_ns=int(d["time"]) * MS,
                receive_ts_ns=receive_ts_ns,
            )
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ParseError("bad_snapshot", f"{type(e).__name__}: {e}") from None
