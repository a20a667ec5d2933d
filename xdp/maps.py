"""BPF maps as Python objects, and the bpf filesystem their pins live on.

A ``Map`` owns one map fd and knows its shape (type, key and value sizes). Keys and values are
``bytes`` of exactly the map's sizes, in host byte order (``u32``/``u64`` pack integers). Per-CPU
maps hold one value per possible CPU: use ``lookup_percpu``/``update_percpu``/``sum_percpu``.

Example::

    from xdp.maps import Map, u32
    from xdp.bpf import MapType

    with Map.create(MapType.XSKMAP, 4, 4, 64, name="xsks") as xsks:
        xsks.update(u32(queue_id), u32(xsk_socket.fileno()))
        ...

    ensure_bpffs()                        # mounts /sys/fs/bpf when it is not yet a bpffs
    counts.pin("/sys/fs/bpf/mdt_counts")  # outlives this process until unlinked
    again = Map.from_pinned("/sys/fs/bpf/mdt_counts")
    os.unlink("/sys/fs/bpf/mdt_counts")

A ``Map`` is closed by ``close()``, by leaving its ``with`` block, or when garbage collected.
The kernel frees the map once no fd, pin or loaded program refers to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from xdp import bpf, mounts
from xdp.bpf import MapType, UpdateFlag
from xdp.mounts import BPF_FS_MAGIC

DEFAULT_BPFFS: Final = Path("/sys/fs/bpf")

_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


def u32(value: int) -> bytes:
    """``value`` as a host-order 4-byte key or value."""
    return _U32.pack(value)


def u64(value: int) -> bytes:
    """``value`` as a host-order 8-byte key or value."""
    return _U64.pack(value)


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class Map:
    """An open BPF map (one fd) with its shape."""

    def __init__(
        self,
        fd: int,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        name: str = "",
    ) -> None:
        """Take ownership of ``fd``; prefer ``create``, ``from_fd`` or ``from_pinned``."""
        self._fd = fd
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.percpu = map_type in bpf.PERCPU_TYPES
        # Per-CPU values are padded to 8 bytes each, one per possible CPU.
        self._stride = (value_size + 7) & ~7
        self._ncpus = bpf.possible_cpus() if self.percpu else 1
        self._finalizer = weakref.finalize(self, _close_fd, fd)

    @classmethod
    def create(
        cls,
        map_type: MapType | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        *,
        name: str = "",
        flags: int = 0,
    ) -> Self:
        """Create a new map in the kernel."""
        fd = bpf.map_create(map_type, key_size, value_size, max_entries, flags=flags, name=name)
        return cls(fd, int(map_type), key_size, value_size, max_entries, name)

    @classmethod
    def from_fd(cls, fd: int) -> Self:
        """Wrap (and take ownership of) an existing map fd, asking the kernel for its shape."""
        info = bpf.map_info(fd)
        return cls(fd, info.type, info.key_size, info.value_size, info.max_entries, info.name)

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str]) -> Self:
        """Open the map pinned at ``path``."""
        fd = bpf.obj_get(path)
        try:
            return cls.from_fd(fd)
        except BaseException:
            os.close(fd)
            raise

    # --- lifetime ---

    @property
    def fd(self) -> int:
        """The map's fd (for ``ld_map_fd`` in programs); ``ValueError`` once closed."""
        if not self._finalizer.alive:
            raise ValueError(f"map {self.name!r} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Close the fd (idempotent). Programs that use the map keep it alive in the kernel."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        kind = bpf.enum_name(MapType, self.map_type)
        return (
            f"Map({self.name!r}, {kind}, key={self.key_size}, value={self.value_size}, "
            f"max_entries={self.max_entries}, {state})"
        )

    # --- buffers ---

    def _buffer(self, data: bytes, size: int, what: str) -> ctypes.Array[ctypes.c_char]:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"map {self.name!r}: {what} must be bytes, not {type(data).__name__}")
        if len(data) != size:
            raise ValueError(
                f"map {self.name!r}: {what} is {len(data)} bytes, the map needs {size}"
            )
        return ctypes.create_string_buffer(bytes(data), size)

    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        return self._buffer(key, self.key_size, "key")

    def _not_percpu(self, op: str) -> None:
        if self.percpu:
            raise TypeError(f"map {self.name!r} is per-CPU: use {op}_percpu")

    # --- elements ---

    def lookup(self, key: bytes) -> bytes | None:
        """The value under ``key``, or None."""
        self._not_percpu("lookup")
        value = ctypes.create_string_buffer(self.value_size)
        if not bpf.map_lookup(self.fd, self._key(key), value):
            return None
        return value.raw

    def update(self, key: bytes, value: bytes, flags: UpdateFlag | int = UpdateFlag.ANY) -> None:
        """Store ``value`` under ``key`` (``flags``: ANY, NOEXIST create only, EXIST replace)."""
        self._not_percpu("update")
        bpf.map_update(
            self.fd, self._key(key), self._buffer(value, self.value_size, "value"), flags
        )

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """One value per possible CPU under ``key``, or None."""
        buf = ctypes.create_string_buffer(self._stride * self._ncpus)
        if not bpf.map_lookup(self.fd, self._key(key), buf):
            return None
        raw = buf.raw
        return [
            raw[i * self._stride : i * self._stride + self.value_size] for i in range(self._ncpus)
        ]

    def update_percpu(
        self, key: bytes, values: Sequence[bytes], flags: UpdateFlag | int = UpdateFlag.ANY
    ) -> None:
        """Store one value per possible CPU (``len(values)`` must equal ``possible_cpus()``)."""
        if not self.percpu:
            raise TypeError(f"map {self.name!r} is not per-CPU: use update")
        if len(values) != self._ncpus:
            raise ValueError(
                f"map {self.name!r}: {len(values)} per-CPU values given, "
                f"{self._ncpus} CPUs are possible"
            )
        buf = ctypes.create_string_buffer(self._stride * self._ncpus)
        for i, value in enumerate(values):
            self._buffer(value, self.value_size, f"value for CPU {i}")
            ctypes.memmove(ctypes.addressof(buf) + i * self._stride, bytes(value), self.value_size)
        bpf.map_update(self.fd, self._key(key), buf, flags)

    def sum_percpu(self, key: bytes) -> int:
        """The per-CPU u64 counters under ``key`` added up (0 when the key is absent)."""
        if self.value_size != 8:
            raise TypeError(f"map {self.name!r}: sum_percpu needs 8-byte (u64) values")
        values = self.lookup_percpu(key)
        return sum(_U64.unpack(v)[0] for v in values) if values else 0

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False when it was not there."""
        return bpf.map_delete(self.fd, self._key(key))

    def keys(self) -> Iterator[bytes]:
        """Every key, in the kernel's order (entries changed while iterating may be missed)."""
        fd = self.fd
        current: ctypes.Array[ctypes.c_char] | None = None
        while True:
            following = ctypes.create_string_buffer(self.key_size)
            if not bpf.map_next_key(fd, current, following):
                return
            yield following.raw
            current = following

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs of a map that is not per-CPU (deleted keys are skipped)."""
        self._not_percpu("lookup")
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes | bytearray | memoryview):
            return False
        probe = ctypes.create_string_buffer(self._stride * self._ncpus)
        return bpf.map_lookup(self.fd, self._key(bytes(key)), probe)

    # --- pinning ---

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin at ``path`` on a bpf filesystem; the pin keeps the map alive until unlinked."""
        target = Path(path)
        if not is_bpffs(target.parent):
            raise OSError(
                errno.EINVAL,
                f"cannot pin map {self.name!r} at {target}: {target.parent} is not a bpf "
                f"filesystem (mount one: xdp.maps.ensure_bpffs({str(target.parent)!r}))",
            )
        if target.exists():
            raise FileExistsError(
                errno.EEXIST, f"cannot pin map {self.name!r}: {target} already exists", str(target)
            )
        bpf.obj_pin(self.fd, target)


# --- the bpf filesystem ---


def is_bpffs(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies on a bpf filesystem (False also when it does not exist)."""
    return mounts.fs_magic(path) == BPF_FS_MAGIC


def ensure_bpffs(path: str | os.PathLike[str] = DEFAULT_BPFFS) -> bool:
    """Mount a bpf filesystem at ``path`` unless one is there; True when this call mounted it.

    Whoever gets True is responsible for ``unmount_bpffs(path)`` if the mount should not stay.
    """
    where = Path(path)
    if is_bpffs(where):
        return False
    if not where.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot mount a bpf filesystem at {where}: not a directory", str(where)
        )
    mounts.mount("bpf", where, "bpf", data="mode=0700")
    return True


def unmount_bpffs(path: str | os.PathLike[str] = DEFAULT_BPFFS) -> None:
    """Unmount the bpf filesystem at ``path`` (its pins go; objects only they held are freed)."""
    if not is_bpffs(path):
        raise OSError(errno.EINVAL, f"{os.fspath(path)} is not a bpf filesystem mount")
    mounts.umount(path)


__all__ = [
    "BPF_FS_MAGIC",
    "DEFAULT_BPFFS",
    "Map",
    "ensure_bpffs",
    "is_bpffs",
    "u32",
    "u64",
    "unmount_bpffs",
]
