"""How hard the fuzz tests search: bounded for CI, scaled up by ``FUZZ_SCALE`` for a deep run.

``FUZZ_SCALE=20 pytest tests/fuzz`` runs twenty times as many examples per test. Longer,
coverage-guided runs are ``python -m bench.fuzz_targets`` (atheris).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]


def examples(n: int) -> settings:
    """``n`` examples per test (times ``FUZZ_SCALE``), no deadline: parsers of big frames
    legitimately take milliseconds."""
    return settings(max_examples=n * SCALE, deadline=None, suppress_health_check=_QUIET)
