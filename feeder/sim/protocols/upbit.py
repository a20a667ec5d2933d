"""Upbit's quotation WebSocket as the simulator speaks it: JSON in binary frames, full top-30
``orderbook`` messages, ``trade`` messages, ``PING`` -> ``{"status":"UP"}``.

A request replaces the connection's whole subscription, as on Upbit; snapshots (orderbook, and
the latest trade unless ``is_only_realtime``) follow it with ``stream_type`` ``SNAPSHOT``. Frames
are written by hand so numbers look as Upbit renders them: JSON numbers, shortest exact decimal
(``137002000``, ``0.10623869``); timestamps are epoch milliseconds. The ``{code}.{count}`` depth
suffix is accepted but every client gets the default 30 pairs (frames are shared by all
subscribers of a code).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from feeder.normalize.decimal import render
from feeder.sim.market import LevelChange, SymbolMarket, Trade
from feeder.sim.protocol import SimProtocol

if TYPE_CHECKING:
    from feeder.sim.server import SimConnection, SimExchange


class RequestError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def utc_date_time(ms: int) -> tuple[str, str]:
    t = datetime.fromtimestamp(ms // 1000, UTC)
    return t.strftime("%Y-%m-%d"), t.strftime("%H:%M:%S")


class UpbitSim(SimProtocol):
    name = "upbit"
    ws_path = "/websocket/v1"
    binary_frames = True
    depth = 30  # orderbook pairs per message (Upbit's default)
    level = "0"  # the "level" (price grouping) field of orderbook messages

    def __init__(self, sim: SimExchange) -> None:
        super().__init__(sim)
        self.last_trade: dict[str, tuple[Trade, int]] = {}

    # --- client messages ------------------------------------------------------------------

    async def on_message(self, conn: SimConnection, text: str) -> None:
        if text.strip() == "PING":
            await conn.send('{"status":"UP"}')
            return
        try:
            trades, books, trade_snaps, book_snaps = self._request(text)
        except RequestError as e:
            body = {"error": {"name": e.name, "message": str(e)}}
            await conn.send(orjson.dumps(body).decode())
            return
        # A request replaces everything this connection had subscribed. Each orderbook code is
        # subscribed together with its snapshot (no await between), so the snapshot comes first.
        conn.trades.clear()
        conn.trades.update(trades)
        conn.books.clear()
        for code in dict.fromkeys(book_snaps + books):
            if code in books:
                conn.books.add(code)
            if code in book_snaps:
                await self.sim.snapshot_to(conn, code)
        for code in trade_snaps:
            last = self.last_trade.get(code)
            if last is not None:
                trade, ms = last
                await conn.send(
                    self._trade_frame(code, self.sim.markets[code], trade, ms, "SNAPSHOT")
                )

    def _request(self, text: str) -> tuple[list[str], list[str], list[str], list[str]]:
        """(trade codes, book codes, trade snapshots, book snapshots) of one request."""
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise RequestError("WRONG_FORMAT", "요청 형식이 올바르지 않습니다.") from None
        if not isinstance(req, list) or not req or not all(isinstance(f, dict) for f in req):
            raise RequestError("WRONG_FORMAT", "요청 형식이 올바르지 않습니다.")
        if "ticket" not in req[0]:
            raise RequestError("NO_TICKET", "티켓이 존재하지 않습니다.")
        out: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        for field in req[1:]:
            if "format" in field:
                if field["format"] != "DEFAULT":
                    raise RequestError("INVALID_PARAM", "the simulator speaks DEFAULT only")
                continue
            if "type" not in field:
                raise RequestError("NO_TYPE", "타입이 존재하지 않습니다.")
            codes = field.get("codes")
            if not isinstance(codes, list) or not codes:
                raise RequestError("NO_CODES", "코드가 존재하지 않습니다.")
            known = [c for c in (str(c).split(".")[0] for c in codes) if c in self.sim.markets]
            live = not field.get("is_only_snapshot", False)
            snap = not field.get("is_only_realtime", False)
            if field["type"] == "trade":
                subs, snaps = out[0], out[2]
            elif field["type"] == "orderbook":
                subs, snaps = out[1], out[3]
            else:
                continue  # ticker etc. are not simulated
            if live:
                subs.extend(known)
            if snap:
                snaps.extend(known)
        return out

    # --- market frames --------------------------------------------------------------------

    def snapshot_frames(self, symbol: str, market: SymbolMarket) -> list[str]:
        return [self._orderbook_frame(symbol, market, "SNAPSHOT")]

    def book_frames(
        self, symbol: str, market: SymbolMarket, changes: list[LevelChange]
    ) -> list[str]:
        self.corrupt_next_checksum = False  # no checksum: every message is the whole book
        return [self._orderbook_frame(symbol, market, "REALTIME")]

    def trade_frames(self, symbol: str, market: SymbolMarket, trade: Trade) -> list[str]:
        ms = now_ms()
        self.last_trade[symbol] = (trade, ms)
        return [self._trade_frame(symbol, market, trade, ms, "REALTIME")]

    def _orderbook_frame(self, symbol: str, market: SymbolMarket, stream_type: str) -> str:
        book, n = market.book, self.depth
        asks, bids = book.top_asks(n), book.top_bids(n)
        units = []
        for i in range(max(len(asks), len(bids))):
            # A side shorter than the other is padded with zeros.
            ap, aq = asks[i] if i < len(asks) else (0, 0)
            bp, bq = bids[i] if i < len(bids) else (0, 0)
            units.append(
                f'{{"ask_price":{render(ap)},"bid_price":{render(bp)},'
                f'"ask_size":{render(aq)},"bid_size":{render(bq)}}}'
            )
        total_ask = render(sum(q for _, q in asks))
        total_bid = render(sum(q for _, q in bids))
        return (
            f'{{"type":"orderbook","code":"{symbol}","timestamp":{now_ms()},'
            f'"total_ask_size":{total_ask},"total_bid_size":{total_bid},'
            f'"orderbook_units":[{",".join(units)}],'
            f'"stream_type":"{stream_type}","level":{self.level}}}'
        )

    @staticmethod
    def sequential_id(trade: Trade, ms: int) -> int:
        # Upbit's ids are the trade time in ms followed by a per-ms counter.
        return ms * 1000 + trade.trade_id % 1000

    @staticmethod
    def change(trade: Trade, market: SymbolMarket) -> tuple[str, str, str]:
        """(prev_closing_price, change, change_price): the instrument's mid is "yesterday"."""
        prev = market.inst.mid
        diff = trade.price - prev
        kind = "RISE" if diff > 0 else "FALL" if diff < 0 else "EVEN"
        return render(prev), kind, render(abs(diff))

    def _trade_frame(
        self, symbol: str, market: SymbolMarket, trade: Trade, ms: int, stream_type: str
    ) -> str:
        day, clock = utc_date_time(ms)
        prev, change, change_price = self.change(trade, market)
        ask = market.book.best_ask() or (0, 0)
        bid = market.book.best_bid() or (0, 0)
        return (
            f'{{"type":"trade","code":"{symbol}","timestamp":{now_ms()},'
            f'"trade_date":"{day}","trade_time":"{clock}","trade_timestamp":{ms},'
            f'"trade_price":{render(trade.price)},"trade_volume":{render(trade.qty)},'
            f'"ask_bid":"{"BID" if trade.buyer_aggressor else "ASK"}",'
            f'"prev_closing_price":{prev},"change":"{change}","change_price":{change_price},'
            f'"sequential_id":{self.sequential_id(trade, ms)},'
            f'"best_ask_price":{render(ask[0])},"best_ask_size":{render(ask[1])},'
            f'"best_bid_price":{render(bid[0])},"best_bid_size":{render(bid[1])},'
            f'"stream_type":"{stream_type}"}}'
        )
