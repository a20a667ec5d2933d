"""Bithumb public WebSocket v1: types ``trade`` and ``orderbook``, Upbit's wire format.

Which API: Bithumb has two public WebSocket APIs. The classic ``wss://pubwss.bithumb.com/pub/ws``
(``{"type": "transaction" | "orderbookdepth", "symbols": [..]}``) is documented only under the old
v1.2.0 docs; its ``orderbookdepth`` deltas carry no sequence number, so joining them to a REST
snapshot can never be proven consistent. The current docs (apidocs.bithumb.com, "WebSocket >
기본 정보", "요청 방법 및 포맷", "호가", "체결", "연결 관리") describe only
``wss://ws-api.bithumb.com/websocket/v1``, whose requests, messages and keepalive are Upbit's
(``[{"ticket"}, {"type", "codes"}, {"format"}]``, ``orderbook_units``, ``sequential_id``,
``PING`` -> ``{"status":"UP"}`` every 10 s, 120 s idle timeout). It is the better documented one
and the safer one: every ``orderbook`` message is the whole top of the book, so no snapshot has
to be stitched to deltas. So this adapter is ``UpbitAdapter`` with Bithumb's endpoint and limits.

Differences handled by the shared parser: Bithumb frames have been seen with ``timestamp`` as a
microsecond string and ``sequential_id`` as a string (its REST orderbook mixed ms and us until
2025-11), so both units and both encodings are accepted. Bithumb's docs state neither a default
orderbook depth for the WebSocket nor a cap on codes; its REST orderbook gives 30 levels for one
market, and since each message replaces the book a shallower real depth is harmless. Frame type
(text or binary) is not documented; ``parse`` accepts both. Limits: 10 connection requests per
second per IP (docs "기본 정보"); no data-request limit is documented, Upbit's 5/s is used.
Subscriptions replace each other per connection, as on Upbit.
"""

from __future__ import annotations

from feeder.exchanges.upbit import UpbitAdapter
from feeder.wire import Exchange


class BithumbAdapter(UpbitAdapter):
    name = "bithumb"
    exchange_id = int(Exchange.BITHUMB)
    ws_url = "wss://ws-api.bithumb.com/websocket/v1"
    rest_url = "https://api.bithumb.com"
