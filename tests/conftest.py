"""Suite-wide policy.

Privileged tests (root, netns, sysctl writes, XDP, huge pages) must *run* in CI, which is root.
Outside CI they may skip, with the reason shown; inside CI (``CI=true``) any skip is turned
into a failure so a missing privilege or package cannot hide behind a green run.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator

import pytest

from tests.privilege import IN_CI, require_root


@pytest.fixture
def root_required() -> None:
    require_root()


@pytest.fixture
def unique_prefix() -> str:
    """A short unique prefix for namespaces and links this test creates (IFNAMSIZ is 16)."""
    return "mdt" + uuid.uuid4().hex[:5]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true treats a skip as a failure): {reason}"
