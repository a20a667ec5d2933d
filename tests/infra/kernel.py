"""Debian's kernel from the archive, unpacked and cached, with the modules a disk boot needs.

``debian_kernel`` runs ``apt-get download linux-image-<release>-amd64`` (the version the
``linux-image-amd64`` metapackage points at), unpacks it with ``dpkg -x`` and runs
``depmod -b`` on the tree, all once per kernel version under ``~/.cache/mdfeed/``.
``module_closure`` lists the ``.ko`` files for some modules and their dependencies in load order.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.infra.debroot import ImageError, cache_dir, locked

METAPACKAGE = "linux-image-amd64"


@dataclass(frozen=True)
class Kernel:
    package: str
    release: str  # uname -r, e.g. 6.1.0-56-amd64
    tree: Path  # dpkg -x output: boot/, lib/modules/<release>/

    @property
    def vmlinuz(self) -> Path:
        return self.tree / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules(self) -> Path:
        return self.tree / "lib" / "modules" / self.release

    def config(self) -> dict[str, str]:
        """The kernel's build configuration (``CONFIG_X`` -> ``y``/``m``/value)."""
        out = {}
        for line in (self.tree / "boot" / f"config-{self.release}").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("CONFIG_"):
                out[key] = value
        return out


def _run(argv: list[str], cwd: Path | None = None, timeout_s: float = 300) -> str:
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as e:
        raise ImageError(f"{argv[0]} is not installed") from e
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-1000:]}")
    return proc.stdout


def kernel_package() -> str:
    """The versioned image package the metapackage depends on, from the host's apt lists."""
    out = _run(["apt-cache", "depends", METAPACKAGE])
    for line in out.splitlines():
        word = line.split(":")[-1].strip()
        if line.strip().startswith("Depends:") and word.startswith("linux-image-"):
            return word
    raise ImageError(
        f"apt knows no {METAPACKAGE}: run `apt-get update` (the kernel comes from Debian's archive)"
    )


def debian_kernel(cache: Path | None = None) -> Kernel:
    cache = cache or cache_dir()
    package = kernel_package()
    release = package.removeprefix("linux-image-")
    tree, done = cache / "kernel" / package, cache / "kernel" / f"{package}.ok"
    kernel = Kernel(package, release, tree)
    if done.exists() and kernel.vmlinuz.exists():
        return kernel
    with locked(cache / "kernel" / f"{package}.lock"):
        if done.exists() and kernel.vmlinuz.exists():
            return kernel
        shutil.rmtree(tree, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="mdfeed-kernel-") as tmp:
            # Downloading into a root-owned temp dir: tell apt not to drop to its _apt user.
            _run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", package],
                cwd=Path(tmp),
            )
            debs = list(Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise ImageError(f"apt-get download {package} left {len(debs)} .deb files")
            _run(["dpkg", "-x", str(debs[0]), str(tree)])
        _run(["depmod", "-b", str(tree), release])
        done.write_text(package + "\n")
    return kernel


def module_closure(kernel: Kernel, names: list[str]) -> list[Path]:
    """``.ko`` files of ``names`` and everything they depend on, each after its dependencies."""
    deps: dict[str, list[str]] = {}
    for line in (kernel.modules / "modules.dep").read_text().splitlines():
        path, _, needs = line.partition(":")
        deps[path] = needs.split()
    by_name = {Path(p).name.removesuffix(".ko").replace("-", "_"): p for p in deps}
    ordered: list[str] = []

    def visit(path: str) -> None:
        if path in ordered:
            return
        for dep in deps[path]:
            visit(dep)
        ordered.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key not in by_name:
            raise ImageError(f"kernel {kernel.release} has no module {name} (built in?)")
        visit(by_name[key])
    return [kernel.modules / p for p in ordered]
