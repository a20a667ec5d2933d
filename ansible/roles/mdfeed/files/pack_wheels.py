# Apache-2.0, part of mdfeed-toolkit.
"""Pack a directory of wheels into one tar, byte-identical for identical wheels.

Runs on the Ansible controller (python3 only): one transfer to the host instead of one per
wheel, and a tar whose checksum changes only when a wheel does, so the copy stays idempotent.
Usage: pack_wheels.py WHEELHOUSE_DIR OUTPUT_TAR; prints "changed" when it rewrote the tar.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path


def pack(wheelhouse: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for wheel in sorted(wheelhouse.glob("*.whl")):
            info = tarfile.TarInfo(wheel.name)
            data = wheel.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data, out = pack(Path(argv[1])), Path(argv[2])
    if out.is_file() and out.read_bytes() == data:
        return 0
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
