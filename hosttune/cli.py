"""``hosttune check | apply | revert | params``: compose knobs, render results, set exit codes.

Exit codes: 0 all checks pass (warn/skip included) or the action succeeded; 1 a check failed or
a change could not be made; 2 usage error, bad profile, missing privilege or internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hosttune.engine import apply, plan, revert, run_checks
from hosttune.host import Host, HostError
from hosttune.journal import DEFAULT_PATH, Journal
from hosttune.knobs import all_knobs
from hosttune.knobs.cmdline import boot_params
from hosttune.nicprobe import IoctlNicProbe, OfflineNicProbe
from hosttune.profile import Profile, ProfileError, load_profile
from hosttune.render import check_document, summary_line, table, to_json
from hosttune.result import Status

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command line asks for something impossible; the message says what to do instead."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hosttune", description="Check, apply and revert a low-latency host profile."
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--profile", metavar="FILE", help="profile TOML (default: built-in 'feeder')"
        )
        sp.add_argument("--builtin", metavar="NAME", default="feeder", help="built-in profile name")
        sp.add_argument(
            "--root", metavar="DIR", default="/", help="host root (an image or chroot); default /"
        )
        sp.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    c = sub.add_parser("check", help="report each setting: observed, expected, fix")
    common(c)
    c.add_argument("--only", nargs="+", metavar="ID", default=[], help="check ids or id prefixes")

    a = sub.add_parser("apply", help="make the host match the profile (journaled)")
    common(a)
    a.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    a.add_argument("--runtime-only", action="store_true", help="only the running kernel, no files")
    a.add_argument(
        "--persistent-only",
        action="store_true",
        help="only files (sysctl.d, limits.d, grub.d): for images and chroots",
    )
    a.add_argument("--only", nargs="+", metavar="ID", default=[], help="knob ids to apply")
    a.add_argument(
        "--journal", default=DEFAULT_PATH, help=f"journal path under the root ({DEFAULT_PATH})"
    )

    r = sub.add_parser("revert", help="undo every journaled change")
    r.add_argument("--root", metavar="DIR", default="/")
    r.add_argument("--journal", default=DEFAULT_PATH)
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--json", action="store_true")

    b = sub.add_parser("params", help="print the kernel boot parameters the profile wants")
    common(b)
    return p


def _host(root: str) -> Host:
    path = Path(root)
    if not path.is_dir():
        raise UsageError(f"--root {root}: no such directory")
    live = path.resolve() == Path("/")
    # An image's NICs are not this machine's: never probe (or change) them through --root.
    return Host(root=path, allow_commands=live, nic=IoctlNicProbe() if live else OfflineNicProbe())


def _profile(args: argparse.Namespace) -> Profile:
    return load_profile(args.profile, args.builtin)


def cmd_check(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    host, profile = _host(args.root), _profile(args)
    rows = run_checks(host, profile, all_knobs(), args.only)
    if args.only and not rows:
        raise UsageError(
            f"--only {' '.join(args.only)}: no check has that id (see `hosttune check`)"
        )
    if args.json:
        print(to_json(check_document(rows, profile, time.perf_counter() - start)))
    else:
        print(f"profile {profile.name} ({profile.source})")
        print(table(rows, colour=sys.stdout.isatty()))
        print(summary_line(rows))
    return EXIT_FAIL if any(r.status is Status.FAIL for r in rows) else EXIT_OK


def _privilege_error(host: Host, steps: Sequence[tuple[object, object]]) -> str | None:
    if host.euid == 0 or not steps:
        return None
    needs = sorted({f"  {k.id}: {k.privilege}" for k, _ in steps})  # type: ignore[attr-defined]
    return "hosttune apply must run as root; these settings need privileges:\n" + "\n".join(needs)


def cmd_apply(args: argparse.Namespace) -> int:
    host, profile = _host(args.root), _profile(args)
    if args.runtime_only and args.persistent_only:
        raise UsageError("--runtime-only and --persistent-only exclude each other")
    steps = plan(
        host,
        profile,
        all_knobs(),
        runtime=not args.persistent_only,
        persistent=not args.runtime_only,
        only=args.only,
    )
    if args.dry_run or not steps:
        if args.json:
            print(
                json.dumps(
                    {
                        "dry_run": args.dry_run,
                        "changes": [
                            {"knob": k.id, **c.to_json(), "describe": c.describe()}
                            for k, c in steps
                        ],
                    },
                    indent=2,
                )
            )
        else:
            print("nothing to change" if not steps else "would change:")
            for k, c in steps:
                print(f"  [{k.id}] {c.describe()}{'  (reboot)' if c.needs_reboot() else ''}")
        return EXIT_OK
    if (msg := _privilege_error(host, steps)) is not None:
        print(msg, file=sys.stderr)
        return EXIT_USAGE
    report = apply(host, Journal(host, args.journal), steps)
    if args.json:
        print(
            json.dumps(
                {
                    "applied": [{"knob": k, "describe": c.describe()} for k, c in report.applied],
                    "failed": [
                        {"knob": k, "describe": c.describe(), "error": e}
                        for k, c, e in report.failed
                    ],
                    "reboot_required": report.reboot_required,
                    "journal": args.journal,
                },
                indent=2,
            )
        )
    else:
        for kid, c in report.applied:
            print(f"  [{kid}] {c.describe()}")
        for kid, c, e in report.failed:
            print(f"  [{kid}] FAILED {c.describe()}: {e}", file=sys.stderr)
        print(f"applied {len(report.applied)}, failed {len(report.failed)}; journal {args.journal}")
        if report.reboot_required:
            print("reboot required: boot-time settings are staged")
    return EXIT_FAIL if report.failed else EXIT_OK


def cmd_revert(args: argparse.Namespace) -> int:
    host = _host(args.root)
    journal = Journal(host, args.journal)
    entries = journal.entries()
    if args.dry_run or not entries:
        if not args.json:
            print("nothing to revert" if not entries else "would revert:")
            for entry in reversed(entries):
                print(f"  [{entry.knob}] undo {entry.change.describe()}")
        else:
            print(
                json.dumps(
                    {
                        "dry_run": args.dry_run,
                        "changes": [
                            {"knob": e.knob, "describe": e.change.describe()}
                            for e in reversed(entries)
                        ],
                    },
                    indent=2,
                )
            )
        return EXIT_OK
    if host.euid != 0:
        print(
            "hosttune revert must run as root: it restores /proc/sys, /sys and /etc",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report = revert(host, journal, all_knobs())
    if args.json:
        print(
            json.dumps(
                {
                    "reverted": [{"knob": k, "describe": c.describe()} for k, c in report.reverted],
                    "failed": [
                        {"knob": k, "describe": c.describe(), "error": e}
                        for k, c, e in report.failed
                    ],
                },
                indent=2,
            )
        )
    else:
        for kid, c in report.reverted:
            print(f"  [{kid}] undid {c.describe()}")
        for kid, c, e in report.failed:
            print(
                f"  [{kid}] FAILED to undo {c.describe()}: {e} (kept in the journal)",
                file=sys.stderr,
            )
        print(f"reverted {len(report.reverted)}, failed {len(report.failed)}")
    return EXIT_FAIL if report.failed else EXIT_OK


def cmd_params(args: argparse.Namespace) -> int:
    params = boot_params(_host(args.root), _profile(args))
    print(json.dumps(params) if args.json else " ".join(params))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export-ansible"]:
        # The Ansible role's defaults, generated from the profile (one set of numbers).
        from hosttune.export import main as export_main

        return export_main(argv[1:])
    args = _parser().parse_args(argv)
    handler = {"check": cmd_check, "apply": cmd_apply, "revert": cmd_revert, "params": cmd_params}[
        args.cmd
    ]
    try:
        return handler(args)
    except ProfileError as e:
        print(f"hosttune: profile error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as e:
        print(f"hosttune: {e}", file=sys.stderr)
        return EXIT_USAGE
    except HostError as e:
        print(f"hosttune: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("HOSTTUNE_DEBUG"):
            raise
        print(
            f"hosttune: internal error: {type(e).__name__}: {e} "
            "(set HOSTTUNE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
