"""BpfKnob: kernel config (gzip and /boot), JIT, capabilities, AF_XDP socket, BTF on fake trees,
plus this VM as it is and with capabilities dropped."""

from __future__ import annotations

import errno
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hosttune.change import Change, SetValue
from hosttune.host import Host
from hosttune.knobs.bpf import JIT_ENABLE, BpfKnob, parse_cap_eff, parse_kernel_config
from hosttune.profile import Profile, load_profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile
from tests.privilege import require_root

GOOD_CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_BPF=y
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT=y
CONFIG_BPF_JIT_ALWAYS_ON=y
CONFIG_XDP_SOCKETS=y
CONFIG_LOCALVERSION="-fc"
"""
NO_XDP_CONFIG = GOOD_CONFIG.replace("CONFIG_XDP_SOCKETS=y", "# CONFIG_XDP_SOCKETS is not set")
ROOT_CAPS = "000001ffffffffff"
STATUS = "Name:\tpython3\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapEff:\t{caps}\n"


def caps_hex(*caps: int) -> str:
    return f"{sum(1 << c for c in caps):016x}"


def compliant(**over: str) -> dict[str, str]:
    files = {
        "/proc/sys/kernel/osrelease": "6.18.0-test\n",
        "/boot/config-6.18.0-test": GOOD_CONFIG,
        JIT_ENABLE: "1\n",
        "/proc/self/status": STATUS.format(caps=ROOT_CAPS),
        "/proc/sys/kernel/unprivileged_bpf_disabled": "2\n",
        "/sys/kernel/btf/vmlinux": "BTF",
    }
    files.update(over)
    return files


def write_config_gz(root: Path, data: bytes) -> None:
    target = root / "proc/config.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def row(
    tmp_path: Path, files: dict[str, str], rid: str, prof: Profile | None = None
) -> CheckResult:
    rows = BpfKnob().check(fake_host(tmp_path, files), prof or profile())
    return next(r for r in rows if r.id == rid)


def test_af_xdp_off_is_one_skip_and_no_plan(tmp_path: Path) -> None:
    host = fake_host(tmp_path, compliant(**{JIT_ENABLE: "0\n"}))
    prof = profile(bpf={"af_xdp": False})
    rows = BpfKnob().check(host, prof)
    assert [(r.id, r.status) for r in rows] == [("bpf", Status.SKIP)]
    assert BpfKnob().plan(host, prof) == []


def test_row_ids_in_order(tmp_path: Path) -> None:
    rows = BpfKnob().check(fake_host(tmp_path, compliant()), profile())
    assert [r.id for r in rows] == [
        "bpf.kernel_config",
        "bpf.jit",
        "bpf.privileges",
        "bpf.af_xdp_socket",
        "bpf.btf",
    ]


# --- kernel config --------------------------------------------------------------------------


def test_parse_kernel_config() -> None:
    options = parse_kernel_config(NO_XDP_CONFIG + "garbage\nCONFIG_BPF_LSM=m\n")
    assert options["CONFIG_BPF_SYSCALL"] == "y"
    assert options["CONFIG_XDP_SOCKETS"] == "n"
    assert options["CONFIG_BPF_LSM"] == "m"
    assert options["CONFIG_LOCALVERSION"] == "-fc"
    assert parse_kernel_config("not a config") == {}


def test_config_gz_is_preferred(tmp_path: Path) -> None:
    write_config_gz(tmp_path, gzip.compress(GOOD_CONFIG.encode()))
    r = row(tmp_path, compliant(**{"/boot/config-6.18.0-test": NO_XDP_CONFIG}), "bpf.kernel_config")
    assert r.status is Status.PASS
    assert r.observed == (
        "CONFIG_BPF_SYSCALL=y, CONFIG_XDP_SOCKETS=y, CONFIG_BPF_JIT=y (from /proc/config.gz)"
    )


def test_missing_option_fails_and_needs_a_reboot(tmp_path: Path) -> None:
    write_config_gz(tmp_path, gzip.compress(NO_XDP_CONFIG.encode()))
    r = row(tmp_path, compliant(), "bpf.kernel_config")
    assert r.status is Status.FAIL
    assert "CONFIG_XDP_SOCKETS=n" in r.observed
    assert r.fix == "boot a kernel built with CONFIG_XDP_SOCKETS=y"
    assert r.reboot


def test_option_absent_from_config_is_reported_as_absent(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("CONFIG_BPF_JIT=y\n", "")
    r = row(tmp_path, compliant(**{"/boot/config-6.18.0-test": config}), "bpf.kernel_config")
    assert r.status is Status.FAIL
    assert "CONFIG_BPF_JIT=absent" in r.observed


def test_module_counts_as_available(tmp_path: Path) -> None:
    config = GOOD_CONFIG.replace("CONFIG_XDP_SOCKETS=y", "CONFIG_XDP_SOCKETS=m")
    r = row(tmp_path, compliant(**{"/boot/config-6.18.0-test": config}), "bpf.kernel_config")
    assert r.status is Status.PASS


def test_boot_config_used_when_there_is_no_config_gz(tmp_path: Path) -> None:
    r = row(tmp_path, compliant(), "bpf.kernel_config")
    assert r.status is Status.PASS
    assert r.observed.endswith("(from /boot/config-6.18.0-test)")


def test_corrupt_config_gz_falls_back_to_boot(tmp_path: Path) -> None:
    write_config_gz(tmp_path, b"\x1f\x8b\x08\x00garbage")
    r = row(tmp_path, compliant(), "bpf.kernel_config")
    assert r.status is Status.PASS
    assert r.observed.endswith("(from /boot/config-6.18.0-test)")


@pytest.mark.parametrize(
    ("gz", "reason"),
    [
        (None, "/proc/config.gz does not exist"),
        (b"plain text, not gzip", "/proc/config.gz is not valid gzip"),
        (gzip.compress(GOOD_CONFIG.encode())[:30], "/proc/config.gz is not valid gzip"),
        (gzip.compress(b"hello\n"), "/proc/config.gz holds no CONFIG_ lines"),
    ],
)
def test_no_readable_config_is_a_skip_naming_every_reason(
    tmp_path: Path, gz: bytes | None, reason: str
) -> None:
    if gz is not None:
        write_config_gz(tmp_path, gz)
    files = compliant()
    del files["/boot/config-6.18.0-test"]
    r = row(tmp_path, files, "bpf.kernel_config")
    assert r.status is Status.SKIP
    assert reason in r.observed
    assert "/boot/config-6.18.0-test does not exist" in r.observed


def test_unknown_release_is_a_skip(tmp_path: Path) -> None:
    files = compliant()
    del files["/proc/sys/kernel/osrelease"]
    r = row(tmp_path, files, "bpf.kernel_config")
    assert r.status is Status.SKIP
    assert "kernel release unknown" in r.observed


def test_empty_boot_config_is_a_skip(tmp_path: Path) -> None:
    r = row(tmp_path, compliant(**{"/boot/config-6.18.0-test": "\n"}), "bpf.kernel_config")
    assert r.status is Status.SKIP
    assert "holds no CONFIG_ lines" in r.observed


# --- JIT ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"), [("1\n", Status.PASS), ("0\n", Status.FAIL), ("2\n", Status.WARN)]
)
def test_jit_values(tmp_path: Path, value: str, status: Status) -> None:
    r = row(tmp_path, compliant(**{JIT_ENABLE: value}), "bpf.jit")
    assert r.status is status
    assert r.observed.startswith(value.strip())
    assert ("hosttune apply" in r.fix) == (status is not Status.PASS)


@pytest.mark.parametrize("value", [None, "", "yes\n", "1 2\n"])
def test_jit_missing_or_garbled_is_a_skip_with_no_plan(tmp_path: Path, value: str | None) -> None:
    files = compliant()
    if value is None:
        del files[JIT_ENABLE]
    else:
        files[JIT_ENABLE] = value
    host = fake_host(tmp_path, files)
    r = next(r for r in BpfKnob().check(host, profile()) if r.id == "bpf.jit")
    assert r.status is Status.SKIP
    assert BpfKnob().plan(host, profile()) == []


def test_jit_plan_do_check_undo(tmp_path: Path) -> None:
    host = fake_host(tmp_path, compliant(**{JIT_ENABLE: "0\n"}))
    knob = BpfKnob()
    changes = knob.plan(host, profile())
    assert changes == [SetValue(path=JIT_ENABLE, old="0\n", new="1")]
    for c in changes:
        c.do(host)
    assert next(r for r in knob.check(host, profile()) if r.id == "bpf.jit").status is Status.PASS
    assert knob.plan(host, profile()) == []
    journaled = [Change.from_json(json.loads(json.dumps(c.to_json()))) for c in changes]
    knob.revert(host, journaled)
    assert (tmp_path / JIT_ENABLE.lstrip("/")).read_bytes() == b"0\n"


# --- capabilities ---------------------------------------------------------------------------


def test_parse_cap_eff() -> None:
    assert parse_cap_eff(STATUS.format(caps=ROOT_CAPS)) == (1 << 41) - 1
    assert parse_cap_eff("Name:\tx\n") is None
    assert parse_cap_eff("CapEff:\tzz\n") is None


@pytest.mark.parametrize(
    ("caps", "status", "missing"),
    [
        ((12, 13, 39), Status.PASS, ""),
        ((12, 13, 21), Status.PASS, ""),
        ((12, 21), Status.FAIL, "missing cap_net_raw:"),
        ((12, 13), Status.FAIL, "missing cap_bpf (or cap_sys_admin):"),
        ((), Status.FAIL, "missing cap_net_admin, cap_net_raw, cap_bpf (or cap_sys_admin):"),
    ],
)
def test_capabilities(tmp_path: Path, caps: tuple[int, ...], status: Status, missing: str) -> None:
    files = compliant(**{"/proc/self/status": STATUS.format(caps=caps_hex(*caps))})
    r = row(tmp_path, files, "bpf.privileges")
    assert r.status is status
    assert r.fix.startswith(missing)
    if not caps:
        assert "holds none of them" in r.observed


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0\n", "unprivileged BPF allowed"),
        ("1\n", "unprivileged BPF disabled (until reboot)"),
        ("2\n", "unprivileged BPF disabled (root may re-enable it)"),
        ("7\n", "unprivileged_bpf_disabled = '7'"),
        (None, "unprivileged_bpf_disabled not exposed"),
    ],
)
def test_unprivileged_bpf_is_shown(tmp_path: Path, value: str | None, text: str) -> None:
    files = compliant()
    if value is None:
        del files["/proc/sys/kernel/unprivileged_bpf_disabled"]
    else:
        files["/proc/sys/kernel/unprivileged_bpf_disabled"] = value
    r = row(tmp_path, files, "bpf.privileges")
    assert r.status is Status.PASS
    assert r.observed.endswith(text)


@pytest.mark.parametrize("status_text", [None, "Name:\tx\n", "CapEff:\tnot-hex\n"])
def test_unreadable_capabilities_are_a_skip(tmp_path: Path, status_text: str | None) -> None:
    files = compliant()
    if status_text is None:
        del files["/proc/self/status"]
    else:
        files["/proc/self/status"] = status_text
    assert row(tmp_path, files, "bpf.privileges").status is Status.SKIP


# --- AF_XDP socket and BTF ------------------------------------------------------------------


def test_socket_not_tried_on_a_fake_tree(tmp_path: Path) -> None:
    def must_not_run() -> None:
        raise AssertionError("opened a socket for a fake root")

    host = fake_host(tmp_path, compliant())
    rows = BpfKnob(open_xdp_socket=must_not_run).check(host, profile())
    r = next(r for r in rows if r.id == "bpf.af_xdp_socket")
    assert r.status is Status.SKIP
    assert "not the running host" in r.observed


@pytest.mark.parametrize(
    ("code", "words", "reboot"),
    [
        (errno.EAFNOSUPPORT, "built without CONFIG_XDP_SOCKETS", True),
        (errno.EPERM, "needs CAP_NET_RAW", False),
        (errno.EMFILE, "Too many open files", False),
    ],
)
def test_socket_failure_on_the_live_host(code: int, words: str, reboot: bool) -> None:
    def refuse() -> None:
        raise OSError(code, "refused")

    rows = BpfKnob(open_xdp_socket=refuse).check(Host(), profile())
    r = next(r for r in rows if r.id == "bpf.af_xdp_socket")
    assert r.status is Status.FAIL
    assert words in r.observed and errno.errorcode[code] in r.observed
    assert r.reboot is reboot


def test_btf_absent_is_a_warning(tmp_path: Path) -> None:
    files = compliant()
    del files["/sys/kernel/btf/vmlinux"]
    r = row(tmp_path, files, "bpf.btf")
    assert r.status is Status.WARN
    assert "CONFIG_DEBUG_INFO_BTF" in r.fix
    assert row(tmp_path / "other", compliant(), "bpf.btf").status is Status.PASS


# --- this VM --------------------------------------------------------------------------------


def test_this_vm_can_run_af_xdp() -> None:
    require_root("AF_XDP sockets need CAP_NET_RAW")
    rows = BpfKnob().check(Host(), load_profile())
    assert {r.id: r.status for r in rows} == {
        "bpf.kernel_config": Status.PASS,
        "bpf.jit": Status.PASS,
        "bpf.privileges": Status.PASS,
        "bpf.af_xdp_socket": Status.PASS,
        "bpf.btf": Status.PASS,
    }, [(r.id, r.observed) for r in rows]
    assert BpfKnob().plan(Host(), load_profile()) == []


CHECK = """
import json
from hosttune.host import Host
from hosttune.knobs.bpf import BpfKnob
from hosttune.profile import load_profile
print(json.dumps([r.to_json() for r in BpfKnob().check(Host(), load_profile())]))
"""


def test_this_vm_without_net_raw_and_bpf_capabilities() -> None:
    require_root("drops capabilities from a root process")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    proc = subprocess.run(
        [setpriv, "--bounding-set=-net_raw,-bpf,-sys_admin", "--", sys.executable, "-c", CHECK],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    privileges = rows["bpf.privileges"]
    assert privileges["status"] == "fail"
    assert privileges["fix"].startswith("missing cap_net_raw, cap_bpf (or cap_sys_admin):")
    sock = rows["bpf.af_xdp_socket"]
    assert sock["status"] == "fail"
    assert "(EPERM)" in sock["observed"]
    assert rows["bpf.kernel_config"]["status"] == "pass"
