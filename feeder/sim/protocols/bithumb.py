"""Bithumb's public WebSocket v1 as the simulator speaks it: Upbit's protocol (see
``feeder.sim.protocols.upbit``) at Bithumb's path, with Bithumb's field set.

Differences from Upbit, per Bithumb's docs: orderbook messages carry ``"level":1`` (Bithumb's
default grouping unit) and trade messages have no best bid/ask fields. Bithumb does not document
its frame type; the simulator sends text frames (the adapter accepts either).
"""

from __future__ import annotations

from feeder.normalize.decimal import render
from feeder.sim.market import SymbolMarket, Trade
from feeder.sim.protocols.upbit import UpbitSim, now_ms, utc_date_time


class BithumbSim(UpbitSim):
    name = "bithumb"
    binary_frames = False
    level = "1"

    def _trade_frame(
        self, symbol: str, market: SymbolMarket, trade: Trade, ms: int, stream_type: str
    ) -> str:
        day, clock = utc_date_time(ms)
        prev, change, change_price = self.change(trade, market)
        return (
            f'{{"type":"trade","code":"{symbol}",'
            f'"trade_price":{render(trade.price)},"trade_volume":{render(trade.qty)},'
            f'"ask_bid":"{"BID" if trade.buyer_aggressor else "ASK"}",'
            f'"prev_closing_price":{prev},"change":"{change}","change_price":{change_price},'
            f'"trade_date":"{day}","trade_time":"{clock}","trade_timestamp":{ms},'
            f'"sequential_id":{self.sequential_id(trade, ms)},"timestamp":{now_ms()},'
            f'"stream_type":"{stream_type}"}}'
        )
