"""``ansible-playbook --check --diff`` against this host: it reports, and changes nothing.

The only test that points the playbook at the CI host itself. The host's /etc, the toolkit's
directories and the kernel values the roles manage are fingerprinted before and after.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from hosttune.knobs.sysctl import sysctl_path
from hosttune.profile import load_profile
from tests.infra.playbook import run_playbook

TREES = ("/etc", "/opt/mdfeed", "/var/lib/hosttune", "/var/lib/feeder", "/run/hosttune")
KERNEL_FILES = (
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/kernel/mm/transparent_hugepage/defrag",
    "/proc/sys/vm/nr_hugepages",
    "/proc/sys/vm/swappiness",
    "/proc/sys/kernel/numa_balancing",
    "/proc/irq/default_smp_affinity",
)


def _fingerprint(path: Path) -> str:
    st = path.lstat()
    head = f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
    if stat.S_ISLNK(st.st_mode):
        return f"{head} -> {os.readlink(path)}"
    if stat.S_ISREG(st.st_mode):
        try:
            return f"{head} {hashlib.sha256(path.read_bytes()).hexdigest()}"
        except OSError as e:
            return f"{head} unreadable {e.errno}"
    return head


def snapshot() -> dict[str, str]:
    """Every file under TREES and the kernel values the roles would change."""
    out: dict[str, str] = {}
    for top in TREES:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                out[str(p)] = _fingerprint(p)
    kernel = [*KERNEL_FILES, *(sysctl_path(r.key) for r in load_profile().sysctl)]
    kernel += [str(p) for p in Path("/proc/irq").glob("*/smp_affinity_list")]
    for name in kernel:
        try:
            out[name] = Path(name).read_text().strip()
        except OSError:
            out[name] = "absent"
    return out


@pytest.mark.usefixtures("privileged")
def test_check_mode_changes_nothing_on_this_host(wheelhouse: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "feeders:\n"
        "  hosts:\n"
        "    localhost:\n"
        "      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
        f"      mdfeed_wheelhouse: {wheelhouse}\n"
    )
    home_ansible = Path.home() / ".ansible"
    had_home_ansible = home_ansible.exists()
    before = snapshot()
    run = run_playbook(inventory, tmp_path, extra_args=["--check", "--diff"])
    after = snapshot()
    assert run.returncode == 0, run.tail()
    assert run.recap["localhost"].failed == 0
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
               if before.get(k) != after.get(k)}  # fmt: skip
    assert not changed, f"check mode changed the host: {changed}"
    assert home_ansible.exists() == had_home_ansible
    # It did inspect the host: it says what it would write where the host differs.
    if not Path("/etc/sysctl.d/90-hosttune.conf").exists():
        assert run.recap["localhost"].changed > 0
        assert "+net.core.rmem_max = 134217728" in run.output
