# Apache-2.0, part of mdfeed-toolkit.
"""Ansible connection plugin ``chroot``: run tasks inside a directory tree with chroot(8).

Provisions image roots (a debootstrap tree, a mounted disk image) with the same playbook as live
hosts. ansible-core ships no chroot connection and Galaxy collections are not installable
offline, hence this small one. Files go in and out through ``cat`` run *inside* the chroot, so a
symlink in the image resolves against the image, never against the build host.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from ansible.errors import (  # type: ignore[import-untyped]
    AnsibleConnectionFailure,
    AnsibleError,
    AnsibleFileNotFound,
)
from ansible.plugins.connection import ConnectionBase  # type: ignore[import-untyped]

DOCUMENTATION = """
    name: chroot
    short_description: run tasks inside a directory tree with chroot(8)
    description:
        - Runs every command as C(chroot ROOT /bin/sh -c CMD) on the controller, which must be
          root. ROOT is the inventory host's address.
        - The build host's kernel is shared, so anything that writes /proc or /sys inside the
          tree (sysctl -p, writes to sysfs) changes the build host when those are mounted there.
    author: mdfeed-toolkit
    options:
        remote_addr:
            description: Absolute path of the root directory.
            default: inventory_hostname
            type: str
            vars:
                - name: inventory_hostname
                - name: ansible_host
        chroot_exe:
            description: The chroot binary on the controller.
            default: chroot
            type: str
            vars:
                - name: ansible_chroot_exe
    extends_documentation_fragment:
        - connection_pipelining
"""

# The environment a command inside the image gets: nothing of the controller's leaks in (its
# PATH may name a virtualenv that does not exist in the image).
_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class Connection(ConnectionBase):  # type: ignore[misc]
    """Commands and file transfers into a chroot on the controller."""

    transport = "chroot"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._connected: bool = False
        self._root = ""
        self._chroot = ""

    def _connect(self) -> Connection:
        if self._connected:
            return self
        root = self.get_option("remote_addr")
        if not os.path.isabs(root) or not os.path.isdir(root):
            raise AnsibleConnectionFailure(f"chroot {root!r}: not an absolute path to a directory")
        if not os.path.isfile(os.path.join(root, "bin/sh")) and not os.path.islink(
            os.path.join(root, "bin/sh")
        ):
            raise AnsibleConnectionFailure(f"chroot {root}: no /bin/sh in it (not a system root?)")
        if os.geteuid() != 0:
            raise AnsibleConnectionFailure("the chroot connection needs the controller run as root")
        chroot = shutil.which(self.get_option("chroot_exe"))
        if chroot is None:
            raise AnsibleConnectionFailure("chroot(8) not found on the controller")
        self._root, self._chroot = root, chroot
        self._connected = True
        return self

    def _run(self, argv: list[str], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        proc = subprocess.run(
            [self._chroot, self._root, *argv],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env=_ENV,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = False
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._display.vvv(f"EXEC (chroot {self._root}) {cmd}", host=self._root)
        return self._run(["/bin/sh", "-c", cmd], in_data)

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        self._display.vvv(f"PUT {in_path} TO {out_path}", host=self._root)
        try:
            with open(in_path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise AnsibleFileNotFound(f"cannot read {in_path}: {e.strerror}") from e
        rc, _, err = self._run(["/bin/sh", "-c", f"cat > {shlex.quote(out_path)}"], data)
        if rc != 0:
            raise AnsibleError(f"cannot write {out_path} in {self._root}: {err.decode().strip()}")

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        self._display.vvv(f"FETCH {in_path} TO {out_path}", host=self._root)
        rc, out, err = self._run(["cat", in_path], None)
        if rc != 0:
            raise AnsibleError(f"cannot read {in_path} in {self._root}: {err.decode().strip()}")
        with open(out_path, "wb") as f:
            f.write(out)

    def close(self) -> None:
        self._connected = False
