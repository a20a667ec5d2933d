"""Binance spot: combined streams ``<symbol>@trade`` and ``<symbol>@depth@100ms``.

Book procedure (Binance "How to manage a local order book correctly"): buffer diff events,
fetch ``GET /api/v3/depth?symbol=..&limit=1000``, drop events with ``u <= lastUpdateId``, the
first applied event must have ``U <= lastUpdateId + 1 <= u``, then each event's ``U`` is the
previous ``u + 1``. The server pings; the client's WebSocket layer answers with pongs.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from feeder.normalize.decimal import TEXT, InexactValue, parse, parse_book, parse_pairs
from feeder.wire import Exchange, Side

_RULE = ContiguousRange()
_BUY, _SELL = Side.BUY, Side.SELL  # not read off the enum per trade (~130 ns each)
MS = 1_000_000


class BinanceAdapter(Adapter):
    name = "binance"
    exchange_id = int(Exchange.BINANCE)
    ws_url = "wss://stream.binance.com:9443/stream"
    rest_url = "https://api.binance.com"
    snapshot_source = SnapshotSource.REST
    ping = Ping(interval_s=0, stale_after_s=30.0)  # server pings every 20 s; we only pong
    subscribe_rate = 5.0  # incoming messages per second per connection
    symbols_per_message = 100

    def __init__(self, price_scale: int = 8, qty_scale: int = 8) -> None:
        super().__init__(price_scale, qty_scale)
        self._next_id = 0

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    def _streams(self, symbols: Sequence[str]) -> list[str]:
        return [
            s for sym in symbols for s in (f"{sym.lower()}@trade", f"{sym.lower()}@depth@100ms")
        ]

    def _request(self, method: str, symbols: Sequence[str]) -> list[str]:
        out = []
        step = self.symbols_per_message
        for i in range(0, len(symbols), step):
            self._next_id += 1
            out.append(
                orjson.dumps(
                    {
                        "method": method,
                        "params": self._streams(symbols[i : i + step]),
                        "id": self._next_id,
                    }
                ).decode()
            )
        return out

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("SUBSCRIBE", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("UNSUBSCRIBE", symbols)

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        msg = json_object(frame)
        data = msg.get("data")
        if data is None:
            if "result" in msg and "id" in msg:
                sink.control("subscribed", str(msg["id"]))
                return
            if "error" in msg or "code" in msg:
                sink.control("error", str(msg.get("error") or msg.get("msg")))
                return
            data = msg  # raw (non-combined) stream
        try:
            kind = data["e"]
            if kind == "trade":
                ps, qs = self.price_scale, self.qty_scale
                # "m": the buyer is the maker, so the aggressor sold.
                sink.trade(
                    data["s"],
                    _SELL if data["m"] else _BUY,
                    parse(data["p"], ps),
                    parse(data["q"], qs),
                    int(data["t"]),
                    int(data["T"]) * MS,  # int() first: "ab" * MS would be a 2 MB string
                    receive_ts_ns,
                )
            elif kind == "depthUpdate":
                symbol = data["s"]
                bids, asks = parse_book(
                    data["b"], data["a"], TEXT[self.price_scale], TEXT[self.qty_scale]
                )
                # Positional (first, last, prev seq, checksum, exchange ts, receive ts): this
                # runs for every depth frame and keyword arguments cost a third of the call.
                u = BookUpdate(
                    False,
                    bids,
                    asks,
                    int(data["U"]),
                    int(data["u"]),
                    0,
                    None,
                    int(data["E"]) * MS,
                    receive_ts_ns,
                )
                sink.book(symbol, u)
            else:
                sink.control("info", f"unhandled event {kind!r}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _levels(self, rows: list[list[str]]) -> list[tuple[int, int]]:
        return parse_pairs(rows, TEXT[self.price_scale], TEXT[self.qty_scale])

    def snapshot_request(self, symbol: str, rest_base: str | None = None) -> Request:
        return Request(
            "GET",
            f"{rest_base or self.rest_url}/api/v3/depth",
            {"symbol": symbol.upper(), "limit": "1000"},
        )

    def parse_snapshot(self, symbol: str, body: bytes, receive_ts_ns: int) -> BookUpdate:
        try:
            d = orjson.loads(body)
            return BookUpdate(
                True,
                self._levels(d["bids"]),
                self._levels(d["asks"]),
                last_seq=int(d["lastUpdateId"]),
                receive_ts_ns=receive_ts_ns,
            )
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ParseError("bad_snapshot", f"{type(e).__name__}: {e}") from None
