"""Locked-memory limits of the feeder: PAM limits files for logins, systemd for the service.

Both are read the way their consumers read them (pam_limits' precedence rules, systemd's unit and
drop-in search path) so the check reports the limit the feeder will actually get, and where it
comes from.
"""

from __future__ import annotations

import re
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hosttune.change import Change, WriteFile
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import MemlockSection, Profile
from hosttune.result import CheckResult, Status, skip

LIMITS_CONF = "/etc/security/limits.conf"
LIMITS_DIR = "/etc/security/limits.d"
LIMITS_DROPIN = f"{LIMITS_DIR}/90-hosttune-memlock.conf"
# systemd's unit search path, highest priority first: a unit in /etc masks the packaged one.
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
UNIT_DROPIN_NAME = "90-hosttune-memlock.conf"
SYSTEM_CONF = "/etc/systemd/system.conf"
SYSTEM_CONF_DIR = "/etc/systemd/system.conf.d"

#: RLIM_INFINITY as the kernel stores it; compares above every finite limit.
UNLIMITED = 2**64 - 1
# pam_limits precedence: a user line beats a group line beats `*`, whatever the file order.
RANK_USER, RANK_GROUP, RANK_DEFAULT = 0, 1, 4
# What a session or service gets when nothing sets the limit: at least the old kernel and systemd
# default of 64 KiB (8 MiB on current ones). The check assumes the lower one.
DEFAULT_FLOOR = 64 * 1024

GetRlimit = Callable[[int], tuple[int, int]]


# --- values ------------------------------------------------------------------------------------


def wanted_bytes(section: MemlockSection) -> int:
    return UNLIMITED if section.limit == "unlimited" else int(section.limit) * 1024


def describe(value: int) -> str:
    if value >= UNLIMITED:
        return "unlimited"
    return f"{value // 1024} KiB" if value % 1024 == 0 else f"{value} bytes"


def _expected(section: MemlockSection, where: str) -> str:
    want = "unlimited" if section.limit == "unlimited" else f">= {section.limit} KiB"
    return f"soft and hard memlock {want} {where}"


@dataclass(frozen=True)
class Setting:
    """One effective limit (bytes) and the line that set it."""

    value: int
    source: str
    rank: int = RANK_USER


@dataclass(frozen=True)
class Effective:
    """The soft and hard memlock a consumer ends up with; None = nothing set it."""

    soft: Setting | None
    hard: Setting | None
    exempt: str | None = None  # pam_limits `<user> -` line: no limits applied at all
    reset_at: str | None = None  # systemd: an empty assignment that dropped earlier values
    ignored: tuple[str, ...] = ()  # malformed lines the consumer skips, as "path:line"

    def satisfies(self, want: int) -> bool:
        if self.exempt is not None:
            return False
        return all(
            (s.value if s is not None else DEFAULT_FLOOR) >= want for s in (self.soft, self.hard)
        )

    def summary(self, unset: str) -> str:
        if self.exempt is not None:
            text = f"exempt from all limits by {self.exempt}, so it keeps the inherited limit"
        elif self.soft is None and self.hard is None:
            text = unset + (f" after the reset at {self.reset_at}" if self.reset_at else "")
        elif self.soft == self.hard and self.soft is not None:
            text = f"{describe(self.soft.value)} soft and hard ({self.soft.source})"
        else:
            text = f"soft {_one(self.soft, unset)}; hard {_one(self.hard, unset)}"
        if self.ignored:
            text += f"; ignored malformed line(s) {', '.join(self.ignored)}"
        return text


def _one(setting: Setting | None, unset: str) -> str:
    return unset if setting is None else f"{describe(setting.value)} ({setting.source})"


# --- accounts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """What pam_limits needs to match a user against domains: names and ids from /etc."""

    name: str
    uid: int | None  # None: the user does not exist (yet) in /etc/passwd
    gid: int | None
    groups: frozenset[str]  # primary and supplementary group names
    gids: frozenset[int]


def load_account(host: Host, user: str) -> Account:
    uid = gid = None
    for line in (host.read_opt("/etc/passwd") or "").splitlines():
        f = line.split(":")
        if len(f) >= 4 and f[0] == user and f[2].isdigit() and f[3].isdigit():
            uid, gid = int(f[2]), int(f[3])
            break
    groups: set[str] = set()
    gids: set[int] = set()
    for line in (host.read_opt("/etc/group") or "").splitlines():
        f = line.split(":")
        if len(f) < 4 or not f[2].isdigit():
            continue
        members = {m.strip() for m in f[3].split(",")}
        if user in members or int(f[2]) == gid:
            groups.add(f[0])
            gids.add(int(f[2]))
    return Account(user, uid, gid, frozenset(groups), frozenset(gids))


# --- pam_limits --------------------------------------------------------------------------------


class _BadLine(ValueError):
    pass


def _range(spec: str) -> tuple[int, int | None, bool]:
    """``min:max`` / ``min:`` / ``:exact`` -> (min, max or None, exact)."""
    lo, _, hi = spec.partition(":")
    try:
        if not lo:
            if not hi:
                raise _BadLine(spec)
            return int(hi), int(hi), True
        return int(lo), (int(hi) if hi else None), False
    except ValueError as e:
        raise _BadLine(spec) from e


def _in_range(value: int | None, lo: int, hi: int | None) -> bool:
    return value is not None and value >= lo and (hi is None or value <= hi)


def domain_rank(domain: str, who: Account) -> int | None:
    """pam_limits' rank for a line's domain if it applies to ``who``, else None."""
    if domain == who.name:
        return RANK_USER
    if domain.startswith("@"):
        group = domain[1:]
        if ":" not in group:
            return RANK_GROUP if group in who.groups else None
        lo, hi, exact = _range(group)
        # An exact gid matches any of the user's groups; a range only the primary one.
        hit = lo in who.gids if exact else _in_range(who.gid, lo, hi)
        return RANK_GROUP if hit else None
    if domain.startswith("%"):
        return None  # maxlogins only
    if ":" in domain:
        lo, hi, _ = _range(domain)
        return RANK_USER if _in_range(who.uid, lo, hi) else None
    return RANK_DEFAULT if domain == "*" else None


def _pam_value(text: str) -> int:
    if text in ("unlimited", "infinity", "-1", "-"):
        return UNLIMITED
    digits = re.match(r"\d+", text)  # pam uses strtoul: trailing junk is ignored
    if digits is None:
        raise _BadLine(text)
    return min(int(digits.group()) * 1024, UNLIMITED)


def ordered_limits(files: dict[str, str]) -> list[tuple[str, str]]:
    """limits.conf first, then limits.d/*.conf in C-locale name order, as pam_limits reads them."""
    extra = sorted((p for p in files if p != LIMITS_CONF), key=lambda p: _basename(p).encode())
    return [(p, files[p]) for p in ([LIMITS_CONF] if LIMITS_CONF in files else []) + extra]


def read_limits(host: Host) -> dict[str, str]:
    """Text of each limits file present; an unreadable one raises HostError."""
    paths = [LIMITS_CONF, *host.glob(f"{LIMITS_DIR}/*.conf")]
    return {p: host.read(p) for p in paths if host.exists(p)}


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def pam_memlock(files: Sequence[tuple[str, str]], who: Account) -> Effective:
    """The memlock pam_limits gives ``who`` from these files, read in order."""
    soft: Setting | None = None
    hard: Setting | None = None
    ignored: list[str] = []
    for path, text in files:
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{path}:{n}"
            fields = line.split(None, 3)
            try:
                if len(fields) == 2 and fields[1] == "-":
                    # `<user> -` / `@group -`: pam_limits stops reading and sets no limit at all.
                    if domain_rank(fields[0], who) in (RANK_USER, RANK_GROUP):
                        return Effective(None, None, exempt=f"'{line}' ({where})")
                    continue
                if len(fields) != 4:
                    raise _BadLine(line)
                domain, kind, item, value = fields[0], *(f.lower() for f in fields[1:])
                if item != "memlock":
                    continue
                if kind not in ("soft", "hard", "-"):
                    raise _BadLine(kind)
                rank = domain_rank(domain, who)
                limit = _pam_value(value.strip())
            except _BadLine:
                ignored.append(where)
                continue
            if rank is None:
                continue
            setting = Setting(limit, f"'{domain}' line, {where}", rank)
            # A line replaces what an equally or less specific line set before it.
            if kind in ("soft", "-") and (soft is None or rank <= soft.rank):
                soft = setting
            if kind in ("hard", "-") and (hard is None or rank <= hard.rank):
                hard = setting
    return Effective(soft, hard, ignored=tuple(ignored))


def limits_dropin_text(section: MemlockSection) -> str:
    return (
        "# Written by `hosttune apply`; removed by `hosttune revert`.\n"
        f"{section.user} soft memlock {section.limit}\n"
        f"{section.user} hard memlock {section.limit}\n"
    )


# --- systemd -----------------------------------------------------------------------------------


def _systemd_size(text: str) -> int:
    """systemd's rlimit syntax: ``infinity`` or a size with an optional 1024-based suffix."""
    if text == "infinity":
        return UNLIMITED
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGTPE]?)B?", text)
    if m is None:
        raise ValueError(text)
    scale = 1024 ** (" KMGTPE".index(m.group(2) or " "))
    return min(int(float(m.group(1)) * scale), UNLIMITED)


def _systemd_limit(text: str) -> tuple[int, int]:
    soft, _, hard = text.partition(":")
    return _systemd_size(soft.strip()), _systemd_size((hard or soft).strip())


def ini_assignments(text: str, section: str, key: str) -> list[tuple[int, str]]:
    """(line number, value) of every ``key=`` in ``[section]`` of a systemd config file."""
    out: list[tuple[int, str]] = []
    current = ""
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = n  # a continued setting is reported at its first line
        line = pending + raw.strip()
        if line.endswith("\\"):  # continued on the next line, joined with a blank
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        k, sep, v = line.partition("=")
        if sep and current == section and k.strip() == key:
            out.append((start, v.strip()))
    return out


def systemd_present(host: Host) -> bool:
    return any(host.exists(d) for d in ("/etc/systemd", "/lib/systemd", "/usr/lib/systemd"))


def unit_path(host: Host, unit: str) -> str | None:
    return next((f"{d}/{unit}" for d in UNIT_DIRS if host.exists(f"{d}/{unit}")), None)


def unit_dropins(host: Host, unit: str) -> list[str]:
    """Drop-ins in name order; a name in a higher-priority directory masks the same name below."""
    by_name: dict[str, str] = {}
    for d in UNIT_DIRS:
        for p in host.glob(f"{d}/{unit}.d/*.conf"):
            by_name.setdefault(_basename(p), p)
    return [by_name[name] for name in sorted(by_name)]


def unit_dropin_path(unit: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{UNIT_DROPIN_NAME}"


def unit_dropin_text(section: MemlockSection) -> str:
    value = "infinity" if section.limit == "unlimited" else str(int(section.limit) * 1024)
    return (
        "# Written by `hosttune apply`; removed by `hosttune revert`.\n"
        f"[Service]\nLimitMEMLOCK={value}\n"
    )


def systemd_memlock(files: Sequence[tuple[str, str]], section: str, key: str) -> Effective:
    """The limit the last valid assignment sets; an empty assignment resets it to unset."""
    soft: Setting | None = None
    hard: Setting | None = None
    reset_at: str | None = None
    ignored: list[str] = []
    for path, text in files:
        for n, value in ini_assignments(text, section, key):
            if not value:
                soft = hard = None
                reset_at = f"{path}:{n}"
                continue
            try:
                s, h = _systemd_limit(value)
            except ValueError:
                ignored.append(f"{path}:{n}")  # systemd logs and ignores an invalid value
                continue
            source = f"{key}={value}, {path}:{n}"
            soft, hard, reset_at = Setting(s, source), Setting(h, source), None
    return Effective(soft, hard, reset_at=reset_at, ignored=tuple(ignored))


# --- what the check and the plan share ------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """A consumer's limit now, and what it would be with hosttune's file written."""

    now: Effective
    after_apply: Effective
    note: str = ""  # context for the operator, such as a user not created yet


def limits_state(host: Host, section: MemlockSection) -> State:
    files = read_limits(host)
    who = load_account(host, section.user)
    now = pam_memlock(ordered_limits(files), who)
    after = pam_memlock(ordered_limits({**files, LIMITS_DROPIN: limits_dropin_text(section)}), who)
    note = "" if who.uid is not None else f"; user {section.user} is not in /etc/passwd yet"
    return State(now, after, note)


def _service_limit(files: dict[str, str], defaults: Effective) -> Effective:
    unit = systemd_memlock(list(files.items()), "Service", "LimitMEMLOCK")
    if unit.soft is None and unit.hard is None:
        ignored = unit.ignored + defaults.ignored
        return Effective(defaults.soft, defaults.hard, reset_at=unit.reset_at, ignored=ignored)
    return unit


def systemd_state(host: Host, unit: str, section: MemlockSection) -> tuple[State, str | None]:
    """The service's limit now and after apply, plus the unit file path (None: not installed)."""
    path = unit_path(host, unit)
    dropins = unit_dropins(host, unit)
    files = {p: host.read(p) for p in ([path] if path else []) + dropins}
    manager = [SYSTEM_CONF, *host.glob(f"{SYSTEM_CONF_DIR}/*.conf")]
    defaults = systemd_memlock(
        [(p, host.read(p)) for p in manager if host.exists(p)], "Manager", "DefaultLimitMEMLOCK"
    )
    ours = unit_dropin_path(unit)
    # Ours masks a same-named drop-in below /etc and sorts among the others by name.
    others = [p for p in dropins if _basename(p) != UNIT_DROPIN_NAME]
    after_order = sorted([*others, ours], key=_basename)
    after_files = {p: files[p] for p in ([path] if path else [])}
    for p in after_order:
        after_files[p] = unit_dropin_text(section) if p == ours else files[p]
    return State(_service_limit(files, defaults), _service_limit(after_files, defaults)), path


def _blocker(after: Effective, want: int, ours: str) -> str:
    """Fix text when writing our file is not enough: name the line that still wins."""
    if after.exempt is not None:
        return f"remove the exemption {after.exempt}, then run `hosttune apply`"
    for s in (after.soft, after.hard):
        if s is not None and s.value < want:
            return f"edit {s.source}: it is read after {ours} and overrides it"
    if after.reset_at is not None:
        return f"remove the empty assignment at {after.reset_at}: it resets {ours}"
    return f"raise the limit that applies (see observed), then check {ours}"


def _file_change(host: Host, path: str, new: str) -> list[Change]:
    change = WriteFile.replacing(host, path, new)
    return [change] if change else []


class MemlockKnob(Knob):
    """Locked-memory limit of the feeder user (``[memlock]`` in the profile).

    ``mlockall()`` and AF_XDP UMEM registration count against ``RLIMIT_MEMLOCK``. Two places set
    it, and both are checked:

    - ``memlock.limits``: PAM logins (``su``/``ssh`` as the user), from
      ``/etc/security/limits.conf`` then ``limits.d/*.conf`` in name order. As in pam_limits, a
      line naming the user beats an ``@group`` line beats ``*``, whatever the file order; among
      equals the later line wins; ``<user> -`` exempts the user from all limits.
    - ``memlock.systemd``: the service's ``LimitMEMLOCK=`` from the unit and its drop-ins
      (``/etc``, ``/run``, ``/lib``, ``/usr/lib``), else ``DefaultLimitMEMLOCK=`` in
      ``system.conf``. A unit that is not installed yet is a warning.

    ::

        [memlock]
        user = "feeder"
        limit = "unlimited"              # or a size in KiB, as limits.conf writes it
        systemd_unit = "feeder.service"

    ``apply`` writes ``/etc/security/limits.d/90-hosttune-memlock.conf`` (soft and hard) and
    ``/etc/systemd/system/<unit>.d/90-hosttune-memlock.conf``; they take effect at the next login
    and after ``systemctl daemon-reload`` plus a restart of the service. When run on the live
    host, the check also shows hosttune's own ``RLIMIT_MEMLOCK`` for information.
    """

    id = "memlock"
    title = "locked memory limit"

    def __init__(self, getrlimit: GetRlimit = resource.getrlimit) -> None:
        self._getrlimit = getrlimit

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        return [self._limits_row(host, profile.memlock), self._systemd_row(host, profile.memlock)]

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        section = profile.memlock
        want = wanted_bytes(section)
        changes: list[Change] = []
        try:
            compliant = limits_state(host, section).now.satisfies(want)
        except HostError:
            compliant = False
        if not compliant:
            changes += _file_change(host, LIMITS_DROPIN, limits_dropin_text(section))
        unit = section.systemd_unit
        if unit is None or not systemd_present(host):
            return changes
        try:
            compliant = systemd_state(host, unit, section)[0].now.satisfies(want)
        except HostError:
            compliant = False
        if not compliant:
            changes += _file_change(host, unit_dropin_path(unit), unit_dropin_text(section))
        return changes

    def _limits_row(self, host: Host, section: MemlockSection) -> CheckResult:
        rid, title = "memlock.limits", f"memlock limit of user {section.user} (PAM limits)"
        expected = _expected(section, f"for user {section.user}")
        want = wanted_bytes(section)
        try:
            state = limits_state(host, section)
        except HostError as e:
            why = f"cannot read the limits files: {e}{self._live(host)}"
            return skip(rid, title, why, expected)
        ok = state.now.satisfies(want)
        if ok:
            fix = ""
        elif state.after_apply.satisfies(want):
            fix = (
                f"run `hosttune apply` (writes {LIMITS_DROPIN}: '{section.user} soft|hard memlock "
                f"{section.limit}'); takes effect at the user's next login"
            )
        else:
            fix = _blocker(state.after_apply, want, LIMITS_DROPIN)
        unset = "not set in any limits file (sessions inherit the default, usually 8192 KiB)"
        return CheckResult(
            id=rid,
            title=title,
            status=Status.PASS if ok else Status.FAIL,
            observed=state.now.summary(unset) + state.note + self._live(host),
            expected=expected,
            fix=fix,
        )

    def _systemd_row(self, host: Host, section: MemlockSection) -> CheckResult:
        unit = section.systemd_unit
        rid, title = "memlock.systemd", f"LimitMEMLOCK of {unit or 'the feeder service'}"
        if unit is None:
            return skip(rid, title, "the profile names no systemd unit ([memlock] systemd_unit)")
        expected = _expected(section, f"for {unit}")
        if not systemd_present(host):
            return skip(rid, title, "systemd is not installed on this host", expected)
        want = wanted_bytes(section)
        try:
            state, path = systemd_state(host, unit, section)
        except HostError as e:
            return skip(rid, title, f"cannot read the unit files: {e}", expected)
        ok = state.now.satisfies(want)
        ours = unit_dropin_path(unit)
        if ok:
            fix = ""
        elif state.after_apply.satisfies(want):
            fix = (
                f"run `hosttune apply` (writes {ours}), then `systemctl daemon-reload` and "
                f"`systemctl restart {unit}`"
            )
        else:
            fix = _blocker(state.after_apply, want, ours)
        unset = "not set (the service gets systemd's default: 8 MiB now, 64 KiB on old systemd)"
        where = f"{unit} ({path}): " if path else f"{unit} is not installed yet: "
        status = Status.PASS if ok else (Status.FAIL if path else Status.WARN)
        if ok and path is None:
            where += "when installed it gets "
        return CheckResult(
            id=rid,
            title=title,
            status=status,
            observed=where + state.now.summary(unset),
            expected=expected,
            fix=fix,
        )

    def _live(self, host: Host) -> str:
        if not host.is_live:
            return ""
        soft, hard = (
            UNLIMITED if v == resource.RLIM_INFINITY else v
            for v in self._getrlimit(resource.RLIMIT_MEMLOCK)
        )
        return f"; this hosttune process runs with soft {describe(soft)}, hard {describe(hard)}"
