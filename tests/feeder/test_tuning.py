"""Self-tuning steps: each says on/off and why, and never takes the run down."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder import tuning
from hosttune.host import Host


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


def test_gc_freeze_and_threshold() -> None:
    before = gc.get_threshold()
    try:
        step = tuning.tune_gc()
        assert step.on and gc.get_threshold()[0] == tuning.GC_GEN0_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
