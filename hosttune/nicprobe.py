"""NIC facts that are not files: timestamping, rings, coalescing (ethtool ioctls).

Knobs receive a ``NicProbe`` through ``Host`` so unit tests can hand them a fake NIC; the real
implementation, ``IoctlNicProbe``, talks SIOCETHTOOL / SIOC[GS]HWTSTAMP to the kernel through
ctypes structures; ``OfflineNicProbe`` is for roots that are not the running system. The
module also names the timestamping bits (``SOF_TIMESTAMPING_*``, ``HWTSTAMP_*``) so reports can
say "tx_software, rx_software" instead of ``0x1a``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class NicUnsupported(Exception):
    """The interface or its driver does not support the query (EOPNOTSUPP, ENODEV...).

    ``errno`` is the kernel's error number when the failure came from an ioctl, else None.
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class TsInfo:
    """ETHTOOL_GET_TS_INFO: what the interface can timestamp."""

    so_timestamping: int  # SOF_TIMESTAMPING_* capability bits
    phc_index: int  # -1 when the NIC has no PTP hardware clock
    tx_types: int  # bitmask of HWTSTAMP_TX_* values supported
    rx_filters: int  # bitmask of HWTSTAMP_FILTER_* values supported


@dataclass(frozen=True)
class HwTstampConfig:
    """struct hwtstamp_config (SIOCGHWTSTAMP / SIOCSHWTSTAMP)."""

    flags: int = 0
    tx_type: int = 0  # HWTSTAMP_TX_OFF=0, ON=1
    rx_filter: int = 0  # HWTSTAMP_FILTER_NONE=0, ALL=1


@dataclass(frozen=True)
class Rings:
    """ETHTOOL_GRINGPARAM: current and maximum RX/TX ring sizes."""

    rx: int
    rx_max: int
    tx: int
    tx_max: int


@dataclass(frozen=True)
class Coalesce:
    """The ETHTOOL_GCOALESCE fields that matter for latency."""

    rx_usecs: int
    rx_max_frames: int
    tx_usecs: int
    use_adaptive_rx: bool
    extra: dict[str, int] = field(default_factory=dict)


class NicProbe(Protocol):
    def interfaces(self) -> list[str]: ...
    def default_route_interface(self) -> str | None: ...
    def ts_info(self, ifname: str) -> TsInfo: ...
    def get_hwtstamp(self, ifname: str) -> HwTstampConfig: ...
    def set_hwtstamp(self, ifname: str, cfg: HwTstampConfig) -> HwTstampConfig: ...
    def get_rings(self, ifname: str) -> Rings: ...
    def set_rings(self, ifname: str, rx: int, tx: int) -> None: ...
    def get_coalesce(self, ifname: str) -> Coalesce: ...


# --- Timestamping constants (linux/net_tstamp.h) ---------------------------------------------

# SOF_TIMESTAMPING_*: capability bits in ethtool_ts_info.so_timestamping (and SO_TIMESTAMPING).
SOF_TIMESTAMPING_TX_HARDWARE = 1 << 0
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_HARDWARE = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_SYS_HARDWARE = 1 << 5
SOF_TIMESTAMPING_RAW_HARDWARE = 1 << 6
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_TX_SCHED = 1 << 8
SOF_TIMESTAMPING_TX_ACK = 1 << 9
SOF_TIMESTAMPING_OPT_CMSG = 1 << 10
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_STATS = 1 << 12
SOF_TIMESTAMPING_OPT_PKTINFO = 1 << 13
SOF_TIMESTAMPING_OPT_TX_SWHW = 1 << 14
SOF_TIMESTAMPING_BIND_PHC = 1 << 15
SOF_TIMESTAMPING_OPT_ID_TCP = 1 << 16
SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17
SOF_TIMESTAMPING_TX_COMPLETION = 1 << 18

SOF_TIMESTAMPING_NAMES: Mapping[int, str] = {
    SOF_TIMESTAMPING_TX_HARDWARE: "tx_hardware",
    SOF_TIMESTAMPING_TX_SOFTWARE: "tx_software",
    SOF_TIMESTAMPING_RX_HARDWARE: "rx_hardware",
    SOF_TIMESTAMPING_RX_SOFTWARE: "rx_software",
    SOF_TIMESTAMPING_SOFTWARE: "software",
    SOF_TIMESTAMPING_SYS_HARDWARE: "sys_hardware",
    SOF_TIMESTAMPING_RAW_HARDWARE: "raw_hardware",
    SOF_TIMESTAMPING_OPT_ID: "opt_id",
    SOF_TIMESTAMPING_TX_SCHED: "tx_sched",
    SOF_TIMESTAMPING_TX_ACK: "tx_ack",
    SOF_TIMESTAMPING_OPT_CMSG: "opt_cmsg",
    SOF_TIMESTAMPING_OPT_TSONLY: "opt_tsonly",
    SOF_TIMESTAMPING_OPT_STATS: "opt_stats",
    SOF_TIMESTAMPING_OPT_PKTINFO: "opt_pktinfo",
    SOF_TIMESTAMPING_OPT_TX_SWHW: "opt_tx_swhw",
    SOF_TIMESTAMPING_BIND_PHC: "bind_phc",
    SOF_TIMESTAMPING_OPT_ID_TCP: "opt_id_tcp",
    SOF_TIMESTAMPING_OPT_RX_FILTER: "opt_rx_filter",
    SOF_TIMESTAMPING_TX_COMPLETION: "tx_completion",
}

# What "hardware" and "software" timestamping need from a NIC (as `ethtool -T` lists them).
HARDWARE_TIMESTAMPING = (
    SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE
)
SOFTWARE_TIMESTAMPING = (
    SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
)

# HWTSTAMP_TX_*: hwtstamp_config.tx_type values; ethtool_ts_info.tx_types has bit (1 << value).
HWTSTAMP_TX_OFF = 0
HWTSTAMP_TX_ON = 1
HWTSTAMP_TX_ONESTEP_SYNC = 2
HWTSTAMP_TX_ONESTEP_P2P = 3

HWTSTAMP_TX_NAMES: Mapping[int, str] = {
    HWTSTAMP_TX_OFF: "off",
    HWTSTAMP_TX_ON: "on",
    HWTSTAMP_TX_ONESTEP_SYNC: "onestep_sync",
    HWTSTAMP_TX_ONESTEP_P2P: "onestep_p2p",
}

# HWTSTAMP_FILTER_*: hwtstamp_config.rx_filter values; ethtool_ts_info.rx_filters has bit
# (1 << value).
HWTSTAMP_FILTER_NONE = 0
HWTSTAMP_FILTER_ALL = 1
HWTSTAMP_FILTER_SOME = 2
HWTSTAMP_FILTER_PTP_V1_L4_EVENT = 3
HWTSTAMP_FILTER_PTP_V1_L4_SYNC = 4
HWTSTAMP_FILTER_PTP_V1_L4_DELAY_REQ = 5
HWTSTAMP_FILTER_PTP_V2_L4_EVENT = 6
HWTSTAMP_FILTER_PTP_V2_L4_SYNC = 7
HWTSTAMP_FILTER_PTP_V2_L4_DELAY_REQ = 8
HWTSTAMP_FILTER_PTP_V2_L2_EVENT = 9
HWTSTAMP_FILTER_PTP_V2_L2_SYNC = 10
HWTSTAMP_FILTER_PTP_V2_L2_DELAY_REQ = 11
HWTSTAMP_FILTER_PTP_V2_EVENT = 12
HWTSTAMP_FILTER_PTP_V2_SYNC = 13
HWTSTAMP_FILTER_PTP_V2_DELAY_REQ = 14
HWTSTAMP_FILTER_NTP_ALL = 15

HWTSTAMP_FILTER_NAMES: Mapping[int, str] = {
    HWTSTAMP_FILTER_NONE: "none",
    HWTSTAMP_FILTER_ALL: "all",
    HWTSTAMP_FILTER_SOME: "some",
    HWTSTAMP_FILTER_PTP_V1_L4_EVENT: "ptp_v1_l4_event",
    HWTSTAMP_FILTER_PTP_V1_L4_SYNC: "ptp_v1_l4_sync",
    HWTSTAMP_FILTER_PTP_V1_L4_DELAY_REQ: "ptp_v1_l4_delay_req",
    HWTSTAMP_FILTER_PTP_V2_L4_EVENT: "ptp_v2_l4_event",
    HWTSTAMP_FILTER_PTP_V2_L4_SYNC: "ptp_v2_l4_sync",
    HWTSTAMP_FILTER_PTP_V2_L4_DELAY_REQ: "ptp_v2_l4_delay_req",
    HWTSTAMP_FILTER_PTP_V2_L2_EVENT: "ptp_v2_l2_event",
    HWTSTAMP_FILTER_PTP_V2_L2_SYNC: "ptp_v2_l2_sync",
    HWTSTAMP_FILTER_PTP_V2_L2_DELAY_REQ: "ptp_v2_l2_delay_req",
    HWTSTAMP_FILTER_PTP_V2_EVENT: "ptp_v2_event",
    HWTSTAMP_FILTER_PTP_V2_SYNC: "ptp_v2_sync",
    HWTSTAMP_FILTER_PTP_V2_DELAY_REQ: "ptp_v2_delay_req",
    HWTSTAMP_FILTER_NTP_ALL: "ntp_all",
}


def flag_names(bits: int, names: Mapping[int, str]) -> list[str]:
    """Names of the set bits, lowest first; bits without a name show as ``bit<N>``."""
    out = []
    for n in range(bits.bit_length()):
        bit = 1 << n
        if bits & bit:
            out.append(names.get(bit, f"bit{n}"))
    return out


def _value_mask_names(mask: int, names: Mapping[int, str]) -> list[str]:
    # tx_types / rx_filters are "bit (1 << value) set when value is supported".
    return [names.get(n, f"value{n}") for n in range(mask.bit_length()) if mask & (1 << n)]


def describe_timestamping(bits: int) -> str:
    """``so_timestamping`` bits as names: ``"tx_software, rx_software, software"``."""
    return ", ".join(flag_names(bits, SOF_TIMESTAMPING_NAMES)) or "none"


def describe_tx_types(mask: int) -> str:
    """``ethtool_ts_info.tx_types`` as names: ``"off, on"``."""
    return ", ".join(_value_mask_names(mask, HWTSTAMP_TX_NAMES)) or "none"


def describe_rx_filters(mask: int) -> str:
    """``ethtool_ts_info.rx_filters`` as names: ``"none, all"``."""
    return ", ".join(_value_mask_names(mask, HWTSTAMP_FILTER_NAMES)) or "none"


def describe_hwtstamp(cfg: HwTstampConfig) -> str:
    """A hwtstamp_config in words: ``"tx on, rx filter all"``."""
    tx = HWTSTAMP_TX_NAMES.get(cfg.tx_type, f"type {cfg.tx_type}")
    rx = HWTSTAMP_FILTER_NAMES.get(cfg.rx_filter, f"{cfg.rx_filter}")
    flags = f", flags {cfg.flags:#x}" if cfg.flags else ""
    return f"tx {tx}, rx filter {rx}{flags}"


# --- The default route -----------------------------------------------------------------------

_RTF_UP = 0x0001


def parse_default_route(text: str) -> str | None:
    """The interface of the IPv4 default route in /proc/net/route text (lowest metric wins).

    Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses are hex.
    Lines that do not parse (the header, garbage) are ignored.
    """
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, flags, mask = int(cols[1], 16), int(cols[3], 16), int(cols[7], 16)
            metric = int(cols[6])
        except ValueError:
            continue
        if dest != 0 or mask != 0 or not flags & _RTF_UP:
            continue
        if best is None or metric < best[0]:
            best = (metric, cols[0])
    return None if best is None else best[1]


# --- ioctl plumbing --------------------------------------------------------------------------

SIOCETHTOOL = 0x8946
SIOCGHWTSTAMP = 0x89B1
SIOCSHWTSTAMP = 0x89B0

ETHTOOL_GCOALESCE = 0x0E
ETHTOOL_GRINGPARAM = 0x10
ETHTOOL_SRINGPARAM = 0x11
ETHTOOL_GET_TS_INFO = 0x41

IFNAMSIZ = 16
_u32 = ctypes.c_uint32


class _IfReq(ctypes.Structure):
    # struct ifreq: the name, then a union whose largest member (struct ifmap) makes it 24 bytes
    # on x86_64; every request here uses its first member, the ifr_data pointer.
    _fields_ = [
        ("name", ctypes.c_char * IFNAMSIZ),
        ("data", ctypes.c_void_p),
        ("_union_rest", ctypes.c_byte * (24 - ctypes.sizeof(ctypes.c_void_p))),
    ]


class _EthtoolTsInfo(ctypes.Structure):
    _fields_ = [
        ("cmd", _u32),
        ("so_timestamping", _u32),
        ("phc_index", ctypes.c_int32),
        ("tx_types", _u32),
        ("tx_reserved", _u32 * 3),
        ("rx_filters", _u32),
        ("rx_reserved", _u32 * 3),
    ]


class _EthtoolRingParam(ctypes.Structure):
    _fields_ = [
        (name, _u32)
        for name in (
            "cmd",
            "rx_max_pending",
            "rx_mini_max_pending",
            "rx_jumbo_max_pending",
            "tx_max_pending",
            "rx_pending",
            "rx_mini_pending",
            "rx_jumbo_pending",
            "tx_pending",
        )
    ]


# struct ethtool_coalesce after its cmd word, in ABI order.
COALESCE_FIELDS = (
    "rx_coalesce_usecs",
    "rx_max_coalesced_frames",
    "rx_coalesce_usecs_irq",
    "rx_max_coalesced_frames_irq",
    "tx_coalesce_usecs",
    "tx_max_coalesced_frames",
    "tx_coalesce_usecs_irq",
    "tx_max_coalesced_frames_irq",
    "stats_block_coalesce_usecs",
    "use_adaptive_rx_coalesce",
    "use_adaptive_tx_coalesce",
    "pkt_rate_low",
    "rx_coalesce_usecs_low",
    "rx_max_coalesced_frames_low",
    "tx_coalesce_usecs_low",
    "tx_max_coalesced_frames_low",
    "pkt_rate_high",
    "rx_coalesce_usecs_high",
    "rx_max_coalesced_frames_high",
    "tx_coalesce_usecs_high",
    "tx_max_coalesced_frames_high",
    "rate_sample_interval",
)
_COALESCE_DECODED = (
    "rx_coalesce_usecs",
    "rx_max_coalesced_frames",
    "tx_coalesce_usecs",
    "use_adaptive_rx_coalesce",
)


class _EthtoolCoalesce(ctypes.Structure):
    _fields_ = [("cmd", _u32)] + [(name, _u32) for name in COALESCE_FIELDS]


class _HwTstampConfig(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_int), ("tx_type", ctypes.c_int), ("rx_filter", ctypes.c_int)]


_ERRNO_MEANING = {
    errno.ENODEV: "no such interface",
    errno.EOPNOTSUPP: "not supported by the interface's driver",
    errno.EPERM: "permission denied (needs CAP_NET_ADMIN, i.e. root)",
    errno.EACCES: "permission denied (needs CAP_NET_ADMIN, i.e. root)",
    errno.EINVAL: "invalid argument (the driver rejected the request or its values)",
    errno.ERANGE: "value out of the range the driver accepts",
    errno.EBUSY: "the device is busy",
}


def _error_text(ifname: str, what: str, e: OSError) -> str:
    code = e.errno or 0
    # errno.errorcode spells 95 "ENOTSUP"; the kernel and ethtool call it EOPNOTSUPP.
    name = "EOPNOTSUPP" if code == errno.EOPNOTSUPP else errno.errorcode.get(code, str(code))
    meaning = _ERRNO_MEANING.get(code) or os.strerror(code)
    return f"{ifname}: {what} failed: {meaning} ({name})"


def _ifname_bytes(ifname: str) -> bytes:
    raw = os.fsencode(ifname)
    # The kernel's limit is IFNAMSIZ including the terminating NUL.
    if not raw or len(raw) >= IFNAMSIZ or b"/" in raw or b"\0" in raw or raw.strip() != raw:
        raise NicUnsupported(f"{ifname!r} is not a valid interface name", errno.EINVAL)
    return raw


class IoctlNicProbe:
    """The real NIC probe: SIOCETHTOOL and SIOC[GS]HWTSTAMP ioctls on an AF_INET socket.

    Queries act on the caller's network namespace (each call opens its own socket there). Every
    failure is a ``NicUnsupported`` naming the interface, the request and what the errno means.
    """

    def __init__(self, route_table: Path = Path("/proc/net/route")) -> None:
        self.route_table = route_table

    def interfaces(self) -> list[str]:
        try:
            return [name for _, name in sorted(socket.if_nameindex())]
        except OSError as e:
            raise NicUnsupported(f"cannot list network interfaces: {e.strerror or e}") from e

    def default_route_interface(self) -> str | None:
        try:
            text = self.route_table.read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        return parse_default_route(text)

    def ts_info(self, ifname: str) -> TsInfo:
        info = _EthtoolTsInfo(cmd=ETHTOOL_GET_TS_INFO)
        self._ioctl(ifname, SIOCETHTOOL, info, "ETHTOOL_GET_TS_INFO")
        return TsInfo(
            so_timestamping=int(info.so_timestamping),
            phc_index=int(info.phc_index),
            tx_types=int(info.tx_types),
            rx_filters=int(info.rx_filters),
        )

    def get_hwtstamp(self, ifname: str) -> HwTstampConfig:
        cfg = _HwTstampConfig()
        self._ioctl(ifname, SIOCGHWTSTAMP, cfg, "SIOCGHWTSTAMP")
        return HwTstampConfig(
            flags=int(cfg.flags), tx_type=int(cfg.tx_type), rx_filter=int(cfg.rx_filter)
        )

    def set_hwtstamp(self, ifname: str, cfg: HwTstampConfig) -> HwTstampConfig:
        """Configure hardware timestamping; returns what the driver actually set.

        A driver may widen the RX filter (asked for PTP events, timestamps everything), and
        reports that back in the same structure.
        """
        raw = _HwTstampConfig(flags=cfg.flags, tx_type=cfg.tx_type, rx_filter=cfg.rx_filter)
        self._ioctl(ifname, SIOCSHWTSTAMP, raw, "SIOCSHWTSTAMP")
        return HwTstampConfig(
            flags=int(raw.flags), tx_type=int(raw.tx_type), rx_filter=int(raw.rx_filter)
        )

    def get_rings(self, ifname: str) -> Rings:
        ring = self._get_ringparam(ifname)
        return Rings(
            rx=int(ring.rx_pending),
            rx_max=int(ring.rx_max_pending),
            tx=int(ring.tx_pending),
            tx_max=int(ring.tx_max_pending),
        )

    def set_rings(self, ifname: str, rx: int, tx: int) -> None:
        if rx < 0 or tx < 0 or rx > 0xFFFFFFFF or tx > 0xFFFFFFFF:
            raise NicUnsupported(f"{ifname}: ring sizes must be 0..2^32-1, got rx {rx} tx {tx}")
        # SRINGPARAM sets every ring at once: start from the current values so the mini and
        # jumbo rings stay as they are.
        ring = self._get_ringparam(ifname)
        ring.cmd = ETHTOOL_SRINGPARAM
        ring.rx_pending = rx
        ring.tx_pending = tx
        self._ioctl(ifname, SIOCETHTOOL, ring, "ETHTOOL_SRINGPARAM")

    def get_coalesce(self, ifname: str) -> Coalesce:
        co = _EthtoolCoalesce(cmd=ETHTOOL_GCOALESCE)
        self._ioctl(ifname, SIOCETHTOOL, co, "ETHTOOL_GCOALESCE")
        return Coalesce(
            rx_usecs=int(co.rx_coalesce_usecs),
            rx_max_frames=int(co.rx_max_coalesced_frames),
            tx_usecs=int(co.tx_coalesce_usecs),
            use_adaptive_rx=bool(co.use_adaptive_rx_coalesce),
            extra={n: int(getattr(co, n)) for n in COALESCE_FIELDS if n not in _COALESCE_DECODED},
        )

    def _get_ringparam(self, ifname: str) -> _EthtoolRingParam:
        ring = _EthtoolRingParam(cmd=ETHTOOL_GRINGPARAM)
        self._ioctl(ifname, SIOCETHTOOL, ring, "ETHTOOL_GRINGPARAM")
        return ring

    @staticmethod
    def _ioctl(ifname: str, request: int, payload: ctypes.Structure, what: str) -> None:
        """Point an ifreq's ifr_data at ``payload`` and issue ``request``; payload is filled in."""
        ifr = _IfReq(name=_ifname_bytes(ifname), data=ctypes.addressof(payload))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                fcntl.ioctl(sock.fileno(), request, ifr)
        except OSError as e:
            raise NicUnsupported(_error_text(ifname, what, e), e.errno) from e


class OfflineNicProbe:
    """For a Host whose root is not the running system (an image): no NIC state to see.

    Every query raises ``NicUnsupported`` saying so, so NIC knobs report skip rows instead of
    describing (or changing) the NICs of the machine that happens to build the image.
    """

    WHY = "NIC state is only visible on the running host (this root is not /)"

    def interfaces(self) -> list[str]:
        raise NicUnsupported(self.WHY)

    def default_route_interface(self) -> str | None:
        return None

    def ts_info(self, ifname: str) -> TsInfo:
        raise NicUnsupported(self.WHY)

    def get_hwtstamp(self, ifname: str) -> HwTstampConfig:
        raise NicUnsupported(self.WHY)

    def set_hwtstamp(self, ifname: str, cfg: HwTstampConfig) -> HwTstampConfig:
        raise NicUnsupported(self.WHY)

    def get_rings(self, ifname: str) -> Rings:
        raise NicUnsupported(self.WHY)

    def set_rings(self, ifname: str, rx: int, tx: int) -> None:
        raise NicUnsupported(self.WHY)

    def get_coalesce(self, ifname: str) -> Coalesce:
        raise NicUnsupported(self.WHY)
