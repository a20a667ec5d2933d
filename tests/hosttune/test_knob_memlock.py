"""MemlockKnob on fake /etc trees: pam_limits precedence, systemd units and drop-ins, revert."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from hosttune.change import WriteFile
from hosttune.host import Host
from hosttune.knobs.memlock import (
    LIMITS_DROPIN,
    UNLIMITED,
    Account,
    MemlockKnob,
    load_account,
    ordered_limits,
    pam_memlock,
    unit_dropin_path,
)
from hosttune.profile import Profile, load_profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile
from tests.hosttune.knob_roundtrip import roundtrip, snapshot

ACCOUNTS = {
    "/etc/passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        "feeder:x:1001:1001:Feeder:/srv/feeder:/usr/sbin/nologin\n"
        "alice:x:1002:1002::/home/alice:/bin/bash\n"
    ),
    "/etc/group": "root:x:0:\nfeeder:x:1001:\nrealtime:x:2000:alice,feeder\nalice:x:1002:\n",
}
# As shipped by Debian: everything commented out.
DEBIAN_LIMITS = """\
# /etc/security/limits.conf
#
#<domain>      <type>  <item>         <value>
#
#*               soft    core            0
#@student        hard    nproc           20
#@faculty        -       maxlogins       4

# End of file
"""
UNIT = """\
[Unit]
Description=Market-data feeder

[Service]
ExecStart=/usr/bin/feeder run
"""
LD = "/etc/security/limits.d/"
DROPINS = "/etc/systemd/system/feeder.service.d/"
SYSTEMD_DIRS = {"/etc/systemd/system.conf": "[Manager]\n#DefaultLimitMEMLOCK=8M\n"}


def unit_with(limit: str) -> str:
    return UNIT.replace("[Service]\n", f"[Service]\nLimitMEMLOCK={limit}\n")


def write_plan(host: Host, prof: Profile) -> list[WriteFile]:
    changes = MemlockKnob().plan(host, prof)
    assert all(isinstance(c, WriteFile) for c in changes)
    return [c for c in changes if isinstance(c, WriteFile)]


def rows(host: Host, **memlock: object) -> dict[str, CheckResult]:
    prof = profile(memlock={"user": "feeder", "systemd_unit": "feeder.service", **memlock})
    return {r.id: r for r in MemlockKnob().check(host, prof)}


def limits_host(tmp_path: Path, files: dict[str, str]) -> Host:
    return fake_host(tmp_path, {**ACCOUNTS, "/etc/security/limits.conf": DEBIAN_LIMITS, **files})


# --- PAM limits --------------------------------------------------------------------------------


def test_user_line_in_limits_d_passes(tmp_path: Path) -> None:
    host = limits_host(tmp_path, {LD + "10-feeder.conf": "feeder - memlock unlimited\n"})
    row = rows(host)["memlock.limits"]
    assert row.status is Status.PASS
    assert "unlimited soft and hard" in row.observed
    assert "/etc/security/limits.d/10-feeder.conf:1" in row.observed
    assert row.fix == ""
    assert "this hosttune process" not in row.observed  # only on the live host


def test_user_line_beats_a_later_star_line_in_another_file(tmp_path: Path) -> None:
    host = limits_host(
        tmp_path,
        {
            LD + "10-feeder.conf": "feeder - memlock unlimited\n",
            LD + "99-everyone.conf": "*  hard  memlock  64\n*  soft memlock 64\n",
        },
    )
    row = rows(host)["memlock.limits"]
    assert row.status is Status.PASS, row.observed


def test_star_line_applies_when_nothing_more_specific_does(tmp_path: Path) -> None:
    host = limits_host(tmp_path, {LD + "50-all.conf": "* - memlock 64\n"})
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert "64 KiB soft and hard ('*' line, /etc/security/limits.d/50-all.conf:1)" in row.observed
    assert "hosttune apply" in row.fix and LIMITS_DROPIN in row.fix


def test_among_equals_the_later_file_wins_in_name_order(tmp_path: Path) -> None:
    host = limits_host(
        tmp_path,
        {
            # C-locale name order: "100-a" < "20-b", so 20-b.conf is read last and wins.
            LD + "20-b.conf": "feeder hard memlock 1024\n",
            LD + "100-a.conf": "feeder - memlock unlimited\n",
        },
    )
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert "soft unlimited ('feeder' line, /etc/security/limits.d/100-a.conf:1)" in row.observed
    assert "hard 1024 KiB ('feeder' line, /etc/security/limits.d/20-b.conf:1)" in row.observed
    # Our 90- drop-in sorts after 20-b.conf, so apply fixes it.
    assert "hosttune apply" in row.fix


def test_a_user_line_after_our_dropin_is_named_in_the_fix(tmp_path: Path) -> None:
    host = limits_host(tmp_path, {LD + "95-site.conf": "feeder hard memlock 4096\n"})
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert "/etc/security/limits.d/95-site.conf:1" in row.fix
    assert "overrides" in row.fix


def test_group_lines_by_name_and_by_primary_group(tmp_path: Path) -> None:
    host = limits_host(
        tmp_path,
        {
            LD + "10-rt.conf": "@realtime - memlock unlimited\n",
            LD + "20-star.conf": "* - memlock 64\n",
        },
    )
    assert rows(host)["memlock.limits"].status is Status.PASS  # @group beats a later *
    host = limits_host(tmp_path, {LD + "10-rt.conf": "@feeder - memlock unlimited\n"})
    assert rows(host)["memlock.limits"].status is Status.PASS  # primary group via /etc/passwd
    other = limits_host(tmp_path, {LD + "10-rt.conf": "@alice - memlock unlimited\n"})
    assert rows(other)["memlock.limits"].status is Status.FAIL


def test_user_line_beats_group_line(tmp_path: Path) -> None:
    host = limits_host(
        tmp_path,
        {
            LD + "10-me.conf": "feeder - memlock 128\n",
            LD + "20-rt.conf": "@realtime - memlock unlimited\n",
        },
    )
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert "128 KiB soft and hard" in row.observed


@pytest.mark.parametrize(
    ("domain", "applies"),
    [
        ("1000:", True),  # uid >= 1000
        ("1000:1001", True),
        (":1001", True),  # exact uid
        (":1002", False),
        ("1002:", False),
        ("@:2000", True),  # exact gid: supplementary groups count
        ("@1001:1001", True),  # gid range: primary group only
        ("@2000:", False),
        ("%realtime", False),  # maxlogins only
    ],
)
def test_uid_and_gid_ranges(tmp_path: Path, domain: str, applies: bool) -> None:
    host = limits_host(tmp_path, {LD + "10-r.conf": f"{domain} - memlock unlimited\n"})
    expected = Status.PASS if applies else Status.FAIL
    assert rows(host)["memlock.limits"].status is expected


def test_exemption_line_stops_all_limits(tmp_path: Path) -> None:
    host = limits_host(
        tmp_path,
        {
            LD + "10-exempt.conf": "feeder -\n",
            LD + "90-hosttune-memlock.conf": "feeder - memlock unlimited\n",
        },
    )
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert "exempt" in row.observed and "10-exempt.conf:1" in row.observed
    assert row.fix.startswith("remove the exemption")


def test_comments_odd_spacing_and_case(tmp_path: Path) -> None:
    text = (
        "# feeder hard memlock 64\n"
        "\n"
        "   feeder\tSOFT     MEMLOCK\t  Unlimited   # trailing comment\n"
        "feeder hard memlock infinity\n"
        "feeder  soft  nofile  65536\n"
    )
    host = limits_host(tmp_path, {LD + "10-feeder.conf": text})
    row = rows(host)["memlock.limits"]
    assert row.status is Status.PASS
    assert "soft unlimited ('feeder' line, /etc/security/limits.d/10-feeder.conf:3)" in row.observed
    assert "hard unlimited ('feeder' line, /etc/security/limits.d/10-feeder.conf:4)" in row.observed


def test_malformed_lines_are_ignored_and_reported(tmp_path: Path) -> None:
    text = (
        "feeder soft memlock\n"  # 3 fields
        "feeder soft memlock lots\n"  # not a number
        "feeder sometimes memlock 5\n"  # bad type
        "abc:def - memlock unlimited\n"  # bad uid range
        "feeder - memlock 2048\n"
    )
    host = limits_host(tmp_path, {LD + "10-x.conf": text})
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert "2048 KiB soft and hard" in row.observed
    for n in (1, 2, 3, 4):
        assert f"/etc/security/limits.d/10-x.conf:{n}" in row.observed.split("ignored")[1]


def test_no_pam_files_at_all(tmp_path: Path) -> None:
    host = fake_host(tmp_path, ACCOUNTS)
    row = rows(host)["memlock.limits"]
    assert row.status is Status.FAIL
    assert row.observed.startswith("not set in any limits file")


def test_unknown_user_is_said_so(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {"/etc/security/limits.conf": "* - memlock unlimited\n"})
    row = rows(host)["memlock.limits"]
    assert row.status is Status.PASS
    assert "user feeder is not in /etc/passwd yet" in row.observed


def test_unreadable_limits_file_is_a_skip(tmp_path: Path) -> None:
    host = limits_host(tmp_path, {})
    (tmp_path / "etc/security/limits.d/50-broken.conf").mkdir(parents=True)
    row = rows(host)["memlock.limits"]
    assert row.status is Status.SKIP
    assert "cannot read the limits files" in row.observed and "50-broken.conf" in row.observed


@pytest.mark.parametrize(
    ("have", "ok"),
    [("2097152", True), ("1048576", True), ("1024", False), ("unlimited", True), ("-1", True)],
)
def test_limit_in_kib(tmp_path: Path, have: str, ok: bool) -> None:
    host = limits_host(tmp_path, {LD + "10-f.conf": f"feeder - memlock {have}\n"})
    row = rows(host, limit="1048576")["memlock.limits"]
    assert row.status is (Status.PASS if ok else Status.FAIL)
    assert row.expected == "soft and hard memlock >= 1048576 KiB for user feeder"


def test_account_groups(tmp_path: Path) -> None:
    host = fake_host(tmp_path, ACCOUNTS)
    who = load_account(host, "feeder")
    assert (who.uid, who.gid) == (1001, 1001)
    assert who.groups == {"feeder", "realtime"}
    assert who.gids == {1001, 2000}


def test_pam_reads_limits_conf_first_then_dropins_by_name() -> None:
    order = ordered_limits(
        {
            LD + "b.conf": "",
            LD + "A.conf": "",
            "/etc/security/limits.conf": "",
            LD + "10.conf": "",
        }
    )
    assert [p.rsplit("/", 1)[1] for p, _ in order] == ["limits.conf", "10.conf", "A.conf", "b.conf"]


def test_pam_memlock_direct() -> None:
    who = Account("feeder", 1001, 1001, frozenset({"feeder"}), frozenset({1001}))
    eff = pam_memlock([("/x", "feeder soft memlock 64\n* hard memlock unlimited\n")], who)
    assert eff.soft is not None and eff.soft.value == 64 * 1024
    assert eff.hard is not None and eff.hard.value == UNLIMITED
    assert not eff.satisfies(UNLIMITED)
    assert eff.satisfies(64 * 1024)


# --- systemd -----------------------------------------------------------------------------------


def unit_host(tmp_path: Path, files: dict[str, str]) -> Host:
    return fake_host(tmp_path, {**ACCOUNTS, **SYSTEMD_DIRS, **files})


def test_unit_limit_from_dropin_overrides_unit(tmp_path: Path) -> None:
    host = unit_host(
        tmp_path,
        {
            "/lib/systemd/system/feeder.service": unit_with("64M"),
            DROPINS + "50-local.conf": "[Service]\nLimitMEMLOCK=infinity\n",
        },
    )
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.PASS
    assert "feeder.service (/lib/systemd/system/feeder.service)" in row.observed
    assert (
        "LimitMEMLOCK=infinity, /etc/systemd/system/feeder.service.d/50-local.conf:2"
        in row.observed
    )


def test_unit_without_limit_gets_systemd_default(tmp_path: Path) -> None:
    host = unit_host(tmp_path, {"/usr/lib/systemd/system/feeder.service": UNIT})
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.FAIL
    assert "systemd's default" in row.observed
    assert "daemon-reload" in row.fix and "restart feeder.service" in row.fix


def test_default_limit_from_system_conf(tmp_path: Path) -> None:
    host = unit_host(
        tmp_path,
        {
            "/usr/lib/systemd/system/feeder.service": UNIT,
            "/etc/systemd/system.conf.d/10-ml.conf": "[Manager]\nDefaultLimitMEMLOCK=infinity\n",
        },
    )
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.PASS
    assert "DefaultLimitMEMLOCK=infinity" in row.observed


def test_empty_assignment_in_later_dropin_resets(tmp_path: Path) -> None:
    host = unit_host(
        tmp_path,
        {
            "/lib/systemd/system/feeder.service": UNIT,
            DROPINS + "10-a.conf": "[Service]\nLimitMEMLOCK=infinity\n",
            DROPINS + "95-b.conf": "[Service]\nLimitMEMLOCK=\n",
        },
    )
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.FAIL
    assert "after the reset at /etc/systemd/system/feeder.service.d/95-b.conf:2" in row.observed
    # Our 90- drop-in is read before 95-b.conf, which would reset it again: the fix says so.
    assert row.fix == (
        "remove the empty assignment at /etc/systemd/system/feeder.service.d/95-b.conf:2: "
        "it resets /etc/systemd/system/feeder.service.d/90-hosttune-memlock.conf"
    )


def test_etc_unit_masks_packaged_unit_and_dropin_names_mask_lower_ones(tmp_path: Path) -> None:
    host = unit_host(
        tmp_path,
        {
            "/etc/systemd/system/feeder.service": unit_with("infinity"),
            "/lib/systemd/system/feeder.service": unit_with("1M"),
            "/usr/lib/systemd/system/feeder.service.d/20-x.conf": "[Service]\nLimitMEMLOCK=2M\n",
            DROPINS + "20-x.conf": "[Service]\n",
        },
    )
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.PASS
    assert "(/etc/systemd/system/feeder.service)" in row.observed


def test_soft_hard_pair_sizes_and_invalid_values(tmp_path: Path) -> None:
    unit = (
        "[Unit]\nLimitMEMLOCK=infinity\n"  # wrong section: ignored
        "[Service]\n"
        "LimitMEMLOCK=lots\n"  # invalid: systemd ignores it
        "; comment\n"
        "LimitMEMLOCK = \\\n"
        "  8M:infinity\n"  # continuation line
    )
    host = unit_host(tmp_path, {"/lib/systemd/system/feeder.service": unit})
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.FAIL
    assert "soft 8192 KiB" in row.observed and "hard unlimited" in row.observed
    assert "(LimitMEMLOCK=8M:infinity, /lib/systemd/system/feeder.service:6)" in row.observed
    assert "ignored malformed line(s) /lib/systemd/system/feeder.service:4" in row.observed
    ok = rows(host, limit="8192")["memlock.systemd"]
    assert ok.status is Status.PASS


def test_unit_not_installed_is_a_warning(tmp_path: Path) -> None:
    host = unit_host(tmp_path, {})
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.WARN
    assert row.observed.startswith("feeder.service is not installed yet")


def test_no_systemd_or_no_unit_in_profile_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, ACCOUNTS)
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.SKIP
    assert row.observed == "systemd is not installed on this host"
    assert [c.path for c in write_plan(host, profile())] == [LIMITS_DROPIN]


def test_profile_without_unit_skips_the_systemd_row(tmp_path: Path) -> None:
    host = unit_host(tmp_path, {})
    prof = profile(memlock={"user": "feeder"})
    row = {r.id: r for r in MemlockKnob().check(host, prof)}["memlock.systemd"]
    assert row.status is Status.SKIP
    assert "names no systemd unit" in row.observed
    assert [c.path for c in write_plan(host, prof)] == [LIMITS_DROPIN]


def test_unreadable_dropin_is_a_skip(tmp_path: Path) -> None:
    host = unit_host(tmp_path, {"/lib/systemd/system/feeder.service": UNIT})
    (tmp_path / "etc/systemd/system/feeder.service.d/10-dir.conf").mkdir(parents=True)
    row = rows(host)["memlock.systemd"]
    assert row.status is Status.SKIP
    assert "cannot read the unit files" in row.observed


# --- apply / revert ----------------------------------------------------------------------------


def test_apply_then_revert_restores_the_tree(tmp_path: Path) -> None:
    host = unit_host(
        tmp_path,
        {
            "/etc/security/limits.conf": DEBIAN_LIMITS,
            LD + "50-all.conf": "* - memlock 64\n",
            "/lib/systemd/system/feeder.service": UNIT,
        },
    )
    prof = profile(memlock={"user": "feeder", "systemd_unit": "feeder.service"})
    applied = {r.id: r for r in roundtrip(MemlockKnob(), host, prof)}
    assert applied["memlock.limits"].status is Status.PASS
    assert applied["memlock.systemd"].status is Status.PASS
    assert not (tmp_path / LIMITS_DROPIN.lstrip("/")).exists()


def test_plan_writes_exactly_what_the_profile_asks(tmp_path: Path) -> None:
    host = unit_host(tmp_path, {"/lib/systemd/system/feeder.service": UNIT})
    prof = profile(memlock={"user": "feeder", "limit": "1048576", "systemd_unit": "feeder.service"})
    changes = {c.path: c for c in write_plan(host, prof)}
    assert changes[LIMITS_DROPIN].old is None
    assert changes[LIMITS_DROPIN].new.splitlines()[1:] == [
        "feeder soft memlock 1048576",
        "feeder hard memlock 1048576",
    ]
    dropin = changes[unit_dropin_path("feeder.service")].new
    assert dropin.endswith("[Service]\nLimitMEMLOCK=1073741824\n")


def test_unit_installed_later_after_apply_passes(tmp_path: Path) -> None:
    host = unit_host(tmp_path, {})
    prof = profile(memlock={"user": "feeder", "systemd_unit": "feeder.service"})
    applied = {r.id: r for r in roundtrip(MemlockKnob(), host, prof)}
    row = applied["memlock.systemd"]
    assert row.status is Status.PASS
    assert (
        "not installed yet" in row.observed and "when installed it gets unlimited" in row.observed
    )


def test_existing_dropin_is_rewritten_and_restored(tmp_path: Path) -> None:
    host = limits_host(tmp_path, {LIMITS_DROPIN: "feeder - memlock 64\n"})
    before = snapshot(tmp_path)
    prof = profile(memlock={"user": "feeder"})
    roundtrip(MemlockKnob(), host, prof)
    assert snapshot(tmp_path) == before


def test_compliant_host_plans_nothing(tmp_path: Path) -> None:
    host = unit_host(
        tmp_path,
        {
            LD + "10-f.conf": "feeder - memlock unlimited\n",
            "/lib/systemd/system/feeder.service": unit_with("infinity"),
        },
    )
    assert MemlockKnob().plan(host, profile(memlock={"systemd_unit": "feeder.service"})) == []


# --- live host ---------------------------------------------------------------------------------


def test_live_host_reports_this_process_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    rows_ = {r.id: r for r in MemlockKnob().check(Host(), load_profile())}
    assert set(rows_) == {"memlock.limits", "memlock.systemd"}
    if not Path("/etc/systemd").exists():
        assert rows_["memlock.systemd"].status is Status.SKIP
    shown = rows_["memlock.limits"].observed
    for v in (soft, hard):
        text = "unlimited" if v == resource.RLIM_INFINITY else f"{v // 1024} KiB"
        assert text in shown.split("this hosttune process")[1]


def test_live_limit_is_read_through_the_injected_function() -> None:
    seen: list[int] = []

    def fake(which: int) -> tuple[int, int]:
        seen.append(which)
        return resource.RLIM_INFINITY, 65536

    row = MemlockKnob(getrlimit=fake).check(Host(), profile())[0]
    assert seen == [resource.RLIMIT_MEMLOCK]
    assert row.observed.endswith("runs with soft unlimited, hard 64 KiB")
