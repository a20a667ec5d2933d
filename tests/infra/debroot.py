"""Debian roots built with debootstrap, cached between runs, and throwaway writable copies.

``debian_root`` builds ``debootstrap --variant=minbase --include=...`` once per package list
into ``~/.cache/mdfeed/`` (``MDFEED_CACHE`` overrides) and reuses it afterwards; the cached tree
is never written to. ``overlay`` gives a writable copy that costs nothing: an overlayfs mount whose
upper layer lives in a scratch directory and is gone after the ``with`` block.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
# What the playbook and the boot check need inside the image: Python for Ansible's modules,
# venv for the toolkit, python3-apt for the apt module offline, procps (sysctl) and systemd
# (units, sysctl.d and tmpfiles.d applied at boot, the init the boot check runs).
PACKAGES = ("python3", "python3-venv", "python3-apt", "procps", "systemd")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ImageError(RuntimeError):
    """Building or mounting an image failed; the message says which step and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("MDFEED_CACHE") or Path.home() / ".cache" / "mdfeed")


def mirror() -> str:
    return os.environ.get("MDFEED_DEBIAN_MIRROR", DEFAULT_MIRROR)


def root_key(suite: str, packages: Sequence[str], mirror_url: str) -> str:
    """Cache key: a different package list, suite or mirror is a different root."""
    text = "\n".join([suite, mirror_url, *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    # Two test runs sharing the cache must not debootstrap into the same directory at once.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def debian_root(
    packages: Sequence[str] = PACKAGES,
    suite: str = SUITE,
    cache: Path | None = None,
    timeout_s: float = 900,
) -> Path:
    """The cached root for this package list, built with debootstrap the first time."""
    cache = cache or cache_dir()
    url = mirror()
    name = f"debootstrap-{suite}-{root_key(suite, packages, url)}"
    root, done = cache / name, cache / f"{name}.ok"
    if done.exists() and root.is_dir():
        return root
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
    with locked(cache / f"{name}.lock"):
        if done.exists() and root.is_dir():
            return root
        partial = cache / f"{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            suite,
            str(partial),
            url,
        ]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise ImageError(f"debootstrap took longer than {timeout_s:.0f} s") from e
        if proc.returncode != 0:
            log = (
                (partial / "debootstrap/debootstrap.log").read_text(errors="replace")[-1500:]
                if (partial / "debootstrap/debootstrap.log").exists()
                else ""
            )
            shutil.rmtree(partial, ignore_errors=True)
            raise ImageError(
                f"debootstrap failed ({proc.returncode}): {proc.stderr[-1500:]}\n{log}"
            )
        partial.rename(root)
        done.write_text("\n".join(packages) + "\n")
    return root


def _umount(path: Path) -> None:
    proc = subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if proc.returncode != 0:
        # Something still has a file open in it: detach now, the kernel frees it when closed.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def overlay(lower: Path, scratch: Path) -> Iterator[Path]:
    """A writable view of ``lower`` at ``scratch/merged``; writes land in ``scratch/upper``."""
    upper, work, merged = scratch / "upper", scratch / "work", scratch / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ImageError(f"cannot mount an overlay of {lower}: {proc.stderr.strip()}")
    try:
        yield merged
    finally:
        _umount(merged)
        # overlayfs leaves a root-only "work" dir that rmtree can remove once unmounted.
        shutil.rmtree(work, ignore_errors=True)
