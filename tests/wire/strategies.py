"""Hypothesis strategies for wire messages covering every field's full range."""

from __future__ import annotations

from enum import IntFlag

from hypothesis import strategies as st

from feeder.wire import (
    SYMBOL_SIZE,
    BookAction,
    BookDelta,
    BookLevels,
    DeltaFlags,
    Exchange,
    InstrumentDefinition,
    Level,
    LevelsFlags,
    Message,
    Side,
    Status,
    StatusCode,
    Trade,
    TradeFlags,
)

u8 = st.integers(0, 2**8 - 1)
u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
seq = st.integers(1, 2**64 - 1)


def flags_of(flag_type: type[IntFlag]) -> st.SearchStrategy[int]:
    """Any combination of the defined bits (encoders refuse undefined ones)."""
    mask = sum(int(member) for member in flag_type)
    return st.integers(0, mask).map(lambda value: value & mask)


# Known exchange / status codes come back as enum members, unknown ones as plain ints;
# both compare equal to the int that was encoded.
exchange_ids = st.one_of(st.sampled_from(list(Exchange)), u16)
status_codes = st.one_of(st.sampled_from(list(StatusCode)), st.integers(1, 2**16 - 1))


def _symbol_fits(text: str) -> bool:
    return 1 <= len(text.encode("utf-8")) <= SYMBOL_SIZE


symbols = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=SYMBOL_SIZE,
).filter(_symbol_fits)

trades = st.builds(
    Trade,
    instrument_id=u32,
    side=st.sampled_from(list(Side)),
    flags=flags_of(TradeFlags),
    price=i64,
    qty=i64,
    trade_id=u64,
    exchange_ts_ns=u64,
    receive_ts_ns=u64,
)


@st.composite
def book_deltas(draw: st.DrawFn) -> BookDelta:
    action = draw(st.sampled_from(list(BookAction)))
    sides = list(Side) if action is BookAction.CLEAR else [Side.BUY, Side.SELL]
    return BookDelta(
        instrument_id=draw(u32),
        side=draw(st.sampled_from(sides)),
        action=action,
        flags=draw(flags_of(DeltaFlags)),
        price=draw(i64),
        qty=draw(i64),
        exchange_seq=draw(u64),
        exchange_ts_ns=draw(u64),
        receive_ts_ns=draw(u64),
    )


levels = st.builds(Level, price=i64, qty=i64)


def book_levels(max_levels: int = 40) -> st.SearchStrategy[BookLevels]:
    @st.composite
    def build(draw: st.DrawFn) -> BookLevels:
        n_bids = draw(st.integers(0, max_levels))
        n_asks = draw(st.integers(0, max_levels - n_bids))
        return BookLevels(
            instrument_id=draw(u32),
            flags=draw(flags_of(LevelsFlags)),
            exchange_seq=draw(u64),
            exchange_ts_ns=draw(u64),
            receive_ts_ns=draw(u64),
            bids=tuple(draw(st.lists(levels, min_size=n_bids, max_size=n_bids))),
            asks=tuple(draw(st.lists(levels, min_size=n_asks, max_size=n_asks))),
        )

    return build()


instrument_definitions = st.builds(
    InstrumentDefinition,
    instrument_id=u32,
    exchange_id=exchange_ids,
    price_exponent=st.integers(0, 18),
    qty_exponent=st.integers(0, 18),
    symbol=symbols,
)

statuses = st.builds(
    Status,
    instrument_id=u32,
    exchange_id=exchange_ids,
    status=status_codes,
    detail=u32,
    ts_ns=u64,
)


def messages(max_levels: int = 40) -> st.SearchStrategy[Message]:
    """Any message; BookLevels limited to ``max_levels`` levels so it fits the packet size."""
    return st.one_of(
        trades, book_deltas(), book_levels(max_levels), instrument_definitions, statuses
    )
