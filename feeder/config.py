"""``feeder run`` configuration: TOML file and/or flags, validated with clear messages.

Example (what a user writes for real exchanges)::

    [feeder]
    interface = "10.0.0.5"      # address of the interface that carries the multicast feed
    send_path = "auto"          # auto | xdp | udp

    [channels]
    group = "239.100.0.1"       # channel i -> group + i - 1, port + i - 1
    port = 31001
    count = 4
    group_b = "239.200.0.1"     # optional A/B feeds: every packet also on line B's groups
    # port_b = 31001            # (default: port); interface_b = "10.0.1.5" (default: interface)

    [recovery]                  # optional re-request service (answers receivers' gap requests)
    address = "10.0.0.5"        # unicast address receivers reach; 0.0.0.0 needs allow_any_address
    port = 31900
    buffer_packets = 2048       # packets kept per channel for re-requests

    [[exchanges]]
    name = "binance"
    symbols = ["BTCUSDT", "ETHUSDT"]
    channel = 1

    [[exchanges]]
    name = "okx"
    symbols = ["BTC-USDT"]
    channel = 2
    # url / rest_url override the production endpoints (e.g. the simulator)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeder.exchanges import ADAPTERS
from feeder.net import validate


class ConfigError(ValueError):
    """A configuration problem; str() names the key and what to do."""


@dataclass(frozen=True)
class ExchangeConfig:
    name: str
    symbols: tuple[str, ...]
    channel: int
    url: str | None = None
    rest_url: str | None = None


@dataclass(frozen=True)
class FeederConfig:
    interface: str = "127.0.0.1"
    send_path: str = "auto"
    ttl: int = 1
    group: str = "239.100.0.1"
    port: int = 31001
    channels: int = 4
    single_port: bool = False
    exchanges: tuple[ExchangeConfig, ...] = field(default_factory=tuple)
    metrics_port: int = 0  # Prometheus /metrics on this port (0: off)
    metrics_addr: str = "127.0.0.1"  # where /metrics listens: loopback unless asked
    netns: str | None = None
    top_n: int = 0  # also publish a bounded top-N view (BookLevels) after each book update
    tx_timestamps: bool = True  # kernel TX timestamps for tick-to-wire latency
    self_tune: bool = True  # mlockall + pin the hot loop to an isolated CPU (see feeder/tuning)
    cpu: int | None = None  # pin to this CPU instead of the first isolated one
    show_tuning: bool = True  # print the self-tuning table at start
    # A packet leaves when the loop is idle or, inside a burst, once its first frame is this
    # old (µs): the bound on batching delay; 0 sends after every frame.
    flush_us: int = 50
    # Fault injection (the demo's fault matrix): start the sender this long after the
    # exchanges, and pretend AF_XDP is unavailable with this reason.
    sender_delay_s: float = 0.0
    xdp_unavailable: str | None = None
    group_b: str | None = None  # A/B feeds: line B's first group (None: line A only)
    port_b: int | None = None  # line B's first port (None: line A's)
    interface_b: str | None = None  # line B's sending interface address (None: interface)
    recovery_address: str | None = None  # answer re-requests on this address (None: off)
    recovery_port: int = 31900
    recovery_buffer_packets: int = 2048  # per channel, as sent
    allow_any_recovery_address: bool = False  # accept 0.0.0.0 (every interface) when asked
    allow_ttl_above_1: bool = False  # multicast beyond the first router only when asked


SEND_PATHS = ("auto", "xdp", "udp", "udp-sendto")


def _get(table: dict[str, Any], key: str, typ: type, default: Any, where: str) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}: expected {typ.__name__}, got {value!r}")
    return value


def _check_keys(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")


def _flush_us(us: int) -> int:
    if not 0 <= us <= 1_000_000:
        raise ConfigError(f"feeder.flush_us: {us} must be 0 (send after every frame) .. 1000000")
    return us


def _top_n(n: int) -> int:
    if not 0 <= n <= 50:
        raise ConfigError(f"feeder.top_n: {n} must be 0 (off) .. 50 levels")
    return n


def check_lines_and_recovery(cfg: FeederConfig) -> None:
    """A/B and recovery settings that are unsafe or cannot work, with the fix."""
    try:
        if cfg.group_b is not None:
            validate.group(cfg.group_b)
        if cfg.port_b is not None:
            validate.port(cfg.port_b)
        if cfg.interface_b is not None:
            validate.iface_addr(cfg.interface_b)
        if cfg.recovery_address is not None:
            validate.ipv4(cfg.recovery_address, "recovery address")
            validate.port(cfg.recovery_port)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if (cfg.port_b is not None or cfg.interface_b is not None) and cfg.group_b is None:
        raise ConfigError("channels.port_b / interface_b need channels.group_b (line B's group)")
    if not 16 <= cfg.recovery_buffer_packets <= 1 << 20:
        raise ConfigError(
            f"recovery.buffer_packets: {cfg.recovery_buffer_packets} must be 16..1048576"
        )
    if cfg.recovery_address == "0.0.0.0" and not cfg.allow_any_recovery_address:
        raise ConfigError(
            "recovery.address 0.0.0.0 would answer re-requests arriving on every interface; "
            "give the address receivers reach the feeder on, or set allow_any_address = true "
            "(--allow-any-recovery-addr) if that is really wanted"
        )


def check_exposure(cfg: FeederConfig) -> None:
    """Settings that would send the feed further than meant: refused unless asked for."""
    if not 0 <= cfg.ttl <= 255:
        raise ConfigError(f"feeder.ttl: {cfg.ttl} must be 0..255")
    if cfg.ttl > 1 and not cfg.allow_ttl_above_1:
        raise ConfigError(
            f"feeder.ttl = {cfg.ttl}: multicast with a TTL above 1 is forwarded past the first "
            "router, off the local network; if the feed must be routed, say so with "
            "allow_ttl_above_1 = true in [feeder] (or --allow-ttl)"
        )
    lines = (("feeder.interface", cfg.interface), ("channels.interface_b", cfg.interface_b))
    for key, addr in lines:
        if addr == "0.0.0.0":
            raise ConfigError(
                f"{key} = 0.0.0.0 (INADDR_ANY) lets the routing table choose where the multicast "
                "goes, e.g. out of the default route; give the address of the interface that "
                "carries the feed (--iface ADDR)"
            )


def check_symbols(exchange: str, symbols: list[str] | tuple[str, ...], where: str) -> None:
    adapter = ADAPTERS[exchange]
    for s in symbols:
        if (why := adapter.symbol_error(s)) is not None:
            raise ConfigError(f"{where}: {why}")


def parse_config(doc: dict[str, Any]) -> FeederConfig:
    _check_keys(doc, {"feeder", "channels", "exchanges", "recovery"}, "config")
    f = doc.get("feeder", {})
    _check_keys(
        f,
        {
            "interface",
            "send_path",
            "ttl",
            "allow_ttl_above_1",
            "metrics_port",
            "top_n",
            "flush_us",
        },
        "feeder",
    )
    c = doc.get("channels", {})
    _check_keys(
        c,
        {"group", "port", "count", "single_port", "group_b", "port_b", "interface_b"},
        "channels",
    )
    rc = doc.get("recovery", {})
    _check_keys(rc, {"address", "port", "buffer_packets", "allow_any_address"}, "recovery")
    send_path = _get(f, "send_path", str, "auto", "feeder")
    if send_path not in SEND_PATHS:
        raise ConfigError(f"feeder.send_path: {send_path!r} is not one of {', '.join(SEND_PATHS)}")
    count = _get(c, "count", int, 4, "channels")
    if not 1 <= count <= 1024:
        raise ConfigError(f"channels.count: {count} must be 1..1024")
    exchanges = []
    raw = doc.get("exchanges", [])
    if not isinstance(raw, list):
        raise ConfigError("exchanges: must be an array of tables ([[exchanges]])")
    for i, e in enumerate(raw):
        where = f"exchanges[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(f"{where}: must be a table")
        _check_keys(e, {"name", "symbols", "channel", "url", "rest_url"}, where)
        name = _get(e, "name", str, "", where)
        if name not in ADAPTERS:
            raise ConfigError(
                f"{where}.name: unknown exchange {name!r} (known: {', '.join(sorted(ADAPTERS))})"
            )
        symbols = _get(e, "symbols", list, [], where)
        if not symbols or not all(isinstance(s, str) and s for s in symbols):
            raise ConfigError(f"{where}.symbols: give a non-empty list of the exchange's symbols")
        check_symbols(name, symbols, f"{where}.symbols")
        channel = _get(e, "channel", int, (i % count) + 1, where)
        if not 1 <= channel <= count:
            raise ConfigError(f"{where}.channel: {channel} is not one of the {count} channels")
        exchanges.append(
            ExchangeConfig(
                name,
                tuple(symbols),
                channel,
                _get(e, "url", str, None, where),
                _get(e, "rest_url", str, None, where),
            )
        )
    cfg = FeederConfig(
        interface=_get(f, "interface", str, "127.0.0.1", "feeder"),
        send_path=send_path,
        ttl=_get(f, "ttl", int, 1, "feeder"),
        allow_ttl_above_1=_get(f, "allow_ttl_above_1", bool, False, "feeder"),
        metrics_port=_get(f, "metrics_port", int, 0, "feeder"),
        top_n=_top_n(_get(f, "top_n", int, 0, "feeder")),
        flush_us=_flush_us(_get(f, "flush_us", int, 50, "feeder")),
        group=_get(c, "group", str, "239.100.0.1", "channels"),
        port=_get(c, "port", int, 31001, "channels"),
        channels=count,
        single_port=_get(c, "single_port", bool, False, "channels"),
        exchanges=tuple(exchanges),
        group_b=_get(c, "group_b", str, None, "channels"),
        port_b=_get(c, "port_b", int, None, "channels"),
        interface_b=_get(c, "interface_b", str, None, "channels"),
        recovery_address=_get(rc, "address", str, None, "recovery"),
        recovery_port=_get(rc, "port", int, 31900, "recovery"),
        recovery_buffer_packets=_get(rc, "buffer_packets", int, 2048, "recovery"),
        allow_any_recovery_address=_get(rc, "allow_any_address", bool, False, "recovery"),
    )
    check_lines_and_recovery(cfg)
    return cfg  # check_exposure runs once flags are applied: --allow-ttl may allow the file's TTL


def load_config(path: str) -> FeederConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return parse_config(doc)
