"""A/B and recovery settings: config keys, flags, and the refusals that keep a feeder safe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from feeder.config import ConfigError, FeederConfig, parse_config
from feeder.publish.channels import ChannelMap
from feeder.recovery.server import open_socket
from feeder.runtime.app import line_b_map, recovery_endpoint

EXCHANGE = {"name": "binance", "symbols": ["BTCUSDT"]}


def config(channels: dict[str, Any], recovery: dict[str, Any] | None = None) -> FeederConfig:
    doc: dict[str, Any] = {"channels": channels, "exchanges": [EXCHANGE]}
    if recovery is not None:
        doc["recovery"] = recovery
    return parse_config(doc)


def test_ab_and_recovery_from_the_config_file() -> None:
    cfg = config(
        {"group": "239.1.1.1", "port": 40000, "count": 2, "group_b": "239.2.1.1", "port_b": 41000},
        {"address": "10.0.0.5", "port": 31999, "buffer_packets": 64},
    )
    assert (cfg.group_b, cfg.port_b, cfg.interface_b) == ("239.2.1.1", 41000, None)
    b = line_b_map(cfg, ChannelMap.multi(cfg.group, cfg.port, cfg.channels))
    assert b is not None and b.destinations == (("239.2.1.1", 41000), ("239.2.1.2", 41001))
    endpoint = recovery_endpoint(cfg, ChannelMap.multi(cfg.group, cfg.port, cfg.channels))
    assert endpoint is not None and sorted(endpoint.store) == [1, 2]
    assert endpoint.report()["address"] == "10.0.0.5:31999"
    assert endpoint.report()["buffer_packets"] == 64


def test_nothing_extra_unless_asked() -> None:
    cfg = config({"group": "239.1.1.1"})
    chmap = ChannelMap.multi(cfg.group, cfg.port, cfg.channels)
    assert line_b_map(cfg, chmap) is None and recovery_endpoint(cfg, chmap) is None


@pytest.mark.parametrize(
    ("channels", "recovery", "message"),
    [
        ({"group_b": "10.1.1.1"}, None, "not a multicast address"),
        ({"port_b": 5000}, None, "need channels.group_b"),
        ({"group_b": "239.2.0.1", "interface_b": "239.0.0.1"}, None, "unicast address"),
        ({}, {"address": "0.0.0.0"}, "every interface"),
        ({}, {"address": "10.0.0.1", "buffer_packets": 1}, "buffer_packets"),
        ({}, {"address": "10.0.0.1", "port": 0}, "UDP port"),
        ({}, {"adress": "10.0.0.1"}, "recovery.adress: unknown key"),
    ],
)
def test_bad_settings_are_explained(
    channels: dict[str, Any], recovery: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config(channels, recovery)


def test_any_address_only_when_allowed() -> None:
    cfg = config({}, {"address": "0.0.0.0", "allow_any_address": True})
    assert cfg.recovery_address == "0.0.0.0" and cfg.allow_any_recovery_address
    with pytest.raises(ValueError, match="every interface"):
        open_socket("0.0.0.0", 31999)
    sock = open_socket("0.0.0.0", 0, allow_any=True)
    sock.close()
    with pytest.raises(ValueError, match="unicast"):
        open_socket("239.1.1.1", 31999)


def feeder(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feeder", *args], capture_output=True, text=True, timeout=60
    )


def test_run_refuses_listening_on_every_interface() -> None:
    p = feeder(
        "run", "--exchange", "binance", "--symbols", "BTCUSDT", "--recovery-listen", "0.0.0.0:31999"
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "every interface" in p.stderr and "--allow-any-recovery-addr" in p.stderr


def test_run_explains_a_recovery_buffer_out_of_range() -> None:
    p = feeder("run", "--exchange", "binance", "--symbols", "BTCUSDT", "--recovery-buffer", "4")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "recovery.buffer_packets: 4 must be 16..1048576" in p.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recovery", "nowhere"], "expected ADDR:PORT"),
        (["--drop-a", "3"], "MODULUS:REMAINDER"),
        (["--drop-b", "3:1"], "need line B"),
        (["--group-b", "239.100.0.2", "--port-b", "31002"], "line A uses too"),
    ],
)
def test_listen_explains_bad_flags(args: list[str], message: str) -> None:
    p = feeder("listen", "--iface", "127.0.0.1", "--duration", "0.1", *args)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert message in p.stderr


def test_recovery_buffer_flag_overrides_the_config(tmp_path: Path) -> None:
    from feeder.cli import _parser, _run_config

    config = tmp_path / "feeder.toml"
    config.write_text("[recovery]\nbuffer_packets = 512\n")
    base = ["run", "--config", str(config), "--exchange", "binance", "--symbols", "X1"]
    cfg = _run_config(_parser().parse_args(base))
    assert isinstance(cfg, FeederConfig) and cfg.recovery_buffer_packets == 512
    cfg = _run_config(_parser().parse_args([*base, "--recovery-buffer", "8192"]))
    assert isinstance(cfg, FeederConfig) and cfg.recovery_buffer_packets == 8192
