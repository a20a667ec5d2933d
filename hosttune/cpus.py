"""CPU and NUMA layout facts shared by the knobs (and by the feeder's pinning)."""

from __future__ import annotations

from hosttune import cpulist
from hosttune.host import Host
from hosttune.profile import Profile


def read_cpus(host: Host, path: str) -> frozenset[int] | None:
    """A kernel cpulist file; None when absent. Garbled content raises CpuListError naming it."""
    text = host.read_opt(path)
    if text is None:
        return None
    try:
        return cpulist.parse(text)
    except cpulist.CpuListError as e:
        raise cpulist.CpuListError(f"{path}: {e}") from e


def online_cpus(host: Host) -> frozenset[int]:
    # Every running kernel has CPU 0 online; a tree without the file is a one-CPU host.
    return read_cpus(host, "/sys/devices/system/cpu/online") or frozenset({0})


def isolated_target(host: Host, profile: Profile) -> frozenset[int]:
    """The CPUs the profile wants isolated on this host ("auto": all online but the first)."""
    spec = profile.cpu.isolated
    if spec == "":
        return frozenset()
    if spec == "auto":
        online = sorted(online_cpus(host))
        return frozenset(online[1:])
    return cpulist.parse(spec)


def isolated_now(host: Host) -> frozenset[int]:
    """CPUs the running kernel isolates (``/sys/devices/system/cpu/isolated``)."""
    return read_cpus(host, "/sys/devices/system/cpu/isolated") or frozenset()


def housekeeping(host: Host, profile: Profile) -> frozenset[int]:
    online = online_cpus(host)
    return (online - isolated_target(host, profile)) or online


def numa_nodes(host: Host) -> list[int]:
    """NUMA node ids with memory; empty when the host exposes no node directory."""
    nodes = read_cpus(host, "/sys/devices/system/node/has_memory")
    if nodes is None:
        nodes = read_cpus(host, "/sys/devices/system/node/online")
    return sorted(nodes or ())
