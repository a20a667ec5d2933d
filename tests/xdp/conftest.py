"""Fixtures for the xdp tests: a veth topology in test namespaces, a private bpffs mount."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeder.net.topology import TwoHostTopology, cleanup_stale, list_stale
from tests.privilege import require_root
from xdp import maps


@pytest.fixture
def topo(unique_prefix: str) -> Iterator[TwoHostTopology]:
    """Two namespaces joined by a veth pair; removed afterwards (and checked to be gone)."""
    require_root("XDP attach needs network namespaces and a veth pair")
    try:
        with TwoHostTopology.build(unique_prefix) as topology:
            yield topology
    finally:
        leftovers = list_stale(unique_prefix)
        cleanup_stale(unique_prefix)
    assert not leftovers, f"test left network namespaces behind: {leftovers}"


@pytest.fixture
def bpffs() -> Iterator[Path]:
    """A private bpf filesystem on a temporary directory, unmounted (pins and all) afterwards."""
    require_root("mounting a bpf filesystem needs root")
    with tempfile.TemporaryDirectory(prefix="mdt-bpffs-") as where:
        path = Path(where)
        mounted = maps.ensure_bpffs(path)
        assert mounted, f"{path} was already a bpf filesystem"
        # A fresh bpffs may hold the kernel's own files (maps.debug, progs.debug).
        own = set(path.iterdir())
        try:
            yield path
        finally:
            try:
                for pin in set(path.iterdir()) - own:
                    pin.unlink()
            finally:
                maps.unmount_bpffs(path)
