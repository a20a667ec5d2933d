"""Boot check: the tuned image booted in QEMU (TCG) with Debian's kernel from the archive.

The CI stand-in for the Vagrant VMs. The kernel command line is what the playbook wrote in the
grub drop-in; systemd boots the image as on a real host and a report unit prints what the
running system looks like, including ``hosttune check --json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hosttune import cpulist
from hosttune.profile import load_profile
from tests.infra import bootcheck, debroot, initramfs, kernel, vmboot
from tests.infra.expected import PUBLISHER_CAPS, Expected, mask_has_only
from tests.infra.tuned import IMAGE_CPUS, TunedImage

BUSYBOX = Path("/bin/busybox")
MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]
BOOT_TIMEOUT_S = 240
# The rows of `hosttune check` the playbook's files and boot parameters must make pass.
MUST_PASS = (
    "cmdline.isolcpus",
    "cmdline.nohz_full",
    "cmdline.rcu_nocbs",
    "cmdline.isolated_running",
    "cmdline.nohz_full_running",
    "hugepages.2M",
    "thp.enabled",
    "thp.defrag",
    "memlock.limits",
    "memlock.systemd",
    "swap.swappiness",
    "numa.balancing",
)


@pytest.fixture(scope="module")
def booted(
    tuned_image: TunedImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[bootcheck.Report, vmboot.BootResult, str]]:
    if not BUSYBOX.exists():
        pytest.fail("busybox-static is not installed (apt-get install busybox-static)")
    scratch = tmp_path_factory.mktemp("boot")
    k = kernel.debian_kernel()
    assert k.config().get("CONFIG_NO_HZ_FULL") == "y", "Debian's kernel has nohz_full support"
    initrd = scratch / "initrd"
    initrd.write_bytes(
        initramfs.build(BUSYBOX, kernel.module_closure(k, MODULES), "/lib/systemd/systemd")
    )
    # The report unit goes into a layer over the tuned image, which stays as the playbook left it.
    with debroot.overlay(tuned_image.root, scratch / "overlay") as root:
        bootcheck.prepare(root)
        cmdline = bootcheck.kernel_cmdline(root)
        vmboot.ext4_image(root, scratch / "disk.img")
    result = vmboot.boot(
        k.vmlinuz, initrd, scratch / "disk.img", cmdline, cpus=2, timeout_s=BOOT_TIMEOUT_S
    )
    (scratch / "disk.img").unlink()
    yield bootcheck.parse_report(result.console), result, cmdline


@pytest.fixture(scope="module")
def expected() -> Expected:
    return Expected(load_profile(), cpulist.parse(IMAGE_CPUS))


def test_vm_boots_and_reports(booted: tuple[bootcheck.Report, vmboot.BootResult, str]) -> None:
    report, result, _ = booted
    tail = result.console[-3000:]
    assert result.returncode is not None, f"no power-off within {BOOT_TIMEOUT_S} s:\n{tail}"
    assert report.complete and report.hosttune is not None, tail


def test_kernel_booted_with_the_playbook_parameters(
    booted: tuple[bootcheck.Report, vmboot.BootResult, str], expected: Expected
) -> None:
    report, _, cmdline = booted
    booted_with = report.fields["cmdline"].split()
    assert booted_with == cmdline.split()
    # What the playbook wrote is what hosttune wants for this profile and these CPUs.
    assert [p for p in booted_with if p not in bootcheck.HARNESS_PARAMS] == expected.boot_params


def test_cpus_isolated_and_tickless(
    booted: tuple[bootcheck.Report, vmboot.BootResult, str], expected: Expected
) -> None:
    report = booted[0]
    assert cpulist.parse(report.fields["isolated"]) == expected.isolated == frozenset({1})
    assert cpulist.parse(report.fields["nohz_full"]) == expected.isolated


@pytest.mark.parametrize("check_id", MUST_PASS)
def test_hosttune_check_passes_in_the_vm(
    booted: tuple[bootcheck.Report, vmboot.BootResult, str], check_id: str
) -> None:
    row = booted[0].check(check_id)
    assert row["status"] == "pass", row


def test_sysctls_applied_at_boot(booted: tuple[bootcheck.Report, vmboot.BootResult, str]) -> None:
    report = booted[0]
    assert report.hosttune is not None
    rows = [r for r in report.hosttune["checks"] if r["id"].startswith("sysctl.")]
    assert len(rows) == len(load_profile().sysctl)
    assert all(r["status"] == "pass" for r in rows), rows


def test_feeder_service_runs_confined(
    booted: tuple[bootcheck.Report, vmboot.BootResult, str], expected: Expected
) -> None:
    f = booted[0].fields
    assert int(f.get("feeder_pid", "0")) > 0, "feeder.service is not running"
    assert f["feeder_Uid"].split()[0] != "0", "runs as root"
    for mask in ("CapAmb", "CapBnd", "CapEff"):
        assert mask_has_only(f[f"feeder_{mask}"], PUBLISHER_CAPS), (mask, f[f"feeder_{mask}"])
    assert cpulist.parse(f["feeder_Cpus_allowed_list"]) == expected.isolated
    assert f["feeder_memlock"] == "unlimited unlimited"


def test_interrupts_moved_off_isolated_cpus_at_boot(
    booted: tuple[bootcheck.Report, vmboot.BootResult, str], expected: Expected
) -> None:
    """hosttune-apply.service moved every IRQ the kernel lets move; only refused ones remain."""
    f = booted[0].fields
    assert f["hosttune_apply"] == "active"
    assert not cpulist.parse_mask(f["default_smp_affinity"]) & expected.isolated
    on_isolated = set()
    for pair in f["irq_affinity"].split():
        irq, _, cpus = pair.partition("=")
        if cpulist.parse(cpus) & expected.isolated:
            on_isolated.add(irq)
    assert on_isolated == set(f.get("irq_refused", "").split())
