"""UMEM: the packet memory an AF_XDP socket shares with the kernel.

One anonymous mapping cut into equal frames. It is backed by huge pages when enough are
reserved and free (fewer TLB misses on the hot path), else by normal pages; ``backing`` says
which and why. The kernel pins the pages when a socket registers the UMEM: without
CAP_IPC_LOCK that counts against RLIMIT_MEMLOCK, hence the modest default size.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: mmap flag from linux/mman.h (Python's mmap module does not export it on 3.11).
MAP_HUGETLB = 0x40000
#: Smallest frame (chunk) the kernel accepts (XDP_UMEM_MIN_CHUNK_SIZE).
MIN_FRAME_SIZE = 2048
#: Largest frame in aligned mode: one page.
MAX_FRAME_SIZE = mmap.PAGESIZE
#: struct xdp_umem_reg: addr, len, chunk_size, headroom, flags, tx_metadata_len.
_UMEM_REG = struct.Struct("=QQIIII")

HugePagePolicy = Literal["auto", "never", "require"]


class UmemError(Exception):
    """The UMEM could not be set up; the message says why and what to change."""


@dataclass(frozen=True)
class HugePages:
    """Default-size huge pages as /proc/meminfo reports them."""

    total: int
    free: int
    size: int  # bytes per page


def read_huge_pages(meminfo: str) -> HugePages | None:
    """``HugePages_Total/Free`` and ``Hugepagesize`` from /proc/meminfo text; None if absent."""
    fields: dict[str, int] = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("HugePages_Total", "HugePages_Free", "Hugepagesize") and parts:
            try:
                value = int(parts[0])
            except ValueError:
                return None
            fields[key] = value * 1024 if parts[1:] == ["kB"] else value
    if len(fields) != 3:
        return None
    return HugePages(fields["HugePages_Total"], fields["HugePages_Free"], fields["Hugepagesize"])


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def _check_geometry(frame_count: int, frame_size: int) -> None:
    if isinstance(frame_count, bool) or not isinstance(frame_count, int) or frame_count < 1:
        raise ValueError(f"UMEM frame count {frame_count!r} must be a positive integer")
    if (
        isinstance(frame_size, bool)
        or not isinstance(frame_size, int)
        or not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE
        or frame_size & (frame_size - 1)
    ):
        raise ValueError(
            f"UMEM frame size {frame_size!r} must be a power of two in "
            f"{MIN_FRAME_SIZE}..{MAX_FRAME_SIZE} (the kernel's aligned-chunk limits)"
        )


class Umem:
    """``frame_count`` frames of ``frame_size`` bytes in one mapping, at ``address``."""

    def __init__(
        self, memory: mmap.mmap, frame_count: int, frame_size: int, huge: bool, backing: str
    ) -> None:
        self._memory: mmap.mmap | None = memory
        self.frame_count = frame_count
        self.frame_size = frame_size
        self.size = frame_count * frame_size
        self.huge = huge
        self.backing = backing
        pin = ctypes.c_char.from_buffer(memory)
        self.address = ctypes.addressof(pin)
        del pin  # the address stays valid as long as the mapping does
        #: Writable view of the frames (the mapping may be longer: huge-page rounding).
        self.view: memoryview = memoryview(memory)[: self.size]

    @classmethod
    def allocate(
        cls,
        frame_count: int = 2048,
        frame_size: int = 2048,
        *,
        huge_pages: HugePagePolicy = "auto",
        meminfo: Path = Path("/proc/meminfo"),
    ) -> Umem:
        """Map the UMEM: huge pages when reserved and free ("auto"), never, or required."""
        _check_geometry(frame_count, frame_size)
        if huge_pages not in ("auto", "never", "require"):
            raise ValueError(f"huge_pages {huge_pages!r} must be 'auto', 'never' or 'require'")
        size = frame_count * frame_size
        why_not = "huge pages not wanted (huge_pages='never')"
        if huge_pages != "never":
            try:
                pages = read_huge_pages(meminfo.read_text())
            except OSError as e:
                pages, why_not = None, f"{meminfo} unreadable ({e.strerror or e})"
            else:
                why_not = "the kernel reports no huge pages"
            if pages is not None:
                length = _round_up(size, pages.size)
                need = length // pages.size
                if pages.free < need:
                    why_not = (
                        f"{pages.free} of {pages.total} huge pages of {pages.size >> 10} KiB free,"
                        f" {need} needed (reserve them: vm.nr_hugepages, or hosttune apply)"
                    )
                else:
                    try:
                        memory = mmap.mmap(
                            -1,
                            length,
                            flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_HUGETLB,
                        )
                    except OSError as e:
                        why_not = f"huge-page mapping failed ({e.strerror or e})"
                    else:
                        backing = f"{need} huge pages of {pages.size >> 10} KiB"
                        return cls(memory, frame_count, frame_size, True, backing)
            if huge_pages == "require":
                raise UmemError(f"UMEM of {size >> 10} KiB cannot use huge pages: {why_not}")
        try:
            memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError as e:
            raise UmemError(f"cannot map a UMEM of {size >> 10} KiB: {e.strerror or e}") from e
        return cls(memory, frame_count, frame_size, False, f"normal pages ({why_not})")

    def frame_addresses(self) -> list[int]:
        """The offset of every frame (what descriptors and fill/completion rings carry)."""
        return list(range(0, self.size, self.frame_size))

    def registration(self, headroom: int = 0, flags: int = 0, tx_metadata_len: int = 0) -> bytes:
        """``struct xdp_umem_reg`` for setsockopt(SOL_XDP, XDP_UMEM_REG)."""
        return _UMEM_REG.pack(
            self.address, self.size, self.frame_size, headroom, flags, tx_metadata_len
        )

    @property
    def closed(self) -> bool:
        return self._memory is None

    def close(self) -> None:
        """Unmap (idempotent). Views still held elsewhere keep the mapping until they go."""
        memory, self._memory = self._memory, None
        if memory is None:
            return
        self.view.release()
        # Someone still holding a view keeps the mapping until the last reference goes.
        with contextlib.suppress(BufferError):
            memory.close()

    def describe(self) -> str:
        return (
            f"{self.frame_count} frames x {self.frame_size} B = {self.size >> 10} KiB on "
            f"{self.backing}"
        )
