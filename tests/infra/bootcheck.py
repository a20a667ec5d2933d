"""The boot check: what a playbook-tuned image looks like once it has booted.

``prepare`` adds a oneshot unit to a (throwaway) tuned root. systemd boots the image as on a
real host (sysctl.d and tmpfiles.d applied, feeder.service started), then the unit prints the
running kernel's view and ``hosttune check --json`` between markers on the serial console and
powers the VM off. ``kernel_cmdline`` takes the boot parameters from the grub drop-in the
playbook wrote, evaluated the way grub-mkconfig does: by sourcing it in a shell.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRUB_DROPIN = "etc/default/grub.d/90-hosttune.cfg"
UNIT = "mdfeed-bootcheck.service"
_MARK = "@@mdfeed"

# The parameters the harness adds: serial console, quiet (so kernel and systemd messages don't
# interleave with the report), exit QEMU on a panic, no first-boot questions, and our unit.
HARNESS_PARAMS = (
    "console=ttyS0",
    "panic=-1",
    "quiet",
    "loglevel=1",
    "systemd.show_status=0",
    "systemd.firstboot=off",
    f"systemd.wants={UNIT}",
)

_SCRIPT = f"""#!/bin/sh
# Boot-check report (added to a throwaway copy of the image by tests/infra/bootcheck.py).
say() {{ echo "{_MARK} $*"; }}
say begin
say cmdline $(cat /proc/cmdline)
say isolated $(cat /sys/devices/system/cpu/isolated)
say nohz_full $(cat /sys/devices/system/cpu/nohz_full 2>/dev/null)
say thp_enabled $(cat /sys/kernel/mm/transparent_hugepage/enabled)
say thp_defrag $(cat /sys/kernel/mm/transparent_hugepage/defrag)
pid=0
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
    pid=$(systemctl show --property MainPID --value feeder.service)
    [ "${{pid:-0}}" -gt 0 ] && break
    sleep 1
done
say feeder_pid "$pid"
if [ "${{pid:-0}}" -gt 0 ]; then
    grep -E '^(Uid|CapPrm|CapEff|CapAmb|CapBnd|Cpus_allowed_list):' /proc/$pid/status |
        while read -r key value rest; do say "feeder_${{key%:}}" "$value"; done
    say feeder_memlock $(grep 'Max locked memory' /proc/$pid/limits | awk '{{print $4, $5}}')
fi
say hosttune_apply $(systemctl is-active hosttune-apply.service)
say default_smp_affinity $(cat /proc/irq/default_smp_affinity)
irqs=""
for d in /proc/irq/[0-9]*; do irqs="$irqs ${{d##*/}}=$(cat "$d/smp_affinity_list")"; done
say irq_affinity $irqs
say irq_refused $(journalctl --no-pager -o cat -u hosttune-apply.service |
    sed -n 's|.*FAILED write /proc/irq/\\([0-9]*\\)/smp_affinity_list.*|\\1|p')
say hosttune-json-begin
/opt/mdfeed/venv/bin/hosttune check --json --profile /etc/hosttune/feeder.toml
say hosttune-rc $?
say end
"""

_UNIT = """[Unit]
Description=mdfeed boot check report (test harness)
After=feeder.service systemd-sysctl.service systemd-tmpfiles-setup.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mdfeed-bootcheck
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
"""


def prepare(root: Path) -> None:
    """Install the report script and its unit into ``root`` (a throwaway copy)."""
    script = root / "usr/local/sbin/mdfeed-bootcheck"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(_SCRIPT)
    script.chmod(0o755)
    (root / "etc/systemd/system" / UNIT).write_text(_UNIT)


def boot_params(root: Path) -> list[str]:
    """The parameters the grub drop-in in ``root`` adds, as grub-mkconfig would read them."""
    dropin = root / GRUB_DROPIN
    proc = subprocess.run(
        ["sh", "-c", '. "$1" && printf %s "$GRUB_CMDLINE_LINUX_DEFAULT"', "sh", str(dropin)],
        env={"PATH": "/usr/bin:/bin", "GRUB_CMDLINE_LINUX_DEFAULT": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return proc.stdout.split()


def kernel_cmdline(root: Path) -> str:
    return " ".join([*HARNESS_PARAMS, *boot_params(root)])


@dataclass
class Report:
    """What the guest printed: ``@@mdfeed key value`` lines and hosttune's JSON document."""

    fields: dict[str, str] = field(default_factory=dict)
    hosttune: dict[str, Any] | None = None
    complete: bool = False

    def check(self, check_id: str) -> dict[str, Any]:
        assert self.hosttune is not None, "hosttune check printed no JSON"
        rows = [r for r in self.hosttune["checks"] if r["id"] == check_id]
        assert rows, f"hosttune check has no row {check_id}"
        row: dict[str, Any] = rows[0]
        return row


def parse_report(console: str) -> Report:
    report = Report()
    json_lines: list[str] | None = None
    for raw in console.splitlines():
        line = raw.rstrip("\r")
        if line.startswith(_MARK + " "):
            key, _, value = line[len(_MARK) + 1 :].partition(" ")
            if key == "hosttune-json-begin":
                json_lines = []
                continue
            if key == "hosttune-rc" and json_lines is not None:
                report.hosttune = json.loads("\n".join(json_lines))
                json_lines = None
            report.fields[key] = value.strip()
            report.complete |= key == "end"
        elif json_lines is not None:
            json_lines.append(line)
    return report
