"""Least privilege in ``feeder run``: which capabilities it keeps, and that it really drops them.

Unit tests check the policy (``needs``) and the drop sequence against a fake kernel that
enforces the kernel's rules. The privileged tests run the real thing in child processes, never
in this one (a dropped capability cannot come back): ``feeder run`` against the simulator, as
root and as the unprivileged user ``nobody`` given only a few capabilities, while this test
reads the feeder's ``/proc/PID/task/*/status`` and a ``feeder listen`` counts what it published.

Running as ``nobody``: the venv's interpreter lives under ``/root`` (mode 700), which nobody may
not traverse. Nothing is copied and no permission on the host changes: the feeder starts in a
private mount namespace (``unshare --mount``) where a tmpfs covers the unreadable directory and
the interpreter's tree is bind-mounted back at its own path, then ``setpriv`` switches to
nobody with the chosen ambient capabilities and execs the venv's python. The namespace, and
its mounts, vanish with the process.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bench.soak import Simulator, start_listener
from feeder.config import ConfigError, FeederConfig, check_exposure, parse_config
from feeder.privileges import (
    CAP_BPF,
    CAP_IPC_LOCK,
    CAP_NET_ADMIN,
    CAP_NET_BIND_SERVICE,
    CAP_NET_RAW,
    CAP_SETPCAP,
    CAP_SYS_ADMIN,
    CapSets,
    PrivilegeError,
    drop,
    drop_for,
    mask_of,
    needs,
)
from tests.privilege import require_root

LAST_CAP = 40
ALL = (1 << (LAST_CAP + 1)) - 1
NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


# --- policy ----------------------------------------------------------------------------------


def caps(cfg: FeederConfig) -> set[int]:
    return {n.cap for n in needs(cfg)}


def test_kernel_udp_needs_nothing_to_send() -> None:
    for path in ("udp", "udp-sendto"):
        cfg = FeederConfig(send_path=path, interface="10.0.0.5", self_tune=False)
        assert caps(cfg) == set()
    # auto on loopback never tries AF_XDP
    assert caps(FeederConfig(send_path="auto", self_tune=False)) == set()


def test_af_xdp_needs_raw_admin_bpf_and_ipc_lock() -> None:
    xdp = needs(FeederConfig(send_path="xdp", interface="10.0.0.5", self_tune=False))
    assert {n.cap for n in xdp} == {CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF, CAP_IPC_LOCK}
    assert {n.cap for n in xdp if n.required} == {CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF}
    # auto keeps them when held, but falls back to kernel UDP without them
    auto = needs(FeederConfig(send_path="auto", interface="10.0.0.5", self_tune=False))
    assert {n.cap for n in auto} == {n.cap for n in xdp}
    assert not any(n.required for n in auto)
    # A/B lines on two interfaces are sent with kernel UDP: AF_XDP is never tried
    split = FeederConfig(
        send_path="auto", interface="10.0.0.5", group_b="239.200.0.1", interface_b="10.0.1.5"
    )
    assert caps(replace(split, self_tune=False)) == set()
    # the fault matrix's "AF_XDP unavailable" never tries it either
    xdp_cfg = FeederConfig(send_path="xdp", interface="10.0.0.5", self_tune=False)
    assert caps(replace(xdp_cfg, xdp_unavailable="injected")) == set()


def test_tuning_namespaces_and_low_ports() -> None:
    assert caps(FeederConfig(send_path="udp")) == {CAP_IPC_LOCK}  # self-tuning: mlockall
    assert CAP_SYS_ADMIN in caps(FeederConfig(netns="feed", self_tune=False))
    assert caps(FeederConfig(metrics_port=80, self_tune=False)) == {CAP_NET_BIND_SERVICE}
    assert caps(FeederConfig(metrics_port=9100, self_tune=False)) == set()
    low_recovery = FeederConfig(recovery_address="10.0.0.5", recovery_port=900, self_tune=False)
    assert caps(low_recovery) == {CAP_NET_BIND_SERVICE}
    assert caps(replace(low_recovery, recovery_address=None)) == set()  # not listening


# --- the drop sequence, against a kernel that enforces the rules --------------------------------


@dataclass
class FakeKernel:
    """Per-thread capability state with the kernel's rules: capset may only lower permitted
    (and effective must stay within it), PR_CAPBSET_DROP needs CAP_SETPCAP effective."""

    sets: CapSets
    bound: int = ALL
    amb: int = 0
    nnp: bool = False
    thread_count: int = 1
    calls: list[str] = field(default_factory=list)

    def last_cap(self) -> int:
        return LAST_CAP

    def threads(self) -> int:
        return self.thread_count

    def get(self) -> CapSets:
        return self.sets

    def set(self, sets: CapSets) -> None:
        if sets.permitted & ~self.sets.permitted or sets.effective & ~sets.permitted:
            raise PrivilegeError("capset: Operation not permitted")
        self.sets = sets
        self.amb &= sets.permitted
        self.calls.append("capset")

    def bounding(self) -> int:
        return self.bound

    def drop_bounding(self, cap: int) -> None:
        if not self.sets.effective >> CAP_SETPCAP & 1:
            raise PrivilegeError("PR_CAPBSET_DROP: Operation not permitted")
        self.bound &= ~(1 << cap)
        self.calls.append(f"bounding-{cap}")

    def clear_ambient(self) -> None:
        self.amb = 0
        self.calls.append("ambient")

    def ambient(self) -> int:
        return self.amb

    def set_no_new_privs(self) -> None:
        self.nnp = True
        self.calls.append("nnp")

    def no_new_privs(self) -> bool:
        return self.nnp


def test_root_keeps_only_what_is_needed() -> None:
    root = FakeKernel(CapSets(ALL, ALL, 0), amb=1 << CAP_IPC_LOCK)
    p = drop_for(FeederConfig(send_path="udp"), root)
    keep = 1 << CAP_IPC_LOCK
    assert root.sets == CapSets(keep, keep, 0)
    assert root.bound == keep and root.amb == 0 and root.nnp
    assert p.kept == keep and p.bounding == keep and p.bounding_reduced and p.no_new_privs
    assert p.dropped == ALL & ~keep
    # no_new_privs comes last, once everything else is done
    assert root.calls[-1] == "nnp"
    doc = p.as_json()
    assert doc["kept"] == ["cap_ipc_lock"] and len(doc["dropped"]) == LAST_CAP
    assert doc["bounding_set"] == ["cap_ipc_lock"] and doc["no_new_privs"] is True


def test_setpcap_raised_only_to_shrink_the_bounding_set() -> None:
    # Permitted but not effective: dropping from the bounding set needs it effective.
    k = FakeKernel(CapSets(0, mask_of([CAP_SETPCAP, CAP_NET_RAW]), 0))
    p = drop([], k)
    assert k.bound == 0 and k.sets == CapSets(0, 0, 0) and p.bounding_reduced


def test_without_setpcap_the_bounding_set_stays_and_is_reported() -> None:
    given = mask_of([CAP_IPC_LOCK, CAP_NET_ADMIN])
    k = FakeKernel(CapSets(given, given, given), amb=given)
    p = drop_for(FeederConfig(send_path="udp"), k)
    assert k.sets == CapSets(1 << CAP_IPC_LOCK, 1 << CAP_IPC_LOCK, 0) and k.amb == 0
    assert k.bound == ALL and not p.bounding_reduced
    assert p.dropped == 1 << CAP_NET_ADMIN
    assert "bounding set is left as it was" in p.summary()


def test_a_needed_capability_not_held_is_reported_missing() -> None:
    k = FakeKernel(CapSets(0, 0, 0))
    p = drop_for(FeederConfig(send_path="xdp", interface="10.0.0.5", self_tune=False), k)
    assert p.kept == 0
    assert {n.cap for n in p.missing} == {CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF, CAP_IPC_LOCK}
    assert "cap_bpf is needed (AF_XDP: BPF maps and programs) but not held" in p.summary()
    assert all(not n["held"] for n in p.as_json()["needs"])


def test_refuses_once_threads_run() -> None:
    k = FakeKernel(CapSets(ALL, ALL, 0), thread_count=3)
    with pytest.raises(PrivilegeError, match="3 threads"):
        drop([], k)
    assert k.calls == []  # nothing half done


# --- dangerous settings ---------------------------------------------------------------------------


def test_ttl_above_one_only_when_asked() -> None:
    check_exposure(FeederConfig(ttl=1))
    with pytest.raises(ConfigError, match=r"allow_ttl_above_1 = true .*--allow-ttl"):
        check_exposure(FeederConfig(ttl=4))
    check_exposure(FeederConfig(ttl=4, allow_ttl_above_1=True))
    with pytest.raises(ConfigError, match="allow_ttl_above_1"):
        check_exposure(parse_config({"feeder": {"ttl": 8}}))
    check_exposure(parse_config({"feeder": {"ttl": 8, "allow_ttl_above_1": True}}))
    with pytest.raises(ConfigError, match=r"0\.\.255"):
        check_exposure(FeederConfig(ttl=300, allow_ttl_above_1=True))


def test_any_address_is_no_multicast_interface() -> None:
    with pytest.raises(ConfigError, match=r"0\.0\.0\.0 \(INADDR_ANY\).*--iface ADDR"):
        check_exposure(parse_config({"feeder": {"interface": "0.0.0.0"}}))
    with pytest.raises(ConfigError, match=r"channels\.interface_b = 0\.0\.0\.0"):
        check_exposure(FeederConfig(group_b="239.200.0.1", interface_b="0.0.0.0"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ttl", "3"], "--allow-ttl"),
        (["--iface", "0.0.0.0"], "give the address of the interface"),
        (["--config", "TTL5"], "allow_ttl_above_1 = true"),
    ],
)
def test_run_refuses_before_doing_anything(args: list[str], says: str, tmp_path: Path) -> None:
    config = tmp_path / "feeder.toml"
    config.write_text("[feeder]\nttl = 5\n")
    args = [str(config) if a == "TTL5" else a for a in args]
    run = [sys.executable, "-m", "feeder", "run", "--exchange", "binance", "--symbols", "BTCUSDT"]
    p = subprocess.run(
        [*run, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert "privileges:" not in p.stderr  # refused before touching anything


def test_allow_ttl_flag_allows_the_config_ttl(tmp_path: Path) -> None:
    config = tmp_path / "feeder.toml"
    config.write_text("[feeder]\nttl = 5\n")
    from feeder.cli import _parser, _run_config

    args = _parser().parse_args(
        ["run", "--config", str(config), "--exchange", "binance", "--symbols", "X1", "--allow-ttl"]
    )
    cfg = _run_config(args)
    assert isinstance(cfg, FeederConfig) and cfg.ttl == 5
    check_exposure(cfg)  # allowed: the flag applies to the file's setting


# --- the real thing, in child processes -------------------------------------------------------


def status(pid: int) -> list[dict[str, str]]:
    """Every thread's /proc status of ``pid`` (empty once it is gone)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out.append(dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line))
    return out


def hexmask(value: str) -> int:
    return int(value.strip(), 16)


def test_drop_leaves_exactly_the_af_xdp_set() -> None:
    require_root("dropping capabilities needs some to drop")
    code = (
        "from feeder.config import FeederConfig\n"
        "from feeder.privileges import drop_for\n"
        "drop_for(FeederConfig(send_path='xdp', interface='10.0.0.5', self_tune=False))\n"
        "print(open('/proc/thread-self/status').read())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    st = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    want = mask_of([CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF, CAP_IPC_LOCK])
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert hexmask(st[key]) == want, (key, st[key])
    assert hexmask(st["CapInh"]) == 0 and hexmask(st["CapAmb"]) == 0
    assert st["NoNewPrivs"].strip() == "1"


def _untraversable_parent(path: Path) -> tuple[Path, Path] | None:
    """The deepest ancestor of ``path`` that others may not enter, and its child on the way."""
    found = None
    for parent in reversed(path.parents):
        if parent == path or not parent.is_dir():
            continue
        if not parent.stat().st_mode & stat.S_IXOTH:
            found = parent
    if found is None:
        return None
    child = found / path.relative_to(found).parts[0]
    return found, child


def as_nobody(argv: list[str], ambient: list[str], stash: Path) -> list[str]:
    """``argv`` run as nobody with ``ambient`` capabilities, every path it needs reachable.

    In a private mount namespace: each directory nobody may not enter on the way to the
    interpreter, the venv or the checkout is covered by a tmpfs (mode 755) and the subtree
    that was needed is bind-mounted back at its own path.
    """
    needed = [Path(sys.base_prefix).resolve(), Path(sys.prefix), REPO]
    covers: dict[Path, list[Path]] = {}
    for path in needed:
        found = _untraversable_parent(path)
        if found is not None and found[1] not in covers.setdefault(found[0], []):
            covers[found[0]].append(found[1])
    lines = ["set -e"]
    n = 0
    for hidden, children in covers.items():
        held = []
        for child in children:
            keep = stash / str(n)
            keep.mkdir()
            n += 1
            lines.append(f"mount --bind {shlex.quote(str(child))} {shlex.quote(str(keep))}")
            held.append((child, keep))
        lines.append(f"mount -t tmpfs -o mode=0755 feeder-test {shlex.quote(str(hidden))}")
        for child, keep in held:
            lines.append(f"mkdir -p {shlex.quote(str(child))}")
            lines.append(f"mount --bind {shlex.quote(str(keep))} {shlex.quote(str(child))}")
    want = ",".join(["-all", *(f"+{c}" for c in ambient)])
    lines.append(
        f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
        f"--inh-caps={want} --ambient-caps={want} -- {shlex.join(argv)}"
    )
    return ["unshare", "--mount", "sh", "-c", "\n".join(lines)]


@dataclass
class Observed:
    report: dict[str, Any]
    listened: dict[str, Any]
    threads: list[dict[str, str]]  # every thread status seen after the drop


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(["binance", "okx"], symbols=3, rate=150, duration_s=90) as s:
        yield s


def run_feeder(sim: Simulator, extra: list[str], wrap: Any = None) -> Observed:
    group = f"239.{random.randint(64, 250)}.{random.randint(0, 255)}.1"
    port = random.randint(20_000, 50_000)
    channels = ["--group", group, "--port", str(port), "--channels", "2"]
    argv = [sys.executable, "-m", "feeder", "run", "--sim", sim.url, "--json", "--duration"]
    argv += ["4", *channels, *extra]
    with (
        start_listener(channels, timeout_s=60) as listener,
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        # Files, not pipes: this loop reads /proc, not the child's output.
        proc = subprocess.Popen(
            wrap(argv) if wrap else argv, stdout=out, stderr=err, text=True, cwd="/"
        )
        seen: list[dict[str, str]] = []
        try:
            while proc.poll() is None:
                # no_new_privs is the drop's last step: from then on every thread must comply.
                seen += [t for t in status(proc.pid) if t.get("NoNewPrivs", "").strip() == "1"]
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        out.seek(0)
        err.seek(0)
        assert proc.returncode == 0, err.read()[-3000:]
        listened = listener.result()
        report = json.load(out)
    return Observed(report, listened, seen)


def check_published(o: Observed) -> None:
    assert o.report["sent"] > 0
    assert o.listened["received"] == o.report["sent"], (o.listened, o.report["sent"])
    assert o.listened["missing_messages"] == 0 and o.listened["gaps"] == 0
    assert o.threads, "never saw the feeder after it dropped its capabilities"


def check_threads(o: Observed, uid: int, kept: int, bounding: int) -> None:
    for t in o.threads:
        assert t["Uid"].split()[:2] == [str(uid), str(uid)]
        assert hexmask(t["CapEff"]) == kept and hexmask(t["CapPrm"]) == kept, t["Name"]
        assert hexmask(t["CapBnd"]) == bounding and hexmask(t["CapAmb"]) == 0, t["Name"]
        assert hexmask(t["CapInh"]) == 0


def test_root_run_keeps_only_ipc_lock(sim: Simulator) -> None:
    require_root("dropping capabilities needs some to drop")
    o = run_feeder(sim, [])
    check_published(o)
    keep = 1 << CAP_IPC_LOCK  # kernel UDP needs nothing; self-tuning may mlockall
    check_threads(o, 0, keep, keep)
    p = o.report["privileges"]
    assert p["uid"] == 0 and p["kept"] == ["cap_ipc_lock"] and p["bounding_reduced"]
    assert "cap_sys_admin" in p["dropped"] and "cap_net_admin" in p["dropped"]


def test_nobody_with_extra_capabilities_drops_them(sim: Simulator) -> None:
    require_root("switching to nobody with chosen capabilities needs root")
    given = ["ipc_lock", "setpcap", "net_admin", "sys_admin", "chown"]
    with tempfile.TemporaryDirectory(prefix="feeder-privs-") as stash:
        o = run_feeder(sim, [], lambda argv: as_nobody(argv, given, Path(stash)))
    check_published(o)
    keep = 1 << CAP_IPC_LOCK
    # CAP_SETPCAP was given, so the feeder could shrink the bounding set itself
    check_threads(o, NOBODY, keep, keep)
    p = o.report["privileges"]
    assert p["uid"] == NOBODY and p["kept"] == ["cap_ipc_lock"]
    assert sorted(p["dropped"]) == sorted(f"cap_{c}" for c in given if c != "ipc_lock")


def test_nobody_without_any_capability_publishes(sim: Simulator) -> None:
    require_root("switching to nobody needs root")
    with tempfile.TemporaryDirectory(prefix="feeder-privs-") as stash:
        o = run_feeder(sim, ["--no-tune"], lambda argv: as_nobody(argv, [], Path(stash)))
    check_published(o)
    full = (1 << (int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1)) - 1
    host_bounding = hexmask(status(os.getpid())[0]["CapBnd"]) & full
    check_threads(o, NOBODY, 0, host_bounding)  # no CAP_SETPCAP: bounding set as inherited
    p = o.report["privileges"]
    assert p["kept"] == [] and p["dropped"] == [] and not p["bounding_reduced"]
    assert p["no_new_privs"] is True
