"""Every exchange parser against damaged real frames: only ParseError may escape.

Frames the simulator really sends (seeds), with their JSON values replaced by wrong types,
huge, negative and NaN-like numbers, exponent strings, unicode and deep nesting, keys removed,
lists multiplied, and text cut short (``tests.fuzz.mutate``). What parses must be well-formed.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeder.exchanges import ADAPTERS, adapter_class
from tests.fuzz.budget import examples
from tests.fuzz.mutate import mutated_frame
from tests.fuzz.seeds import collect
from tests.fuzz.wellformed import parse_checked


@pytest.mark.parametrize("exchange", sorted(ADAPTERS))
@examples(300)
@given(data=st.data())
def test_mutated_frames(exchange: str, data: st.DataObject) -> None:
    # One adapter for a short sequence: state it keeps across frames (Kraken's precisions
    # and arrival numbers, KuCoin's connect id) must survive bad frames too.
    adapter = adapter_class(exchange)()
    frames = collect()[exchange].frames
    for _ in range(data.draw(st.integers(1, 2))):
        parse_checked(adapter, data.draw(mutated_frame(frames)))
