"""Boot a root filesystem in QEMU: an ext4 image of the tree, direct kernel boot, serial console.

TCG only (``-accel tcg``): ``/dev/kvm`` on the CI machines is PVM, under which stock kernels
hang. Every boot has a hard timeout, ``-no-reboot`` turns a guest reboot or panic
(``panic=-1``) into QEMU exiting, and the VM has no network (``-nic none``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.infra.debroot import ImageError


@dataclass(frozen=True)
class BootResult:
    console: str  # everything the guest printed on its serial console
    returncode: int | None  # QEMU's exit status; None when it was killed at the timeout
    seconds: float


def tree_bytes(root: Path) -> int:
    """Bytes the files under ``root`` occupy (without following symlinks)."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def ext4_image(root: Path, image: Path, headroom_mb: int = 384) -> None:
    """An ext4 filesystem image holding a copy of ``root`` (mkfs.ext4 -d; no loop device)."""
    size_mb = tree_bytes(root) * 13 // 10 // 2**20 + headroom_mb
    proc = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "mdfeed-root", "-d", str(root), str(image), f"{size_mb}M"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise ImageError(f"mkfs.ext4 -d {root} failed: {proc.stderr.strip()[-1000:]}")


def boot(
    kernel: Path,
    initrd: Path,
    disk: Path,
    cmdline: str,
    *,
    cpus: int = 2,
    memory_mb: int = 2048,
    timeout_s: float = 240,
) -> BootResult:
    """Boot and wait for the guest to power off (or the timeout); return its console output."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise ImageError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    argv = [
        qemu,
        "-accel", "tcg",
        "-smp", str(cpus),
        "-m", str(memory_mb),
        "-nographic",
        "-no-reboot",
        "-nic", "none",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", cmdline,
        "-drive", f"file={disk},format=raw,if=virtio",
    ]  # fmt: skip
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        return BootResult(out.decode(errors="replace"), None, time.monotonic() - start)
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    return BootResult(text, proc.returncode, time.monotonic() - start)
