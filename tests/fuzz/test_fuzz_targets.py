"""The atheris targets (``bench/fuzz_targets.py``) work without atheris: every target exists,
runs its seeds and some garbage clean, and a bad target name is a usage error."""

from __future__ import annotations

import pytest

from bench import fuzz_targets
from feeder.exchanges import ADAPTERS

TARGETS = fuzz_targets.targets()


def test_every_parser_and_the_decoder_has_a_target() -> None:
    assert set(ADAPTERS) | {"wire", "kucoin-token", "binance-snapshot", "kucoin-snapshot"} == set(
        TARGETS
    )


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_runs_seeds_and_garbage(name: str) -> None:
    target = TARGETS[name]()
    seeds = fuzz_targets.seeds(name)
    assert seeds
    for data in [*seeds, b"", b"\xff\xfe", b"{", b"[]", b"null", seeds[0][:7], seeds[-1] * 3]:
        target(data)


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz_targets.main([]) == 2
    assert fuzz_targets.main(["mtgox"]) == 2
    assert "unknown target 'mtgox'" in capsys.readouterr().err
    assert fuzz_targets.main(["--list"]) == 0
    assert set(capsys.readouterr().out.split()) == set(TARGETS)
