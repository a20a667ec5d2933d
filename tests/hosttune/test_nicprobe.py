"""IoctlNicProbe against the real kernel (lo, eth0, veth and tap in a private namespace) plus
the pure parts: timestamping bit names, /proc/net/route parsing, ABI structure sizes."""

from __future__ import annotations

import ctypes
import errno
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hosttune import nicprobe
from hosttune.nicprobe import (
    HWTSTAMP_FILTER_ALL,
    HWTSTAMP_FILTER_PTP_V2_EVENT,
    HWTSTAMP_TX_OFF,
    HWTSTAMP_TX_ON,
    SOF_TIMESTAMPING_NAMES,
    SOF_TIMESTAMPING_RX_SOFTWARE,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
    HwTstampConfig,
    IoctlNicProbe,
    NicUnsupported,
    OfflineNicProbe,
    describe_hwtstamp,
    describe_rx_filters,
    describe_timestamping,
    describe_tx_types,
    parse_default_route,
)
from tests.privilege import require_root

ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)


def route_line(iface: str, dest: str, flags: str, metric: int, mask: str) -> str:
    return f"{iface}\t{dest}\t010200C0\t{flags}\t0\t0\t{metric}\t{mask}\t0\t0\t0\n"


# --- names ----------------------------------------------------------------------------------


def test_software_capabilities_render_as_names() -> None:
    bits = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
    assert bits == 0x1A
    assert describe_timestamping(bits) == "tx_software, rx_software, software"


def test_every_named_bit_is_a_distinct_single_bit() -> None:
    assert all(bit & (bit - 1) == 0 for bit in SOF_TIMESTAMPING_NAMES)
    assert len(set(SOF_TIMESTAMPING_NAMES.values())) == len(SOF_TIMESTAMPING_NAMES)
    assert describe_timestamping(0x7FFFF).split(", ") == list(SOF_TIMESTAMPING_NAMES.values())


def test_no_bits_and_unknown_bits() -> None:
    assert describe_timestamping(0) == "none"
    assert describe_timestamping((1 << 30) | SOF_TIMESTAMPING_SOFTWARE) == "software, bit30"


def test_tx_types_and_rx_filters_are_value_masks() -> None:
    assert describe_tx_types((1 << HWTSTAMP_TX_OFF) | (1 << HWTSTAMP_TX_ON)) == "off, on"
    mask = (1 << HWTSTAMP_FILTER_ALL) | (1 << HWTSTAMP_FILTER_PTP_V2_EVENT)
    assert describe_rx_filters(mask) == "all, ptp_v2_event"
    assert describe_rx_filters(0) == "none"
    assert describe_tx_types(1 << 9) == "value9"


def test_hwtstamp_config_in_words() -> None:
    assert describe_hwtstamp(HwTstampConfig(0, 1, 1)) == "tx on, rx filter all"
    assert (
        describe_hwtstamp(HwTstampConfig(1, 0, 12)) == "tx off, rx filter ptp_v2_event, flags 0x1"
    )
    assert describe_hwtstamp(HwTstampConfig(0, 7, 99)) == "tx type 7, rx filter 99"


# --- /proc/net/route ------------------------------------------------------------------------


def test_default_route_lowest_metric_wins() -> None:
    text = (
        ROUTE_HEADER
        + route_line("eth1", "00000000", "0003", 600, "00000000")
        + route_line("eth0", "000200C0", "0001", 0, "00FFFFFF")
        + route_line("bond0", "00000000", "0003", 100, "00000000")
        + route_line("eth2", "00000000", "0003", 300, "00000000")
    )
    assert parse_default_route(text) == "bond0"


def test_default_route_ignores_down_routes_masks_and_garbage() -> None:
    text = (
        ROUTE_HEADER
        + "garbage line\n\n"
        + "eth9\tzzzz\t0\t0003\t0\t0\t0\t00000000\n"
        + route_line("down0", "00000000", "0002", 0, "00000000")  # RTF_UP not set
        + route_line("net0", "00000000", "0001", 0, "000000FF")  # 0.0.0.0/8 is not default
        + route_line("eth0", "00000000", "0003", 50, "00000000")
    )
    assert parse_default_route(text) == "eth0"


def test_no_default_route() -> None:
    assert parse_default_route(ROUTE_HEADER) is None
    assert parse_default_route("") is None
    text = ROUTE_HEADER + route_line("eth0", "000200C0", "0001", 0, "00FFFFFF")
    assert parse_default_route(text) is None


def test_probe_reads_its_route_table_file(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTE_HEADER + route_line("ens5", "00000000", "0003", 0, "00000000"))
    assert IoctlNicProbe(route_table=table).default_route_interface() == "ens5"
    assert IoctlNicProbe(route_table=tmp_path / "absent").default_route_interface() is None


# --- ABI layout and input checks ------------------------------------------------------------


def test_structures_have_the_kernel_abi_sizes() -> None:
    assert ctypes.sizeof(nicprobe._IfReq) == 40  # x86_64 struct ifreq
    assert ctypes.sizeof(nicprobe._EthtoolTsInfo) == 44
    assert ctypes.sizeof(nicprobe._EthtoolRingParam) == 36
    assert ctypes.sizeof(nicprobe._EthtoolCoalesce) == 92  # cmd + 22 u32
    assert ctypes.sizeof(nicprobe._HwTstampConfig) == 12


@pytest.mark.parametrize("name", ["", "a" * 16, "bad/name", "nul\0x", " eth0"])
def test_invalid_interface_names_are_rejected_before_the_kernel(name: str) -> None:
    with pytest.raises(NicUnsupported, match="not a valid interface name") as info:
        IoctlNicProbe().ts_info(name)
    assert info.value.errno == errno.EINVAL


def test_unknown_interface_says_no_such_interface(unique_prefix: str) -> None:
    with pytest.raises(NicUnsupported) as info:
        IoctlNicProbe().get_rings(unique_prefix + "x")
    assert str(info.value) == (
        f"{unique_prefix}x: ETHTOOL_GRINGPARAM failed: no such interface (ENODEV)"
    )
    assert info.value.errno == errno.ENODEV


def test_offline_probe_refuses_everything() -> None:
    probe = OfflineNicProbe()
    assert probe.default_route_interface() is None
    for call in (probe.interfaces, lambda: probe.ts_info("eth0"), lambda: probe.get_rings("x")):
        with pytest.raises(NicUnsupported, match="only visible on the running host"):
            call()


# --- the live root namespace, read only -----------------------------------------------------

# `ethtool -T` capability lines and the SOF_TIMESTAMPING bit each one stands for.
ETHTOOL_CAPABILITY = {
    "hardware-transmit": "tx_hardware",
    "software-transmit": "tx_software",
    "hardware-receive": "rx_hardware",
    "software-receive": "rx_software",
    "software-system-clock": "software",
    "hardware-legacy-clock": "sys_hardware",
    "hardware-raw-clock": "raw_hardware",
}


def ethtool(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool is not installed (the Makefile installs it)")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, "ethtool", *args], capture_output=True, text=True, check=False)


def ethtool_ts(ifname: str) -> tuple[set[str], int]:
    out = ethtool("-T", ifname)
    assert out.returncode == 0, out.stderr
    caps = {
        ETHTOOL_CAPABILITY[line.strip()]
        for line in out.stdout.splitlines()
        if line.strip() in ETHTOOL_CAPABILITY
    }
    clock = next(line for line in out.stdout.splitlines() if line.startswith("PTP Hardware Clock"))
    value = clock.split(":", 1)[1].strip()
    return caps, -1 if value == "none" else int(value)


def ethtool_rings(text: str) -> dict[str, tuple[str, str]]:
    """`ethtool -g` output: {"max": (rx, tx), "current": (rx, tx)}."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Pre-set maximums"):
            current = sections.setdefault("max", {})
        elif line.startswith("Current hardware settings"):
            current = sections.setdefault("current", {})
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key.strip()] = value.strip()
    return {name: (values["RX"], values["TX"]) for name, values in sections.items()}


def test_interfaces_match_sysfs() -> None:
    assert sorted(IoctlNicProbe().interfaces()) == sorted(
        p.name for p in Path("/sys/class/net").iterdir()
    )


def test_default_route_matches_the_kernel_table() -> None:
    expected = parse_default_route(Path("/proc/net/route").read_text())
    assert IoctlNicProbe().default_route_interface() == expected


def test_ts_info_agrees_with_ethtool_on_every_interface() -> None:
    probe = IoctlNicProbe()
    for ifname in probe.interfaces():
        info = probe.ts_info(ifname)
        caps, phc = ethtool_ts(ifname)
        assert set(describe_timestamping(info.so_timestamping).split(", ")) - {"none"} == caps, (
            ifname
        )
        assert info.phc_index == phc, ifname


def test_rings_and_coalescing_agree_with_ethtool() -> None:
    probe = IoctlNicProbe()
    checked = 0
    for ifname in probe.interfaces():
        out = ethtool("-g", ifname)
        try:
            rings = probe.get_rings(ifname)
        except NicUnsupported as e:
            assert out.returncode != 0, f"{ifname}: ethtool reads rings but the probe: {e}"
            continue
        assert ethtool_rings(out.stdout) == {
            "max": (str(rings.rx_max), str(rings.tx_max)),
            "current": (str(rings.rx), str(rings.tx)),
        }
        co = probe.get_coalesce(ifname)
        shown = dict(
            line.split(":", 1) for line in ethtool("-c", ifname).stdout.splitlines() if ":" in line
        )
        assert shown["rx-usecs"].strip() in (str(co.rx_usecs), "n/a")
        assert shown["rx-frames"].strip() in (str(co.rx_max_frames), "n/a")
        assert shown["Adaptive RX"].split()[0] in ("on" if co.use_adaptive_rx else "off", "n/a")
        checked += 1
    # The machine's virtio NIC reports rings; a host where nothing does would not test much.
    assert checked >= 1


# --- a private namespace with veth and tap (root) -------------------------------------------

RUNNER = """
import dataclasses, json, sys
from hosttune.nicprobe import HwTstampConfig, IoctlNicProbe, NicUnsupported
probe = IoctlNicProbe()
out = []
for name, *args in json.loads(sys.argv[1]):
    if name == "set_hwtstamp":
        args = [args[0], HwTstampConfig(*args[1])]
    try:
        value = getattr(probe, name)(*args)
        out.append({"ok": dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value})
    except NicUnsupported as e:
        out.append({"error": str(e), "errno": e.errno})
print(json.dumps(out))
"""


@dataclass
class Lab:
    netns: str
    veth: str
    peer: str
    tap: str

    def probe(self, *calls: list[Any]) -> list[dict[str, Any]]:
        """Run IoctlNicProbe calls inside the namespace (a child process that lives there)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", RUNNER, json.dumps(calls)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        result: list[dict[str, Any]] = json.loads(proc.stdout)
        return result

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.netns, *args], check=True, capture_output=True)


@pytest.fixture
def lab(unique_prefix: str) -> Iterator[Lab]:
    require_root("creates a network namespace with veth and tap devices")
    lab = Lab(unique_prefix, unique_prefix + "a", unique_prefix + "b", unique_prefix + "t")
    subprocess.run(["ip", "netns", "add", lab.netns], check=True)
    try:
        lab.ip("link", "add", lab.veth, "type", "veth", "peer", "name", lab.peer)
        lab.ip("tuntap", "add", "dev", lab.tap, "mode", "tap")
        yield lab
    finally:
        # Deleting the namespace destroys every link in it.
        subprocess.run(["ip", "netns", "del", lab.netns], check=False)


def test_lab_interfaces_are_exactly_what_was_created(lab: Lab) -> None:
    [listing] = lab.probe(["interfaces"])
    assert sorted(listing["ok"]) == sorted(["lo", lab.veth, lab.peer, lab.tap])


def test_veth_timestamps_in_software_only(lab: Lab) -> None:
    [info] = lab.probe(["ts_info", lab.veth])
    ts = info["ok"]
    assert ts["phc_index"] == -1
    assert ts["tx_types"] == 0 and ts["rx_filters"] == 0
    assert describe_timestamping(ts["so_timestamping"]) == "tx_software, rx_software, software"


def test_veth_refuses_hardware_timestamping_rings_and_coalescing(lab: Lab) -> None:
    results = lab.probe(
        ["get_hwtstamp", lab.veth],
        ["set_hwtstamp", lab.veth, [0, 1, 1]],
        ["get_rings", lab.veth],
        ["set_rings", lab.veth, 512, 512],
        ["get_coalesce", lab.veth],
    )
    requests = ["SIOCGHWTSTAMP", "SIOCSHWTSTAMP", "ETHTOOL_GRINGPARAM", "ETHTOOL_GRINGPARAM"]
    requests.append("ETHTOOL_GCOALESCE")
    for result, request in zip(results, requests, strict=True):
        assert result["errno"] == errno.EOPNOTSUPP
        assert result["error"] == (
            f"{lab.veth}: {request} failed: not supported by the interface's driver (EOPNOTSUPP)"
        )


def test_root_namespace_interface_is_absent_in_the_lab(lab: Lab) -> None:
    outside = next(n for n in IoctlNicProbe().interfaces() if n != "lo")
    [result] = lab.probe(["ts_info", outside])
    assert result["errno"] == errno.ENODEV
    assert "no such interface" in result["error"]


@pytest.mark.parametrize("frames", [7, 23])
def test_tap_coalescing_reads_what_ethtool_set(lab: Lab, frames: int) -> None:
    # tun/tap keeps rx-frames (its batching) as its only coalescing parameter.
    out = ethtool("-C", lab.tap, "rx-frames", str(frames), netns=lab.netns)
    assert out.returncode == 0, out.stderr
    [result] = lab.probe(["get_coalesce", lab.tap])
    co = result["ok"]
    assert co["rx_max_frames"] == frames
    assert co["rx_usecs"] == 0 and co["use_adaptive_rx"] is False
    assert set(co["extra"]) == set(nicprobe.COALESCE_FIELDS) - set(nicprobe._COALESCE_DECODED)


def test_default_route_follows_the_lowest_metric(lab: Lab) -> None:
    [before] = lab.probe(["default_route_interface"])
    assert before["ok"] is None
    for dev in (lab.veth, lab.peer):
        lab.ip("link", "set", dev, "up")
    lab.ip("route", "add", "default", "dev", lab.veth, "metric", "200")
    lab.ip("route", "add", "default", "dev", lab.peer, "metric", "100")
    [both] = lab.probe(["default_route_interface"])
    assert both["ok"] == lab.peer
    lab.ip("route", "del", "default", "dev", lab.peer, "metric", "100")
    [one] = lab.probe(["default_route_interface"])
    assert one["ok"] == lab.veth
