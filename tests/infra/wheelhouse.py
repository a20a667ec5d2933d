"""Build the wheelhouse the Ansible ``mdfeed`` role installs from: this project and its deps.

The build runs on a copy of the sources, so nothing (``build/``, ``*.egg-info``) lands in the
checkout. Usage: ``python -m tests.infra.wheelhouse DEST_DIR`` (default
``~/.cache/mdfeed/wheelhouse``, the role's default ``mdfeed_wheelhouse``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# What a wheel build of this project reads (pyproject's readme and packages).
SOURCES = ("pyproject.toml", "README.md", "hosttune", "feeder", "xdp")


class WheelhouseError(RuntimeError):
    """pip could not build the wheels; the message carries pip's own explanation."""


def build_wheelhouse(dest: Path, project: Path = PROJECT, timeout_s: float = 600) -> list[Path]:
    """Build the project's wheel and its dependencies' wheels into ``dest``; return them."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mdfeed-src-") as tmp:
        src = Path(tmp)
        for name in SOURCES:
            origin = project / name
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
                shutil.copytree(origin, src / name, ignore=ignore)
            else:
                shutil.copy2(origin, src / name)
        # Stale wheels of the toolkit would make pip pick one of them; dependencies may stay.
        for old in dest.glob("mdfeed_toolkit-*.whl"):
            old.unlink()
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), str(src)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if proc.returncode != 0:
        raise WheelhouseError(f"pip wheel failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return sorted(dest.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.infra.wheelhouse", description=__doc__)
    p.add_argument("dest", nargs="?", default=str(Path.home() / ".cache/mdfeed/wheelhouse"))
    args = p.parse_args(argv)
    try:
        wheels = build_wheelhouse(Path(args.dest))
    except WheelhouseError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{len(wheels)} wheels in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
