"""The tuned image the CI tests share: a debootstrap root provisioned by the playbook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.infra.playbook import PlaybookRun

IMAGE_CPUS = "0-1"  # the boot check's QEMU -smp 2


@dataclass(frozen=True)
class TunedImage:
    """A debootstrap root the playbook was applied to twice, through the chroot connection."""

    root: Path
    inventory: Path
    first: PlaybookRun
    second: PlaybookRun | None  # None when the first run failed


def image_inventory(path: Path, root: Path, wheelhouse: Path) -> Path:
    """An inventory putting ``root`` in the images group (group_vars/images.yml) and feeders."""
    path.write_text(
        "all:\n"
        "  children:\n"
        "    images:\n"
        "      hosts:\n"
        "        image:\n"
        f"          ansible_host: {root}\n"
        f'          hosttune_cpu_online: "{IMAGE_CPUS}"\n'
        f"          mdfeed_wheelhouse: {wheelhouse}\n"
        "    feeders:\n"
        "      hosts:\n"
        "        image:\n"
    )
    return path
