"""Coinbase Exchange: channels ``level2_batch``, ``matches`` and ``heartbeat`` on one connection.

Endpoint ``wss://ws-feed.exchange.coinbase.com`` (Coinbase Exchange docs, "WebSocket Feed" and
"WebSocket Channels"). One ``{"type": "subscribe", "product_ids": [..], "channels": [..]}`` per
batch of products; the server acknowledges with a ``subscriptions`` message and reports problems
as ``{"type": "error", "message": .., "reason": ..}``. A subscribe must arrive within 5 s of
connecting. ``level2_batch`` is used rather than ``level2``: it carries the same messages
batched every 50 ms and, unlike ``level2``, needs no authentication.

Book procedure (docs "Level2 Channel"): subscribing pushes a ``snapshot`` with the whole book
(``bids``/``asks`` as ``[price, size]`` string pairs), then ``l2update`` messages whose
``changes`` are ``[side, price, size]`` with the level's new total size (``"0"`` deletes) and a
``time``. Level-2 messages carry no sequence number, so the rule is ``NoSequence``: a lost
update shows only as a crossed book. A resync resubscribes the product, which pushes a fresh
snapshot. There is no checksum and no depth limit.

Trades (``matches``): ``side`` is the MAKER order's side, so the aggressor is the opposite one.
``sequence`` is the product's full-channel sequence and jumps between matches (other order
events take numbers too), so it cannot reveal a lost trade; ``trade_id`` is published. The
``last_match`` sent on subscribing repeats the latest trade and is not published again.

Keepalive: the client never pings. The ``heartbeat`` channel sends one message per product each
second, which keeps a quiet product's stream alive and lets a silent one be declared stale.
Limits (docs "Rate Limits"): 100 client messages per second per IP; half of it is used so other
connections from the same host keep headroom. No per-message product limit is documented.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson

from feeder.book.sequence import NoSequence, SequenceRule
from feeder.exchanges.base import (
    Adapter,
    BookUpdate,
    ParseError,
    Ping,
    Sink,
    SnapshotSource,
    json_object,
)
from feeder.normalize.decimal import TEXT, InexactValue, parse, parse_pairs
from feeder.wire import Exchange, Side

_RULE = NoSequence()
CHANNELS = ("level2_batch", "matches", "heartbeat")
# The maker's side names the resting order: a resting buy was hit by a seller.
_AGGRESSOR = {"buy": Side.SELL, "sell": Side.BUY}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_day_cache: dict[str, int] = {}


_second_cache: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds, once it parsed


def iso_ns(text: str) -> int:
    """``2022-08-04T15:25:05.010758Z`` (UTC, 0-9 fraction digits) as ns since the epoch."""
    # Every frame carries one; frames of the same second share the part before the fraction,
    # which is remembered once it parsed, leaving only the fraction to check and read.
    if len(text) == 27 and text[26] == "Z" and text[19] == ".":  # Coinbase's own shape
        seconds = _second_cache.get(text[:19])
        micros = text[20:26]
        if seconds is not None and micros.isascii() and micros.isdigit():
            return seconds * 1_000_000_000 + int(micros) * 1000
    if text.endswith("Z"):
        body = text[:-1]
    elif text.endswith("+00:00"):
        body = text[:-6]
    else:
        body = text
    seconds = _second_cache.get(body[:19])
    if seconds is None:
        value = _iso_ns(text)  # the full checks (and their errors)
        if len(_second_cache) > 4096:
            _second_cache.clear()
        _second_cache[body[:19]] = value // 1_000_000_000
        return value
    if len(body) == 19:
        return seconds * 1_000_000_000
    frac = body[20:]
    if body[19] != "." or not frac.isdigit():
        raise ValueError(f"bad timestamp {body!r}")
    return seconds * 1_000_000_000 + int(frac[:9].ljust(9, "0"))


def _iso_ns(text: str) -> int:
    if text.endswith("Z"):
        text = text[:-1]
    elif text.endswith("+00:00"):
        text = text[:-6]
    if len(text) < 19 or text[10] != "T" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"bad timestamp {text!r}")
    hh, mm, ss = text[11:13], text[14:16], text[17:19]
    frac = text[20:]
    if not (hh.isdigit() and mm.isdigit() and ss.isdigit()) or (
        len(text) > 19 and (text[19] != "." or not frac.isdigit())
    ):
        raise ValueError(f"bad timestamp {text!r}")
    day = text[:10]
    base = _day_cache.get(day)
    if base is None:
        base = (date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL) * 86_400
        if len(_day_cache) > 16:  # one entry a day is enough; never grow without bound
            _day_cache.clear()
        _day_cache[day] = base
    seconds = base + int(hh) * 3600 + int(mm) * 60 + int(ss)
    return seconds * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)


class CoinbaseAdapter(Adapter):
    name = "coinbase"
    symbol_pattern = r"[A-Z0-9]+-[A-Z0-9]+"
    symbol_example = "BTC-USD"
    exchange_id = int(Exchange.COINBASE)
    ws_url = "wss://ws-feed.exchange.coinbase.com"
    rest_url = "https://api.exchange.coinbase.com"
    snapshot_source = SnapshotSource.PUSH
    # No client pings; heartbeats arrive every second per product.
    ping = Ping(interval_s=0, stale_after_s=15.0)
    subscribe_rate = 50.0
    symbols_per_message = 100

    @property
    def sequence(self) -> SequenceRule:
        return _RULE

    def _request(self, kind: str, symbols: Sequence[str]) -> list[str]:
        step = self.symbols_per_message
        return [
            orjson.dumps(
                {"type": kind, "product_ids": list(symbols[i : i + step]), "channels": CHANNELS}
            ).decode()
            for i in range(0, len(symbols), step)
        ]

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("subscribe", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._request("unsubscribe", symbols)

    def parse(self, frame: str | bytes, receive_ts_ns: int, sink: Sink) -> None:
        msg = json_object(frame)
        try:
            kind = msg["type"]
            if kind == "l2update":
                self._l2update(msg, receive_ts_ns, sink)
            elif kind == "match":
                ps, qs = self.price_scale, self.qty_scale
                side = _AGGRESSOR.get(msg["side"])
                if side is None:
                    raise ParseError("unexpected", f"match side {msg['side']!r}")
                sink.trade(
                    msg["product_id"],
                    side,
                    parse(msg["price"], ps),
                    parse(msg["size"], qs),
                    int(msg["trade_id"]),
                    iso_ns(msg["time"]),
                    receive_ts_ns,
                )
            elif kind == "heartbeat" or kind == "last_match":
                return  # liveness only / a repeat of a trade already published
            elif kind == "snapshot":
                sink.book(
                    msg["product_id"],
                    BookUpdate(
                        True,
                        self._levels(msg["bids"]),
                        self._levels(msg["asks"]),
                        receive_ts_ns=receive_ts_ns,
                    ),
                )
            elif kind == "subscriptions":
                names = [c["name"] if isinstance(c, dict) else str(c) for c in msg["channels"]]
                sink.control("subscribed", ",".join(names))
            elif kind == "error":
                sink.control("error", f"{msg.get('message')}: {msg.get('reason', '')}")
            else:
                sink.control("info", f"unhandled type {kind!r}")
        except ParseError:
            raise
        except InexactValue as e:
            raise ParseError("inexact", str(e)) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ParseError("missing_field", f"{type(e).__name__}: {e}") from None

    def _l2update(self, msg: dict[str, Any], receive_ts_ns: int, sink: Sink) -> None:
        ps, qs = self.price_scale, self.qty_scale
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        prices, sizes = TEXT[ps], TEXT[qs]
        try:
            for side, price, size in msg["changes"]:
                if side == "buy":
                    bids.append((prices[price], sizes[size]))
                elif side == "sell":
                    asks.append((prices[price], sizes[size]))
                else:
                    raise ParseError("unexpected", f"l2update side {side!r}")
        except TypeError:  # an unhashable value: let parse() name it as it always did
            for _side, price, size in msg["changes"]:
                parse(price, ps)
                parse(size, qs)
            raise
        sink.book(
            msg["product_id"],
            # Positional (first, last, prev seq, checksum, exchange ts, receive ts): every book
            # frame builds one, and keyword arguments cost a third of the call.
            BookUpdate(False, bids, asks, 0, 0, 0, None, iso_ns(msg["time"]), receive_ts_ns),
        )

    def _levels(self, rows: list[list[str]]) -> list[tuple[int, int]]:
        return parse_pairs(rows, TEXT[self.price_scale], TEXT[self.qty_scale])
