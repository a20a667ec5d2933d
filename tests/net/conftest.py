"""Fixtures for the feeder.net tests: a checked-clean namespace prefix and a live topology."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from feeder.net.topology import TwoHostTopology, cleanup_stale, list_stale
from tests.privilege import require_root


@pytest.fixture
def ns_prefix(unique_prefix: str) -> Iterator[str]:
    """``unique_prefix`` for tests creating namespaces; fails the test if any were left behind
    (after removing them, so the host is clean either way)."""
    yield unique_prefix
    leftovers = list_stale(unique_prefix)
    cleanup_stale(unique_prefix)
    assert not leftovers, f"test left network namespaces behind: {leftovers}"


@pytest.fixture
def topo(ns_prefix: str) -> Iterator[TwoHostTopology]:
    """A two-namespace topology, torn down after the test."""
    require_root("builds network namespaces and a veth pair")
    with TwoHostTopology.build(ns_prefix) as topology:
        yield topology
