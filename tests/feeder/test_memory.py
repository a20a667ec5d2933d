"""Packet buffers land on huge pages when the host has them reserved (root; runs in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.net.memory import allocate, free_huge_pages
from feeder.net.mmsg import Slots
from tests.privilege import require_root

NR = Path("/proc/sys/vm/nr_hugepages")


@pytest.fixture
def huge_pages() -> Iterator[int]:
    require_root("reserving huge pages writes vm.nr_hugepages")
    before = NR.read_text().strip()
    try:
        NR.write_text(str(int(before) + 4))
        yield int(before) + 4
    finally:
        NR.write_text(before)


def test_slots_use_huge_pages_when_reserved(huge_pages: int) -> None:
    assert free_huge_pages() >= 1
    slots = Slots(64, 1472, huge_pages=True)
    assert slots.huge and len(slots.memory) % (2 << 20) == 0
    slots.views[3][:4] = b"MDFW"
    assert bytes(slots.memory[3 * 1472 : 3 * 1472 + 4]) == b"MDFW"
    del slots


def test_ordinary_memory_when_not_asked_or_not_available(tmp_path: Path) -> None:
    mem, huge = allocate(4096, huge=False)
    assert not huge and isinstance(mem, bytearray)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("HugePages_Total:       0\nHugePages_Free:        0\n")
    assert free_huge_pages(meminfo) == 0
