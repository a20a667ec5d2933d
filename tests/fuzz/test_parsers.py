"""Every exchange parser against arbitrary input: only ParseError may escape.

For each adapter: random bytes and text, and random JSON. The REST snapshot parsers and
KuCoin's token parser get damaged versions of their real inputs. Whatever parses must be
well-formed (``tests.fuzz.wellformed``); whatever does not must raise ``ParseError`` with a
short reason code, since the runtime counts bad frames by that code. Damaged real frames are
``test_mutations``.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.exchanges import ADAPTERS, adapter_class
from feeder.exchanges.base import ParseError, SnapshotSource
from tests.fuzz.budget import examples
from tests.fuzz.mutate import dumps, json_values, mutated_frame
from tests.fuzz.seeds import collect
from tests.fuzz.wellformed import REASON, check_update, parse_checked

EXCHANGES = sorted(ADAPTERS)
REST = sorted(n for n, a in ADAPTERS.items() if a.snapshot_source is SnapshotSource.REST)


@pytest.mark.parametrize("exchange", EXCHANGES)
@examples(300)
@given(frame=st.binary(max_size=400) | st.text(max_size=400))
def test_arbitrary_input(exchange: str, frame: str | bytes) -> None:
    parse_checked(adapter_class(exchange)(), frame)


@pytest.mark.parametrize("exchange", EXCHANGES)
@examples(300)
@given(value=json_values)
def test_arbitrary_json(exchange: str, value: object) -> None:
    parse_checked(adapter_class(exchange)(), dumps(value))


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_seed_frames_parse(exchange: str) -> None:
    """The unmutated seeds are good input: the mutations start from frames that parse."""
    adapter = adapter_class(exchange)()
    frames = collect()[exchange].frames
    failures = [(f, r) for f in frames if (r := parse_checked(adapter, f)) is not None]
    assert not failures, failures[:3]


def _raw(body: str | bytes) -> bytes:
    return body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else body


@pytest.mark.parametrize("exchange", REST)
@examples(400)
@given(data=st.data())
def test_mutated_snapshots(exchange: str, data: st.DataObject) -> None:
    adapter = adapter_class(exchange)()
    seeds = collect()[exchange]
    bodies = [b.decode() for b in seeds.snapshots]
    body = _raw(data.draw(mutated_frame(bodies) | st.binary(max_size=200)))
    try:
        update = adapter.parse_snapshot(seeds.symbols[0], body, 123)
    except ParseError as e:
        assert REASON.fullmatch(e.reason)
        return
    check_update(update, 123)
    assert update.snapshot


@examples(400)
@given(data=st.data())
def test_mutated_tokens(data: st.DataObject) -> None:
    adapter = adapter_class("kucoin")()
    bodies = [b.decode() for b in collect()["kucoin"].tokens]
    body = _raw(data.draw(mutated_frame(bodies) | st.binary(max_size=200)))
    base = data.draw(st.sampled_from([None, "ws://127.0.0.1:1/kucoin/"]))
    try:
        url, interval = adapter.url_from_token(body, base)
    except ParseError as e:
        assert REASON.fullmatch(e.reason)
        return
    assert isinstance(url, str) and "token=" in url
    # The ping interval paces a sleep loop: a sane positive time, or absent (the default).
    if interval is not None:
        assert math.isfinite(interval) and 0.001 <= interval <= 3600, interval
