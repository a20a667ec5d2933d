"""Fake hosts for knob unit tests: a tmp /proc + /sys + /etc tree and a fake NIC."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hosttune.host import Host
from hosttune.nicprobe import Coalesce, HwTstampConfig, NicUnsupported, Rings, TsInfo
from hosttune.profile import Profile, parse_profile


@dataclass
class FakeNic:
    """A NicProbe backed by dicts; a missing entry behaves like EOPNOTSUPP."""

    ts: dict[str, TsInfo] = field(default_factory=dict)
    hwtstamp: dict[str, HwTstampConfig] = field(default_factory=dict)
    rings: dict[str, Rings] = field(default_factory=dict)
    coalesce: dict[str, Coalesce] = field(default_factory=dict)
    default_iface: str | None = "eth0"
    names: list[str] = field(default_factory=lambda: ["lo", "eth0"])

    def interfaces(self) -> list[str]:
        return list(self.names)

    def default_route_interface(self) -> str | None:
        return self.default_iface

    def _get(self, table: dict[str, object], ifname: str) -> object:
        if ifname not in self.names:
            raise NicUnsupported(f"{ifname}: no such interface")
        if ifname not in table:
            raise NicUnsupported(f"{ifname}: operation not supported by the driver")
        return table[ifname]

    def ts_info(self, ifname: str) -> TsInfo:
        return self._get(self.ts, ifname)  # type: ignore[arg-type, return-value]

    def get_hwtstamp(self, ifname: str) -> HwTstampConfig:
        return self._get(self.hwtstamp, ifname)  # type: ignore[arg-type, return-value]

    def set_hwtstamp(self, ifname: str, cfg: HwTstampConfig) -> HwTstampConfig:
        self._get(self.hwtstamp, ifname)  # type: ignore[arg-type]
        self.hwtstamp[ifname] = cfg
        return cfg

    def get_rings(self, ifname: str) -> Rings:
        return self._get(self.rings, ifname)  # type: ignore[arg-type, return-value]

    def set_rings(self, ifname: str, rx: int, tx: int) -> None:
        cur = self.get_rings(ifname)
        self.rings[ifname] = Rings(rx=rx, rx_max=cur.rx_max, tx=tx, tx_max=cur.tx_max)

    def get_coalesce(self, ifname: str) -> Coalesce:
        return self._get(self.coalesce, ifname)  # type: ignore[arg-type, return-value]


def fake_host(root: Path, files: dict[str, str], nic: FakeNic | None = None, euid: int = 0) -> Host:
    """Write ``files`` (host path -> content) under ``root`` and return a Host on that tree."""
    for p, content in files.items():
        target = root / p.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return Host(root=root, nic=nic or FakeNic(), euid=euid, allow_commands=False)


def profile(**sections: dict[str, object]) -> Profile:
    """A profile from sections given as dicts, e.g. ``profile(thp={"enabled": "never"})``."""
    return parse_profile(dict(sections), "test")
