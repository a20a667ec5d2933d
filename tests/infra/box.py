"""The offline Vagrant box recipe: debootstrap -> ext4 -> qcow2 -> a libvirt ``.box``.

For labs without access to Vagrant Cloud. The box boots its kernel directly (libvirt's
kernel/initrd/cmd_line, no bootloader), so the profile's boot parameters (``hosttune params``
for the lab's 2 CPUs) go on the command line the box ships; rebuild the box after changing the
profile's CPU or boot-time huge page settings. Run as root::

    sudo .venv/bin/python -m tests.infra.box --output mdfeed-bookworm.box
    vagrant box add --name mdfeed/bookworm mdfeed-bookworm.box
    MDFEED_BOX=mdfeed/bookworm vagrant up
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from hosttune import cpulist
from hosttune.profile import ProfileError, load_profile
from tests.infra import debroot, vmboot
from tests.infra.expected import Expected

# A bootable, SSH-reachable Debian that Vagrant can drive, plus what the playbook needs.
BOX_PACKAGES = (
    *debroot.PACKAGES,
    "systemd-sysv", "udev", "linux-image-amd64", "openssh-server", "sudo", "ifupdown",
    "isc-dhcp-client", "iproute2", "netbase",
)  # fmt: skip
LAB_CPUS = "0-1"  # the Vagrantfile's libvirt.cpus = 2
BASE_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
# Vagrant's well-known insecure key: the first `vagrant up` replaces it with a fresh one.
INSECURE_KEYS = (
    "/usr/share/rubygems-integration/all/gems/vagrant-{version}/keys/vagrant.pub",
    "/opt/vagrant/embedded/gems/gems/vagrant-{version}/keys/vagrant.pub",
)

_REGEN_KEYS_UNIT = """[Unit]
Description=Give this machine its own SSH host keys (the box ships none)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""


def insecure_key() -> str:
    version = subprocess.run(
        ["vagrant", "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()[-1]
    for pattern in INSECURE_KEYS:
        path = Path(pattern.format(version=version))
        if path.is_file():
            return path.read_text()
    raise debroot.ImageError(f"cannot find Vagrant {version}'s insecure public key")


def _chroot(root: Path, *argv: str) -> None:
    subprocess.run(["chroot", str(root), *argv], check=True, capture_output=True, timeout=120)


def customize(root: Path, public_key: str) -> None:
    """What Vagrant expects of a box: the vagrant user, its key, sudo, DHCP on eth0."""
    (root / "etc/hostname").write_text("mdfeed\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 defaults 0 1\n")
    (root / "etc/network/interfaces.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/network/interfaces.d/eth0").write_text("auto eth0\niface eth0 inet dhcp\n")
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", "-G", "sudo", "vagrant")
    sudoers = root / "etc/sudoers.d/vagrant"
    sudoers.write_text("vagrant ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    ssh = root / "home/vagrant/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(public_key)
    (ssh / "authorized_keys").chmod(0o600)
    _chroot(root, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh")
    # Every VM from this box must not share one set of host keys.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    unit = root / "etc/systemd/system/ssh-host-keys.service"
    unit.write_text(_REGEN_KEYS_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/vagrant.conf").write_text("UseDNS no\n")


def box_vagrantfile(cmdline: str) -> str:
    return f"""# The box's own Vagrantfile: boot the kernel shipped with the disk (no bootloader).
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(File.dirname(__FILE__), "vmlinuz")
    libvirt.initrd = File.join(File.dirname(__FILE__), "initrd.img")
    libvirt.cmd_line = {json.dumps(cmdline)}
  end
end
"""


def build_box(output: Path, scratch: Path, boot_params: list[str], disk_headroom_mb: int) -> Path:
    if shutil.which("qemu-img") is None:
        raise debroot.ImageError("qemu-img is not installed (apt-get install qemu-utils)")
    root = debroot.debian_root(BOX_PACKAGES)
    raw, qcow = scratch / "root.img", scratch / "box.img"
    with debroot.overlay(root, scratch / "overlay") as merged:
        customize(merged, insecure_key())
        for name, pattern in (("vmlinuz", "vmlinuz-*"), ("initrd.img", "initrd.img-*")):
            found = sorted((merged / "boot").glob(pattern))
            if not found:
                raise debroot.ImageError(f"the root has no /boot/{pattern}")
            shutil.copyfile(found[-1], scratch / name)
        vmboot.ext4_image(merged, raw, headroom_mb=disk_headroom_mb)
    subprocess.run(
        ["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow)], check=True, timeout=600
    )
    raw.unlink()
    virtual_gb = math.ceil(json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", str(qcow)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout)["virtual-size"] / 2**30)  # fmt: skip
    (scratch / "metadata.json").write_text(
        json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": virtual_gb})
    )
    (scratch / "Vagrantfile").write_text(box_vagrantfile(" ".join([BASE_CMDLINE, *boot_params])))
    with tarfile.open(output, "w:gz") as tar:
        for name in ("metadata.json", "Vagrantfile", "box.img", "vmlinuz", "initrd.img"):
            tar.add(scratch / name, arcname=name)
    return output


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.infra.box", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--output", default="mdfeed-bookworm.box", help="the .box file to write")
    p.add_argument("--profile", help="hosttune profile for the boot parameters (default: built-in)")
    p.add_argument("--no-boot-params", action="store_true", help="boot without the profile's")
    p.add_argument("--disk-headroom-mb", type=int, default=4096, help="free space in the box")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("building a box needs root (debootstrap, chroot, mounts)", file=sys.stderr)
        return 2
    try:
        params = (
            []
            if args.no_boot_params
            else Expected(load_profile(args.profile), cpulist.parse(LAB_CPUS)).boot_params
        )
        with tempfile.TemporaryDirectory(prefix="mdfeed-box-") as tmp:
            box = build_box(Path(args.output).resolve(), Path(tmp), params, args.disk_headroom_mb)
    except (debroot.ImageError, ProfileError, subprocess.CalledProcessError) as e:
        print(f"box: {e}", file=sys.stderr)
        return 1
    print(f"wrote {box}\nnext: vagrant box add --name mdfeed/bookworm {box}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
