"""The one layer through which hosttune touches the host.

Every path is written as it is on a real machine (``/proc/sys/vm/nr_hugepages``) and resolved
under a root prefix, so the same knob code runs against this host (root ``/``) or against a fake
``/proc`` + ``/sys`` + ``/etc`` tree in unit tests. Things that are not files (NIC ioctls, running
commands, the caller's privileges) are injected objects for the same reason.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hosttune.nicprobe import IoctlNicProbe, NicProbe


class HostError(Exception):
    """A host read or write failed; the message names the path and the reason."""


@dataclass
class Host:
    """File access under ``root`` plus the non-file facts a knob needs."""

    root: Path = Path("/")
    nic: NicProbe = field(default_factory=IoctlNicProbe)
    euid: int = field(default_factory=os.geteuid)
    # Commands (update-grub, sysctl) only ever run against the real root: running them for a
    # fake tree or an image would change the build host instead.
    allow_commands: bool = True

    @property
    def is_live(self) -> bool:
        """True when this Host is the running system (so runtime state is meaningful)."""
        return self.root == Path("/")

    def path(self, p: str) -> Path:
        if not p.startswith("/"):
            raise ValueError(f"host paths are absolute, got {p!r}")
        return self.root / p.lstrip("/")

    def exists(self, p: str) -> bool:
        return self.path(p).exists()

    def read(self, p: str) -> str:
        """Read a text file; raise HostError saying why when it can't."""
        try:
            return self.path(p).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError as e:
            raise HostError(f"{p} does not exist") from e
        except PermissionError as e:
            raise HostError(f"{p} is not readable (permission denied)") from e
        except OSError as e:
            raise HostError(f"{p}: {e.strerror or e}") from e

    def read_bytes(self, p: str) -> bytes:
        try:
            return self.path(p).read_bytes()
        except FileNotFoundError as e:
            raise HostError(f"{p} does not exist") from e
        except OSError as e:
            raise HostError(f"{p}: {e.strerror or e}") from e

    def read_opt(self, p: str) -> str | None:
        """Read a file that may legitimately be absent; None when absent or unreadable."""
        try:
            return self.read(p)
        except HostError:
            return None

    def write(self, p: str, content: str) -> None:
        """Write a value or file; sysfs/procfs writes are a single write() as the kernel wants."""
        target = self.path(p)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                f.write(content)
        except OSError as e:
            raise HostError(f"cannot write {p}: {e.strerror or e}") from e

    def remove(self, p: str) -> None:
        try:
            self.path(p).unlink(missing_ok=True)
        except OSError as e:
            raise HostError(f"cannot remove {p}: {e.strerror or e}") from e

    def remove_empty_dir(self, p: str) -> None:
        """Remove a directory if empty; leave it when something else lives there."""
        with contextlib.suppress(OSError):
            self.path(p).rmdir()

    def listdir(self, p: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(p)))
        except OSError:
            return []

    def glob(self, pattern: str) -> list[str]:
        """Glob a host path pattern; results are host paths (without the root prefix)."""
        base = str(self.root).rstrip("/")
        hits = _glob.glob(str(self.path(pattern)))
        return sorted("/" + h[len(base) :].lstrip("/") for h in hits)

    def which(self, name: str) -> str | None:
        """Find an executable in the usual system directories of this root."""
        for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
            if os.access(self.path(f"{d}/{name}"), os.X_OK):
                return f"{d}/{name}"
        return None

    def run(self, argv: list[str]) -> tuple[int, str]:
        """Run a command on the live host; returns (exit code, combined output)."""
        if not (self.is_live and self.allow_commands):
            raise HostError(f"not running {argv[0]}: commands only run on the live root /")
        if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            raise HostError(f"{argv[0]} is not installed")
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        return proc.returncode, (proc.stdout + proc.stderr).strip()
