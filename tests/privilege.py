"""Helpers for tests that need privileges: skip outside CI, fail inside CI."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_root(reason: str = "needs root") -> None:
    """Skip (outside CI) or fail (in CI) unless running as root."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"{reason}: CI must run as root")
        pytest.skip(reason)
