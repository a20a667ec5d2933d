"""OKX v5 public WebSocket: channels ``trades`` and ``books`` (400 levels, pushed every 100 ms).

Book procedure (OKX API v5 docs, "WebSocket / Order book channel"): subscribing pushes a full
snapshot (``action: "snapshot"``, ``prevSeqId: -1``), then updates whose ``prevSeqId`` equals the
previous message's ``seqId`` (rule ``PrevLinked``). Two documented oddities need no special case
under that rule: a keepalive update with no levels repeats ``seqId`` (``prevSeqId == seqId``), and
after maintenance the sequence may restart lower (``seqId < prevSeqId``) while still linking.
Resync = resubscribe (OKX has no REST snapshot with a matching ``seqId``).

Checksum ("Checksum" in the same section): CRC32 as a signed 32-bit integer of the best 25 bids
and asks as ``bid_px:bid_sz:ask_px:ask_sz:...``, alternating, a side's pairs simply ending when
it has fewer than 25. The string is made of OKX's own number text; OKX writes decimals without
trailing zeros (``"8477"``, ``"0.1"`` in every documented frame), so the book's fixed-point values
are rendered the same way.

Keepalive ("Connect"): OKX drops a connection idle for 30 s; the client sends the text ``ping``
when nothing arrived for N < 30 s and the server answers the text ``pong``. Limits ("Connection
count limit" / "Subscription"): 480 subscribe/unsubscribe/login requests per connection per hour,
each request's args at most 64 KB; OKX advises fewer than 30 ``books`` channels per connection.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import orjson

from feeder.book.orderbook import OrderBook
from feeder.book.sequence import PrevLinked, SequenceRule
from feeder.exchanges.base import (
    Adapter,
    BookUpdate,
    LevelText,
    ParseError,
    Ping,
    Sink,
    SnapshotSource,
    json_object,
)
from feeder.normalize.decimal import (
    TEXT,
    InexactValue,
    parse,
    parse_book_rows,
    render,
)
from feeder.wire import Exchange, Side

_RULE = PrevLinked()
MS = 1_000_000
CHECKSUM_LEVELS = 25
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def _ping() -> str:
    return "ping"


def signed32(crc: int) -> int:
    """An unsigned CRC32 as OKX reports it: a signed 32-bit integer."""
    return crc - (1 << 32) if crc & 0x8000_0000 else crc


def checksum_text(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> str:
    """OKX's check string: best bid, best ask, second bid, second ask..., as ``px:sz``."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return ":".join(parts)


class OkxAdapter(Adapter):
    """Symbols are OKX instrument ids as OKX spells them (``BTC-USDT``)."""

    name = "okx"
    symbol_pattern = r"[A-Z0-9]+-[A-Z0-9]+(-[A-Z0-9]+)*"
    symbol_example = "BTC-USDT"
    exchange_id = int(Exchange.OKX)
    ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    rest_url = "https://www.okx.com"
    snapshot_source = SnapshotSource.PUSH
    ping = Ping(interval_s=25.0, message=_ping, stale_after_s=30.0)
    # 480 subscribe/unsubscribe requests per connection per hour, as a steady rate.
    subscribe_rate = 480 / 3600
    subscribe_burst = 20  # the hourly budget allows short bursts (a resync is 2 requests)
    # Two args (trades, books) of ~45 bytes per symbol: far below the 64 KB request cap.
    symbols_per_message = 100
    book_depth = 400  # the ``books`` channel keeps 400 levels per side

    def __init__(self, price_scale: int = 8, qty_scale: int = 8) -> None:
        super().__init__(price_scale, qty_scale)
        self._text = LevelText(self._render)  # (price, size) -> "px:sz"
        # A level's new size is rendered beside its price's known text, not both afresh.
        self._prices: dict[int, str] = {}
        self._sizes: dict[int, str] = {}

    def _render(self, price: int, size: int) -> str:
        prices, sizes = self._prices, self._sizes
        pt = prices.get(price)
        if pt is None:
            if len(prices) >= 1 << 16:
                prices.clear()
            pt = prices[price] = render(price, self.price_scale)
        st = sizes.get(size)
        if st is None:
            if len(sizes) >= 1 << 16:
                sizes.clear()
            st = sizes[size] = render(size, self.qty_scale)
        return f"{pt}:{st}"

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    def _request(self, op: str, symbols: Sequence[str]) -> list[str]:
        step = self.symbols_per_message
        return [
            orjson.dumps(
                {
                    "op": op,
                    "args": [
                        {"channel": channel, "instId": sym}
                        for sym in symbols[i : i + step]
                        for channel in ("trades", "books")
                    ],
                }
            ).decode()
            for i in range(0, len(symbols), step)
        ]

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("subscribe", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("unsubscribe", symbols)

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        if frame == "pong" or frame == b"pong":  # the answer to our text ping, not JSON
            sink.control("pong", "pong")
            return
        msg = json_object(frame)
        event = msg.get("event")
        if event is not None:
            self._event(event, msg, sink)
            return
        try:
            arg = msg["arg"]
            channel = arg["channel"]
            if channel == "books":
                self._books(arg["instId"], msg["action"], msg["data"], receive_ts_ns, sink)
            elif channel == "trades":
                self._trades(msg["data"], receive_ts_ns, sink)
            else:
                sink.control("info", f"unhandled channel {channel!r}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _books(
        self, symbol: str, action: str, data: list[dict[str, Any]], receive_ts_ns: int, sink: Sink
    ) -> None:
        if action not in ("snapshot", "update"):
            raise ParseError("unexpected", f"books action {action!r}")
        snapshot = action == "snapshot"
        prices, sizes = TEXT[self.price_scale], TEXT[self.qty_scale]
        for d in data:
            checksum = d.get("checksum")
            # [price, size, deprecated "0", order count]: only the first two matter.
            bids, asks = parse_book_rows(d["bids"], d["asks"], prices, sizes)
            # Positional (first, last, prev seq, checksum, exchange ts, receive ts): every book
            # frame builds one, and keyword arguments cost a third of the call.
            u = BookUpdate(
                snapshot,
                bids,
                asks,
                0,
                int(d["seqId"]),
                int(d["prevSeqId"]),
                None if checksum is None else int(checksum),
                int(d["ts"]) * MS,
                receive_ts_ns,
            )
            sink.book(symbol, u)

    def _trades(self, data: list[dict[str, Any]], receive_ts_ns: int, sink: Sink) -> None:
        ps, qs = self.price_scale, self.qty_scale
        for t in data:
            side = _SIDES.get(t["side"])
            if side is None:  # OKX's "side" is the taker's: buy or sell, nothing else
                raise ParseError("unexpected", f"trade side {t['side']!r}")
            sink.trade(
                t["instId"],
                side,
                parse(t["px"], ps),
                parse(t["sz"], qs),
                int(t["tradeId"]),
                int(t["ts"]) * MS,
                receive_ts_ns,
            )

    def _event(self, event: object, msg: dict[str, Any], sink: Sink) -> None:
        arg = msg.get("arg")
        what = f"{arg.get('channel')}:{arg.get('instId')}" if isinstance(arg, dict) else ""
        if event == "subscribe":
            sink.control("subscribed", what)
        elif event == "error":
            sink.control("error", f"{msg.get('code')}: {msg.get('msg')}")
        elif event == "unsubscribe":
            sink.control("info", f"unsubscribed {what}")
        else:  # notice (service upgrade coming), channel-conn-count, ...
            sink.control("info", f"{event}: {msg.get('code', '')} {msg.get('msg', '')}".strip())

    def checksum(self, symbol: str, book: OrderBook) -> int | None:
        # Checked on every update over 50 levels: the book keeps each level's "px:sz" text in
        # price order (rendered once per level, remembered), so the top 25 are slices, and the
        # sides are interleaved by slice assignment. Same string as checksum_text().
        bid_text, ask_text = book.level_texts(self._text)
        bids = bid_text[-CHECKSUM_LEVELS:]
        bids.reverse()  # best first
        asks = ask_text[:CHECKSUM_LEVELS]
        if len(bids) == len(asks):  # the usual case: no slicing to equal lengths first
            parts = bids + asks
            parts[0::2] = bids
            parts[1::2] = asks
        else:
            n = min(len(bids), len(asks))
            parts = bids[:n] + asks[:n]
            parts[0::2] = bids[:n]
            parts[1::2] = asks[:n]
            parts += bids[n:] or asks[n:]  # the deeper side's remaining levels
        return signed32(zlib.crc32(":".join(parts).encode()))
