"""Options of the testinfra suite (tuned_host.py) and the shared, expensive CI fixtures.

The suite runs against any testinfra target::

    pytest tests/infra/tuned_host.py --hosts=local://
    pytest tests/infra/tuned_host.py --connection=chroot --hosts=/srv/root --mdfeed-online-cpus=0-3
    pytest tests/infra/tuned_host.py --hosts=ssh://vagrant@192.168.56.10
    pytest tests/infra/tuned_host.py --hosts='ansible://all' --ansible-inventory=INVENTORY

The CI drivers (test_*.py here) build a Debian root once per session and share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import debroot
from tests.infra.playbook import run_playbook
from tests.infra.tuned import TunedImage, image_inventory
from tests.infra.wheelhouse import build_wheelhouse
from tests.privilege import require_root


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mdfeed", "mdfeed provisioning assertions (tests/infra/tuned_host.py)")
    group.addoption(
        "--mdfeed-profile",
        default="host",
        help='expected profile: "host" (the one the role installed on the target, default), '
        '"builtin:NAME" or a TOML path',
    )
    group.addoption(
        "--mdfeed-online-cpus",
        default="",
        help="CPUs the target runs or will boot with (cpulist); default: read from the target "
        "(required for chroot targets)",
    )


# --- CI fixtures: one Debian root, one wheelhouse, one tuned image per session ------------------


@pytest.fixture(scope="session")
def privileged() -> None:
    """List it first: later fixtures (a wheelhouse build) are wasted when it skips."""
    require_root("provisioning tests read and mount as root")


@pytest.fixture(scope="session")
def debian_root() -> Path:
    require_root("debootstrap, chroot and overlay mounts need root")
    return debroot.debian_root()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheelhouse")
    build_wheelhouse(dest)
    return dest


@pytest.fixture(scope="session")
def tuned_image(
    debian_root: Path, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TunedImage]:
    scratch = tmp_path_factory.mktemp("tuned-image")
    with debroot.overlay(debian_root, scratch / "overlay") as root:
        inventory = image_inventory(scratch / "inventory.yml", root, wheelhouse)
        first = run_playbook(inventory, scratch)
        second = run_playbook(inventory, scratch) if first.returncode == 0 else None
        yield TunedImage(root, inventory, first, second)
