"""``python -m feeder.net.nsexec NAME -- PROGRAM [ARG...]``: exec PROGRAM inside namespace NAME.

Like ``ip netns exec`` for the network namespace only (no private /sys remount): this process
moves itself into ``/var/run/netns/NAME`` and then replaces itself with PROGRAM, so PROGRAM's
pid, signals and exit status are the caller's to handle directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from feeder.net.netns import move_current_thread

USAGE = "usage: python -m feeder.net.nsexec NAME -- PROGRAM [ARG...]"


def parse(argv: Sequence[str]) -> tuple[str, list[str]]:
    """Split ``NAME -- PROGRAM ARG...`` into the namespace name and the program's argv."""
    if len(argv) < 3 or argv[1] != "--" or not argv[0]:
        raise ValueError(USAGE)
    return argv[0], list(argv[2:])


def main(argv: Sequence[str] | None = None) -> int:
    """Move into the namespace and exec the program; returns only on failure (exit status)."""
    try:
        name, program = parse(sys.argv[1:] if argv is None else argv)
        move_current_thread(name)
    except ValueError as exc:
        print(f"nsexec: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"nsexec: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        # 127/126 like a shell: not found / found but not runnable.
        print(f"nsexec: cannot run {program[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126


if __name__ == "__main__":
    sys.exit(main())
