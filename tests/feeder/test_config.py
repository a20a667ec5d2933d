from __future__ import annotations

from pathlib import Path

import pytest

from feeder.config import ConfigError, load_config, parse_config

GOOD = """
[feeder]
interface = "10.0.0.5"
send_path = "udp"

[channels]
group = "239.1.1.1"
port = 40000
count = 2

[[exchanges]]
name = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]
channel = 2
url = "ws://127.0.0.1:9000/binance/stream"
"""


def test_good_config(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(GOOD)
    cfg = load_config(str(f))
    assert cfg.interface == "10.0.0.5" and cfg.send_path == "udp" and cfg.channels == 2
    (ex,) = cfg.exchanges
    assert ex.name == "binance" and ex.symbols == ("BTCUSDT", "ETHUSDT") and ex.channel == 2
    assert ex.url == "ws://127.0.0.1:9000/binance/stream"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"exchanges": [{"name": "mtgox", "symbols": ["X"]}]}, "unknown exchange 'mtgox'"),
        ({"exchanges": [{"name": "binance", "symbols": []}]}, "exchanges[0].symbols"),
        ({"exchanges": [{"name": "binance", "symbols": ["AB"], "channel": 9}]}, "channel: 9"),
        ({"feeder": {"send_path": "carrier-pigeon"}}, "feeder.send_path"),
        ({"feeder": {"ttl": "1"}}, "feeder.ttl: expected int"),
        ({"channels": {"count": 0}}, "channels.count"),
        ({"feeder": {"iface": "x"}}, "feeder.iface: unknown key"),
        ({"exchange": []}, "config.exchange: unknown key"),
    ],
)
def test_bad_config_names_the_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(doc)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[feeder\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(bad))


def test_symbols_are_checked_against_the_exchange_format() -> None:
    with pytest.raises(
        ConfigError, match=r"'BTC/USD' is not a binance symbol \(they look like BTCUSDT\)"
    ):
        parse_config({"exchanges": [{"name": "binance", "symbols": ["BTC/USD"]}]})
    with pytest.raises(ConfigError, match="not a kraken symbol"):
        parse_config({"exchanges": [{"name": "kraken", "symbols": ["BTCUSD"]}]})
    cfg = parse_config({"exchanges": [{"name": "okx", "symbols": ["BTC-USDT-SWAP"]}]})
    assert cfg.exchanges[0].symbols == ("BTC-USDT-SWAP",)


def test_every_simulated_symbol_matches_its_exchange_format() -> None:
    from feeder.exchanges import ADAPTERS
    from feeder.sim.catalog import instruments

    for name, adapter in ADAPTERS.items():
        for inst in instruments(name, 12):
            assert adapter.symbol_error(inst.symbol) is None, (name, inst.symbol)


def test_run_cli_rejects_unknown_exchange_and_bad_symbol() -> None:
    import subprocess
    import sys

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "feeder", "run", *a], capture_output=True, text=True, timeout=60
        )

    p = run("--exchange", "mtgox", "--symbols", "BTCUSD")
    assert (
        p.returncode == 2 and "unknown exchange 'mtgox'" in p.stderr and "Traceback" not in p.stderr
    )
    p = run("--exchange", "kraken", "--symbols", "btcusd")
    assert p.returncode == 2 and "not a kraken symbol" in p.stderr


def test_flush_us_is_read_and_checked() -> None:
    ex = [{"name": "binance", "symbols": ["BTCUSDT"]}]
    assert parse_config({"exchanges": ex}).flush_us == 50
    assert parse_config({"feeder": {"flush_us": 0}, "exchanges": ex}).flush_us == 0
    with pytest.raises(ConfigError, match=r"feeder\.flush_us: -1 must be 0"):
        parse_config({"feeder": {"flush_us": -1}, "exchanges": ex})
