"""mount(2), umount2(2) and statfs(2) via ctypes, for the bpf and trace filesystems.

Example::

    if fs_magic("/sys/fs/bpf") != BPF_FS_MAGIC:
        mount("bpf", "/sys/fs/bpf", "bpf", data="mode=0700")
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Any, Final

#: statfs ``f_type`` of a bpf filesystem (BPF_FS_MAGIC) and of tracefs (TRACEFS_MAGIC).
BPF_FS_MAGIC: Final = 0xCAFE4A11
TRACEFS_MAGIC: Final = 0x74726163
#: mount(2) flag: read-only.
MS_RDONLY: Final = 1

PathLike = str | os.PathLike[str]


class _Statfs(ctypes.Structure):
    # Only f_type (the first field) is read; the padding covers the rest of struct statfs.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 256)]


@functools.cache
def _libc(name: str, *argtypes: Any) -> Any:
    fn = ctypes.CDLL(None, use_errno=True)[name]
    fn.restype = ctypes.c_int
    fn.argtypes = list(argtypes)
    return fn


def _error(what: str) -> OSError:
    err = ctypes.get_errno()
    hint = " (needs root)" if err == errno.EPERM else ""
    return OSError(err, f"{what}: {os.strerror(err)}{hint}")


def fs_magic(path: PathLike) -> int | None:
    """The filesystem type number of ``path`` (statfs ``f_type``); None if it cannot be read."""
    buf = _Statfs()
    statfs = _libc("statfs", ctypes.c_char_p, ctypes.c_void_p)
    if statfs(os.fsencode(os.fspath(path)), ctypes.addressof(buf)) != 0:
        return None
    return int(buf.f_type) & 0xFFFFFFFF


def mount(source: str, target: PathLike, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2) ``source`` of type ``fstype`` on directory ``target``."""
    fn = _libc(
        "mount", ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p
    )
    where = os.fspath(target)
    ret = fn(source.encode(), os.fsencode(where), fstype.encode(), flags, data.encode() or None)
    if ret != 0:
        raise _error(f"mount -t {fstype} {source} {where}")


def umount(target: PathLike) -> None:
    """umount2(2) ``target``."""
    fn = _libc("umount2", ctypes.c_char_p, ctypes.c_int)
    where = os.fspath(target)
    if fn(os.fsencode(where), 0) != 0:
        raise _error(f"umount {where}")


__all__ = ["BPF_FS_MAGIC", "MS_RDONLY", "TRACEFS_MAGIC", "fs_magic", "mount", "umount"]
