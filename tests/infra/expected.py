"""What a host provisioned from a hosttune profile must hold, computed with hosttune's own code.

The file texts are exactly what ``hosttune apply`` writes for the profile, so a host the Ansible
role provisioned passes only when the role and hosttune agree byte for byte.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hosttune import cpulist
from hosttune.cpus import isolated_target
from hosttune.host import Host
from hosttune.knobs import cmdline, memlock, sysctl
from hosttune.nicprobe import OfflineNicProbe
from hosttune.profile import Profile, SysctlRule

PROFILE_DIR = "/etc/hosttune"
VENV = "/opt/mdfeed/venv"
FEEDER_CONFIG = "/etc/feeder/feeder.toml"
PUBLISHER_CAPS = frozenset({"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_BPF", "CAP_IPC_LOCK"})
# Capability numbers (linux/capability.h) for reading /proc/PID/status masks.
CAP_NUMBERS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_BPF": 39}


def host_with_cpus(online: frozenset[int], root: Path) -> Host:
    """A hosttune Host over a tiny tree that only says which CPUs are online."""
    cpu = root / "sys/devices/system/cpu"
    cpu.mkdir(parents=True, exist_ok=True)
    (cpu / "online").write_text(cpulist.render(online) + "\n")
    return Host(root=root, nic=OfflineNicProbe(), allow_commands=False)


@dataclass(frozen=True)
class Expected:
    profile: Profile
    online: frozenset[int]  # the CPUs the target runs (or will boot) with

    def _host(self, tmp: str) -> Host:
        return host_with_cpus(self.online, Path(tmp))

    @property
    def isolated(self) -> frozenset[int]:
        with tempfile.TemporaryDirectory() as tmp:
            return isolated_target(self._host(tmp), self.profile)

    @property
    def boot_params(self) -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            return cmdline.boot_params(self._host(tmp), self.profile)

    def files(self) -> dict[str, str]:
        """Path -> exact content of every file ``hosttune apply --persistent-only`` writes."""
        p = self.profile
        swap = SysctlRule("vm.swappiness", "max", str(p.swap.swappiness_max))
        numa = SysctlRule("kernel.numa_balancing", "eq", "1" if p.numa.balancing else "0")
        out = {
            sysctl.DROPIN: sysctl.dropin_text(p.sysctl),
            "/etc/sysctl.d/90-hosttune-swap.conf": sysctl.dropin_text((swap,)),
            "/etc/sysctl.d/90-hosttune-numa.conf": sysctl.dropin_text((numa,)),
            memlock.LIMITS_DROPIN: memlock.limits_dropin_text(p.memlock),
            cmdline.GRUB_DROPIN: cmdline.dropin_text(self.boot_params),
        }
        if p.memlock.systemd_unit is not None:
            out[memlock.unit_dropin_path(p.memlock.systemd_unit)] = memlock.unit_dropin_text(
                p.memlock
            )
        return out


def unit_settings(text: str) -> dict[str, str]:
    """``Key=value`` lines of a systemd unit (last one wins; sections are not told apart)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in "#;[" and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def caps_in_mask(mask_hex: str) -> frozenset[str]:
    """The capabilities we know of that a /proc/PID/status mask (CapEff: ...) holds."""
    mask = int(mask_hex, 16)
    return frozenset(name for name, bit in CAP_NUMBERS.items() if mask >> bit & 1)


def mask_has_only(mask_hex: str, names: frozenset[str]) -> bool:
    return int(mask_hex, 16) == sum(1 << CAP_NUMBERS[n] for n in names)
