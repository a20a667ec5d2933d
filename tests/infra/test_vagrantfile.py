"""``vagrant validate`` on the lab's Vagrantfile (offline; needs vagrant and vagrant-libvirt).

Vagrant's state goes to a temp VAGRANT_HOME and VAGRANT_DOTFILE_PATH, so nothing lands in the
checkout or in ~/.vagrant.d.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.privilege import IN_CI

PROJECT = Path(__file__).resolve().parents[2]


def _validate(directory: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("vagrant") is None:
        why = "vagrant is not installed (apt-get install --no-install-recommends vagrant " \
              "vagrant-libvirt)"  # fmt: skip
        pytest.fail(why) if IN_CI else pytest.skip(why)
    env = {
        **os.environ,
        "VAGRANT_HOME": str(scratch / "vagrant-home"),
        "VAGRANT_DOTFILE_PATH": str(scratch / "dotfile"),
        "VAGRANT_CWD": str(directory),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
    }
    return subprocess.run(
        ["vagrant", "validate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_vagrantfile_validates(tmp_path: Path) -> None:
    proc = _validate(PROJECT, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout
    assert not (PROJECT / ".vagrant").exists()


def test_validate_catches_a_bad_provider_setting(tmp_path: Path) -> None:
    """The check is real: a misspelt libvirt setting fails it."""
    copy = tmp_path / "lab"
    copy.mkdir()
    text = (PROJECT / "Vagrantfile").read_text()
    assert "libvirt.cpus = 2" in text
    (copy / "Vagrantfile").write_text(text.replace("libvirt.cpus = 2", "libvirt.cpuz = 2"))
    proc = _validate(copy, tmp_path)
    assert proc.returncode != 0
    assert "cpuz" in proc.stdout + proc.stderr
