"""apply → check → revert on this real host (root; runs in CI).

A fixture records every value the test profile can touch and restores it in ``finally``, so the
host is left as found even when hosttune itself is broken.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.privilege import require_root

HOSTTUNE = [sys.executable, "-m", "hosttune.cli"]

THP = "/sys/kernel/mm/transparent_hugepage"
TOUCHED_VALUES = [
    "/proc/sys/vm/nr_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
    f"{THP}/enabled",
    f"{THP}/defrag",
    "/proc/sys/net/core/busy_read",
    "/proc/sys/net/core/busy_poll",
    "/proc/sys/net/core/netdev_max_backlog",
    "/proc/sys/net/core/rmem_max",
]
TOUCHED_FILES = ["/etc/sysctl.d/90-hosttune.conf", "/etc/default/grub.d/90-hosttune.cfg"]


def _irq_affinities() -> dict[str, str]:
    paths = sorted(Path("/proc/irq").glob("*/smp_affinity_list"))
    out = {str(p): p.read_text().strip() for p in paths}
    out["/proc/irq/default_smp_affinity"] = (
        Path("/proc/irq/default_smp_affinity").read_text().strip()
    )
    return out


def _kernel_value(path: str) -> str:
    text = Path(path).read_text().strip()
    for word in text.split():
        if word.startswith("["):
            return word.strip("[]")
    return text


@pytest.fixture
def restore_host(tmp_path: Path) -> Iterator[Path]:
    require_root("hosttune apply writes /proc/sys, /sys and /etc")
    values = {p: _kernel_value(p) for p in TOUCHED_VALUES if Path(p).exists()}
    files = {p: (Path(p).read_bytes() if Path(p).exists() else None) for p in TOUCHED_FILES}
    irqs = _irq_affinities()
    journal = tmp_path / "journal.json"
    try:
        yield journal
    finally:
        for p, v in irqs.items():
            if Path(p).read_text().strip() != v:
                with contextlib.suppress(OSError):  # some IRQs refuse any write (EIO)
                    Path(p).write_text(v)
        for p, v in values.items():
            if _kernel_value(p) != v:
                Path(p).write_text(v)
        for p, content in files.items():
            if content is None:
                Path(p).unlink(missing_ok=True)
            else:
                Path(p).write_bytes(content)


def hosttune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOSTTUNE, *args], capture_output=True, text=True, timeout=60)


def test_apply_check_revert_round_trip(restore_host: Path, tmp_path: Path) -> None:
    journal = str(restore_host)
    before = {p: _kernel_value(p) for p in TOUCHED_VALUES if Path(p).exists()}
    grub_dir_existed = Path("/etc/default/grub.d").exists()
    irqs_before = _irq_affinities()
    multi_cpu = (os.cpu_count() or 1) > 1
    hp = int(before["/proc/sys/vm/nr_hugepages"]) + 8
    busy = int(before["/proc/sys/net/core/busy_read"]) + 7
    thp = "never" if before[f"{THP}/enabled"] != "never" else "always"
    backlog = int(before["/proc/sys/net/core/netdev_max_backlog"]) + 1000
    profile = tmp_path / "p.toml"
    profile.write_text(
        f"""
name = "roundtrip"
[cpu]
isolated = "auto"
[hugepages]
pages_2m = {hp}
boot = true
[thp]
enabled = "{thp}"
defrag = "never"
[sysctl]
"net.core.busy_read" = {busy}
"net.core.netdev_max_backlog" = {{ min = {backlog} }}
"""
    )
    only = ["--only", "hugepages", "thp", "sysctl", "cmdline", "irq"]
    pre = json.loads(hosttune("check", "--json", "--profile", str(profile), *only).stdout)
    assert {c["id"]: c["status"] for c in pre["checks"]}["sysctl.net.core.busy_read"] == "fail"

    applied = hosttune("apply", "--json", "--profile", str(profile), "--journal", journal, *only)
    result = json.loads(applied.stdout)
    # Kernel-managed IRQs refuse any affinity write (EPERM/EIO); everything else must apply.
    refused = [f for f in result["failed"] if "/proc/irq/" in f["describe"]]
    assert result["failed"] == refused, result["failed"]
    assert all("not permitted" in f["error"] or "Input/output" in f["error"] for f in refused)
    assert applied.returncode == (1 if refused else 0), applied.stderr
    assert result["reboot_required"] is True

    post = json.loads(hosttune("check", "--json", "--profile", str(profile), *only).stdout)
    status = {c["id"]: c["status"] for c in post["checks"]}
    for cid in (
        "hugepages.2M",
        "thp.enabled",
        "thp.defrag",
        "sysctl.net.core.busy_read",
        "sysctl.net.core.netdev_max_backlog",
    ):
        assert status[cid] == "pass", (cid, post)
    assert status["cmdline.isolcpus"] in ("warn", "pass")  # staged until a reboot
    if multi_cpu:
        # IRQs that accept a new affinity were moved off the isolated CPU.
        irq_row = next(c for c in post["checks"] if c["id"] == "irq.affinity")
        if refused:
            assert irq_row["observed"].startswith(f"{len(refused)} of "), irq_row
        else:
            assert irq_row["status"] == "pass", irq_row
        assert _irq_affinities() != irqs_before
    assert (
        Path("/etc/sysctl.d/90-hosttune.conf").read_text().count(f"net.core.busy_read = {busy}")
        == 1
    )

    reverted = hosttune("revert", "--json", "--journal", journal)
    assert reverted.returncode == 0, reverted.stderr
    assert json.loads(reverted.stdout)["failed"] == []
    after = {p: _kernel_value(p) for p in TOUCHED_VALUES if Path(p).exists()}
    assert after == before
    assert _irq_affinities() == irqs_before
    assert not Path(journal).exists()
    assert Path("/etc/default/grub.d").exists() == grub_dir_existed  # directories it made are gone
    again = hosttune("revert", "--journal", journal)
    assert again.returncode == 0 and "nothing to revert" in again.stdout
