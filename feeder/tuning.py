"""Self-tuning at start-up: lock memory, pin the hot loop, and report every fast path.

Each step says whether it is on and why (with the ``hosttune`` check that would turn it on when
it is off), and the list goes to the start-up table and the run report. Nothing here is fatal:
a host that cannot do a step runs without it, and says so.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import gc
import os
import resource
from dataclasses import asdict, dataclass
from typing import Any

from hosttune import cpulist
from hosttune.cpus import isolated_now
from hosttune.host import Host

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
CAP_IPC_LOCK = 14
GC_GEN0_THRESHOLD = 50_000


@dataclass(frozen=True)
class Step:
    name: str
    on: bool
    detail: str


def _cap_eff(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def lock_memory(host: Host) -> Step:
    """mlockall: no page fault on the hot path may ever wait for the disk or for reclaim.

    With MCL_ONFAULT pages are locked as they are touched rather than all at once: without it
    every mapping is populated, including reservations never used (OpenBLAS, loaded with
    numpy for the AF_XDP rings, reserves ~120 MB of buffers), which took the feeder's RSS from
    ~100 to 230 MB. Hot buffers are written once when allocated (``net.memory.prefault``), so
    they are resident and locked before traffic starts."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    has_ipc_lock = bool(_cap_eff(host.read_opt("/proc/self/status") or "") >> CAP_IPC_LOCK & 1)
    # MCL_FUTURE under a finite limit would make later allocations fail: only ask for it when
    # the limit cannot bite.
    future = soft == resource.RLIM_INFINITY or has_ipc_lock
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MCL_CURRENT | (MCL_FUTURE if future else 0)
    scope = "current and future" if future else "current (RLIMIT_MEMLOCK is finite: not future)"
    if libc.mlockall(flags | MCL_ONFAULT) == 0:
        return Step("mlockall", True, f"{scope} pages locked as they are touched (MCL_ONFAULT)")
    if ctypes.get_errno() == errno.EINVAL and libc.mlockall(flags) == 0:  # before Linux 4.4
        return Step("mlockall", True, f"{scope} pages locked")
    err = ctypes.get_errno()
    limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
    return Step(
        "mlockall",
        False,
        f"failed ({os.strerror(err)}; RLIMIT_MEMLOCK {limit}): raise it with `hosttune apply` "
        "(memlock.limits / memlock.systemd: LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK",
    )


def pin_hot_loop(host: Host, cpu: int | None = None) -> Step:
    """Pin this process (the event loop is its hot loop) to an isolated CPU."""
    isolated = isolated_now(host)
    if cpu is None:
        allowed = os.sched_getaffinity(0)
        usable = sorted(isolated & allowed)
        if not usable:
            why = (
                "no isolated CPUs"
                if not isolated
                else f"isolated CPUs {cpulist.render(isolated)} not allowed to this process"
            )
            return Step("cpu pinning", False, f"{why} (hosttune check: cmdline.isolcpus)")
        cpu = usable[0]
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as e:
        return Step("cpu pinning", False, f"cannot pin to CPU {cpu}: {e.strerror}")
    kind = "isolated" if cpu in isolated else "not isolated"
    return Step("cpu pinning", True, f"pinned to CPU {cpu} ({kind})")


def tune_gc() -> Step:
    """Move start-up objects out of the collector's sight and collect young objects rarely."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, g1, g2)
    return Step(
        "gc",
        True,
        f"{gc.get_freeze_count()} start-up objects frozen; gen0 threshold {GC_GEN0_THRESHOLD}",
    )


def busy_poll(host: Host) -> Step:
    read = (host.read_opt("/proc/sys/net/core/busy_read") or "0").strip()
    poll = (host.read_opt("/proc/sys/net/core/busy_poll") or "0").strip()
    if read != "0" or poll != "0":
        return Step("busy polling", True, f"net.core.busy_read {read} µs, busy_poll {poll} µs")
    return Step(
        "busy polling",
        False,
        "net.core.busy_read/busy_poll are 0 (hosttune check: sysctl.net.core.busy_read)",
    )


def event_loop() -> Step:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return Step("uvloop", False, "no running loop")
    name = type(loop).__module__
    on = name.startswith("uvloop")
    return Step(
        "uvloop", on, "uvloop event loop" if on else f"stdlib loop ({name}): pip install uvloop"
    )


def transport(info: dict[str, Any]) -> list[Step]:
    steps = [Step("send path", True, str(info.get("transport", "none")))]
    if "huge_pages" in info:
        steps.append(
            Step(
                "huge-page buffers",
                bool(info["huge_pages"]),
                "packet slots on 2 MiB pages"
                if info["huge_pages"]
                else "no free huge pages (hosttune check: hugepages.2M)",
            )
        )
    if "sndbuf_granted" in info:
        capped = bool(info.get("sndbuf_capped"))
        steps.append(
            Step(
                "socket buffer",
                not capped,
                f"SO_SNDBUF granted {info['sndbuf_granted']} (read back)"
                + (f"; {info.get('sndbuf_fix')}" if capped else ""),
            )
        )
    return steps


def self_tune(host: Host, *, pin: bool = True, cpu: int | None = None) -> list[Step]:
    steps = [lock_memory(host)]
    steps.append(pin_hot_loop(host, cpu) if pin else Step("cpu pinning", False, "disabled"))
    steps += [busy_poll(host), event_loop()]
    return steps


def table(steps: list[Step]) -> str:
    width = max(len(s.name) for s in steps)
    return "\n".join(f"  {s.name:<{width}}  {'on ' if s.on else 'off'}  {s.detail}" for s in steps)


def as_json(steps: list[Step]) -> list[dict[str, Any]]:
    return [asdict(s) for s in steps]
