"""Self-tuning steps: each says on/off and why, and never takes the run down."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder import tuning
from hosttune.host import Host
from tests.privilege import require_root


@pytest.fixture
def affinity() -> Iterator[set[int]]:
    before = os.sched_getaffinity(0)
    try:
        yield set(before)
    finally:
        os.sched_setaffinity(0, before)


def fake(tmp_path: Path, files: dict[str, str]) -> Host:
    for p, text in files.items():
        f = tmp_path / p.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return Host(root=tmp_path, allow_commands=False)


def test_pins_to_the_first_isolated_cpu(tmp_path: Path, affinity: set[int]) -> None:
    cpu = max(affinity)
    host = fake(tmp_path, {"/sys/devices/system/cpu/isolated": f"{cpu}\n"})
    step = tuning.pin_hot_loop(host)
    assert step.on and f"CPU {cpu} (isolated)" in step.detail
    assert os.sched_getaffinity(0) == {cpu}


def test_no_isolated_cpus_is_off_with_the_hosttune_check(
    tmp_path: Path, affinity: set[int]
) -> None:
    step = tuning.pin_hot_loop(fake(tmp_path, {"/sys/devices/system/cpu/isolated": "\n"}))
    assert not step.on and "cmdline.isolcpus" in step.detail
    assert os.sched_getaffinity(0) == affinity


def test_busy_poll_reads_the_sysctls(tmp_path: Path) -> None:
    on = tuning.busy_poll(fake(tmp_path / "a", {"/proc/sys/net/core/busy_read": "50\n"}))
    off = tuning.busy_poll(fake(tmp_path / "b", {}))
    assert on.on and "50" in on.detail
    assert not off.on and "sysctl.net.core.busy_read" in off.detail


def test_mlockall_reports_either_way() -> None:
    try:
        step = tuning.lock_memory(Host())
        if os.geteuid() == 0:
            assert step.on  # root holds CAP_IPC_LOCK
        else:
            assert step.on or "hosttune apply" in step.detail
    finally:
        ctypes.CDLL(None).munlockall()  # the rest of the test session need not stay locked


LOCK_THEN_MAP = """
import json, mmap
from feeder import tuning
from feeder.net.memory import prefault
from hosttune.host import Host

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

step = tuning.lock_memory(Host())
before = rss_kb()
m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
mapped = rss_kb()
prefault(m)
touched = rss_kb()
print(json.dumps({"detail": step.detail, "on": step.on, "mapped": mapped - before,
                  "touched": touched - before}))
"""


def test_mlockall_locks_pages_as_they_are_touched_not_every_mapping() -> None:
    require_root("mlockall of a whole process needs CAP_IPC_LOCK or a memlock limit")
    p = subprocess.run(
        [sys.executable, "-c", LOCK_THEN_MAP], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["on"] and "MCL_ONFAULT" in r["detail"]
    assert r["mapped"] < 8 << 10  # a 64 MiB reservation is not populated ...
    assert r["touched"] >= 60 << 10  # ... until it is written, and then it is resident


def test_gc_freeze_and_threshold() -> None:
    before = gc.get_threshold()
    try:
        step = tuning.tune_gc()
        assert step.on and gc.get_threshold()[0] == tuning.GC_GEN0_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
