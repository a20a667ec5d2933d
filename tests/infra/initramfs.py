"""A tiny initramfs: busybox, the disk and filesystem modules, and an /init that mounts the
image's ext4 root and hands over to the image's own init.

Written as a "newc" cpio archive directly (the format is a 110-byte ASCII header per entry),
so building one needs neither cpio nor gzip; the kernel unpacks an uncompressed archive as is.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

_MAGIC = b"070701"
S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000


@dataclass(frozen=True)
class Entry:
    name: str  # path inside the archive, without a leading slash
    mode: int  # file type and permission bits
    data: bytes = b""  # file content, or the target of a symlink


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def newc(entries: list[Entry]) -> bytes:
    """The cpio "newc" archive of ``entries`` (parents listed before their children)."""
    out = bytearray()
    for ino, e in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = e.name.encode() + b"\0"
        fields = (ino, e.mode, 0, 0, 2 if e.mode & S_IFDIR else 1, 0, len(e.data), 0, 0, 0, 0)
        header = _MAGIC + b"".join(b"%08x" % f for f in fields) + b"%08x" % len(name) + b"%08x" % 0
        out += header + name + _pad(len(header) + len(name))
        out += e.data + _pad(len(e.data))
    return bytes(out)


def init_script(modules: list[str], init: str, device: str = "/dev/vda") -> str:
    """The initramfs /init: load ``modules`` in order, mount ``device``, exec its ``init``."""
    insmods = "\n".join(
        f"$bb insmod /lib/modules/{shlex.quote(m)} || echo 'initramfs: insmod {m} failed'"
        for m in modules
    )
    return f"""#!/bin/busybox sh
# mdfeed boot-check initramfs: load the disk drivers, mount the image, hand over to its init.
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
{insmods}
n=0
while [ ! -b {device} ] && [ $n -lt 200 ]; do $bb usleep 50000; n=$((n + 1)); done
if ! $bb mount -t ext4 -o rw {device} /newroot; then
    echo "initramfs: cannot mount {device}"
    $bb poweroff -f
fi
$bb mount --move /dev /newroot/dev
$bb umount /sys /proc
exec $bb switch_root /newroot {init}
"""


def build(busybox: Path, modules: list[Path], init: str) -> bytes:
    """The initramfs image: busybox (static), ``modules`` (.ko, in load order) and /init."""
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise ValueError(f"two modules share a file name: {names}")
    entries = [Entry(d, S_IFDIR | 0o755) for d in ("bin", "dev", "proc", "sys", "newroot", "lib")]
    entries.append(Entry("lib/modules", S_IFDIR | 0o755))
    entries.append(Entry("bin/busybox", S_IFREG | 0o755, busybox.read_bytes()))
    entries.append(Entry("bin/sh", S_IFLNK | 0o777, b"busybox"))
    entries += [Entry(f"lib/modules/{m.name}", S_IFREG | 0o644, m.read_bytes()) for m in modules]
    entries.append(Entry("init", S_IFREG | 0o755, init_script(names, init).encode()))
    return newc(entries)
