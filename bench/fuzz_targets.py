"""Coverage-guided fuzzing for long runs: every exchange parser and the wire decoder (atheris).

The CI fuzz tests (``tests/fuzz``, hypothesis) are bounded; these targets run as long as asked,
guided by coverage, and keep what they learn in a corpus directory::

    pip install atheris                      # optional: not a test dependency
    python -m bench.fuzz_targets binance -atheris_runs=200000
    python -m bench.fuzz_targets wire -max_total_time=600 /tmp/wire-corpus
    python -m bench.fuzz_targets --list      # every target
    python -m bench.fuzz_targets okx --seeds # run the seeds once, without atheris

Targets: each exchange (its ``parse``), ``EXCHANGE-snapshot`` for the REST snapshot parsers,
``kucoin-token``, and ``wire`` (``decode_header``/``decode_packet``). Arguments after the target
go to libFuzzer (``-atheris_runs=N``, ``-max_len=N``, corpus directories, ...). Without a corpus
directory the run starts from seeds written to a temporary one: the simulator's exact frames
(``feeder.sim.corpus``), REST snapshot bodies, a token answer, and encoder-built packets.

A crash is any exception other than ``ParseError`` leaving a parser, a malformed value handed
on (``tests.fuzz.wellformed``), or the decoder raising or disagreeing with itself.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from feeder.exchanges import ADAPTERS, adapter_class
from feeder.exchanges.base import ParseError, SnapshotSource
from feeder.sim.corpus import generate
from feeder.wire import (
    BookAction,
    Packet,
    PacketEncoder,
    PacketHeader,
    Reject,
    Side,
    decode_header,
    decode_packet,
)
from tests.fuzz.wellformed import REASON, check_update, parse_checked

Target = Callable[[bytes], None]
USAGE = "usage: python -m bench.fuzz_targets TARGET [--seeds | libFuzzer args...] | --list"
TOKEN = (
    b'{"code":"200000","data":{"token":"t","instanceServers":[{"endpoint":'
    b'"wss://ws-api-spot.kucoin.com/","protocol":"websocket","pingInterval":18000}]}}'
)


def _as_text_too(one: Callable[[str | bytes], None]) -> Target:
    """Frames arrive as bytes (binary WebSocket frames) or text: try both forms."""

    def target(data: bytes) -> None:
        one(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        one(text)

    return target


def parse_target(exchange: str) -> Target:
    adapter = adapter_class(exchange)()  # one instance: state across frames is fuzzed too

    def one(frame: str | bytes) -> None:
        parse_checked(adapter, frame)

    return _as_text_too(one)


def snapshot_target(exchange: str) -> Target:
    adapter = adapter_class(exchange)()

    def target(data: bytes) -> None:
        try:
            update = adapter.parse_snapshot("X", data, 1)
        except ParseError as e:
            assert REASON.fullmatch(e.reason), e.reason
            return
        check_update(update, 1)

    return target


def token_target() -> Target:
    adapter = adapter_class("kucoin")()

    def target(data: bytes) -> None:
        try:
            url, interval = adapter.url_from_token(data)
        except ParseError as e:
            assert REASON.fullmatch(e.reason), e.reason
            return
        assert isinstance(url, str)
        assert interval is None or 0.001 <= interval <= 3600, interval

    return target


def wire_target(data: bytes) -> None:
    header = decode_header(data)
    packet = decode_packet(data)
    assert isinstance(header, PacketHeader | Reject)
    assert isinstance(packet, Packet | Reject)
    if isinstance(header, Reject):
        assert packet == header, (header, packet)
    elif isinstance(packet, Packet):
        assert packet.header == header
        assert len(packet.messages) + packet.skipped == header.msg_count


def targets() -> dict[str, Callable[[], Target]]:
    out: dict[str, Callable[[], Target]] = {}
    for name, cls in sorted(ADAPTERS.items()):
        out[name] = lambda n=name: parse_target(n)  # type: ignore[misc]
        if cls.snapshot_source is SnapshotSource.REST:
            out[f"{name}-snapshot"] = lambda n=name: snapshot_target(n)  # type: ignore[misc]
    out["kucoin-token"] = token_target
    out["wire"] = lambda: wire_target
    return out


def wire_seeds() -> list[bytes]:
    enc = PacketEncoder(session_id=7, channel_id=1)
    buf = bytearray(1400)
    out = []
    adds: list[Callable[[PacketEncoder], None]] = [
        lambda e: e.add_trade(1, Side.BUY, 0, 3_000_000_000_000, 5_000, 9, 1, 2),
        lambda e: e.add_book_delta(1, Side.SELL, BookAction.ADD, 0, 3_000_100_000_000, 7, 3, 1, 2),
        lambda e: e.add_book_levels(1, 0, 3, 1, 2, [(10, 1), (9, 2)], [(11, 1)]),
        lambda e: e.add_instrument_definition(1, 1, 8, 8, "BTCUSDT"),
        lambda e: e.add_status(1, 1, 2, 0, 5),
    ]
    for add in adds:
        enc.begin(buf, 1)
        add(enc)
        out.append(bytes(enc.finish(123)))
    enc.begin(buf, 1)
    for add in adds:
        add(enc)
    out.append(bytes(enc.finish(123)))
    out.append(bytes(enc.heartbeat(bytearray(64), 5, 123)))
    return out


def seeds(name: str) -> list[bytes]:
    exchange, _, kind = name.partition("-")
    if name == "wire":
        return wire_seeds()
    if kind == "token":
        return [TOKEN]
    corpus = generate(exchange, symbols=2, events=80)
    if kind == "snapshot":
        return list(corpus.snapshots.values())
    return [line.encode() for line in corpus.lines]


def run_seeds(name: str, target: Target) -> int:
    """Every seed once through the target, no atheris: a smoke test of the target itself."""
    items = seeds(name)
    for data in items:
        target(data)
    print(f"{name}: {len(items)} seeds ran clean")
    return 0


def fuzz(name: str, target: Target, libfuzzer_args: list[str]) -> int:
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        print(
            "atheris is not installed: `pip install atheris` (Linux wheels for CPython 3.8-3.11),"
            " or run the bounded fuzz tests: pytest tests/fuzz",
            file=sys.stderr,
        )
        return 2
    args = list(libfuzzer_args)
    if not any(not a.startswith("-") for a in args):  # no corpus directory given
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        for i, data in enumerate(seeds(name)):
            (corpus / f"seed-{i:04d}").write_bytes(data)
        print(f"{name}: corpus {corpus} ({i + 1} seeds)", file=sys.stderr)
        args.append(str(corpus))
    atheris.instrument_all()  # coverage of everything already imported: feeder included
    atheris.Setup([sys.argv[0], *args], target)
    atheris.Fuzz()
    return 0  # not reached: libFuzzer exits the process


def main(argv: list[str]) -> int:
    table = targets()
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    if argv[0] == "--list":
        print("\n".join(table))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in table:
        print(f"unknown target {name!r}; targets: {', '.join(table)}", file=sys.stderr)
        return 2
    target = table[name]()
    if rest == ["--seeds"]:
        return run_seeds(name, target)
    return fuzz(name, target, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
