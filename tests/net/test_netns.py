"""Entering namespaces from this process (per thread) and from child processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from feeder.net import netns
from feeder.net.nsexec import main as nsexec_main
from feeder.net.topology import TwoHostTopology
from tests.privilege import require_root

privileged = pytest.mark.privileged
REPO = Path(__file__).resolve().parents[2]
PRINT_NETNS_INODE = "import os; print(os.stat('/proc/self/ns/net').st_ino)"


@privileged
def test_entered_switches_this_thread_only_and_restores(topo: TwoHostTopology) -> None:
    home = netns.thread_netns_inode()
    go = threading.Event()
    seen_by_other_thread: list[int] = []

    def look() -> None:
        go.wait(10)
        seen_by_other_thread.append(netns.thread_netns_inode())

    # Started before entering: a new thread would inherit the creating thread's namespace.
    other = threading.Thread(target=look)
    other.start()
    with netns.entered(topo.a.netns):
        assert netns.thread_netns_inode() == netns.netns_inode(topo.a.netns)
        go.set()
        other.join()
    assert seen_by_other_thread == [home]
    assert netns.thread_netns_inode() == home


@privileged
def test_entered_restores_on_exception(topo: TwoHostTopology) -> None:
    home = netns.thread_netns_inode()
    with pytest.raises(KeyError), netns.entered(topo.b.netns):
        raise KeyError("boom")
    assert netns.thread_netns_inode() == home


@privileged
def test_socket_stays_in_the_namespace_it_was_created_in(topo: TwoHostTopology) -> None:
    home = netns.thread_netns_inode()
    with topo.a.socket() as sa, topo.b.socket() as sb:
        assert netns.socket_netns_inode(sa) == netns.netns_inode(topo.a.netns)
        assert netns.socket_netns_inode(sb) == netns.netns_inode(topo.b.netns)
        # Bindable only where the address exists: proves where the socket lives.
        sa.bind((topo.a.address, 0))
        with pytest.raises(OSError):
            sb.bind((topo.a.address, 0))
    assert netns.thread_netns_inode() == home


@privileged
def test_call_in_returns_the_result_from_inside(topo: TwoHostTopology) -> None:
    assert netns.call_in(topo.b.netns, netns.thread_netns_inode) == netns.netns_inode(topo.b.netns)


@privileged
def test_private_netns_is_fresh_and_restored() -> None:
    require_root("unshares a network namespace")
    home = netns.thread_netns_inode()
    with netns.private_netns():
        inside = netns.thread_netns_inode()
        with open("/proc/thread-self/net/dev") as f:
            interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert inside != home
    assert interfaces == ["lo"]
    assert netns.thread_netns_inode() == home


def test_missing_namespace_is_a_clear_error(unique_prefix: str) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"), netns.entered(unique_prefix):
        pass


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc"])
def test_invalid_namespace_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        netns.netns_path(name)


@privileged
def test_exec_argv_runs_child_inside(topo: TwoHostTopology) -> None:
    out = subprocess.run(
        topo.b.argv([sys.executable, "-c", PRINT_NETNS_INODE]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
        check=True,
    )
    assert int(out.stdout) == netns.netns_inode(topo.b.netns)


@privileged
def test_preexec_runs_child_inside(topo: TwoHostTopology) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PRINT_NETNS_INODE],
        preexec_fn=netns.preexec_in(topo.a.netns),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert int(out.stdout) == netns.netns_inode(topo.a.netns)


def test_preexec_checks_the_namespace_up_front(unique_prefix: str) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        netns.preexec_in(unique_prefix)


def test_exec_argv_needs_a_program() -> None:
    with pytest.raises(ValueError, match="program"):
        netns.exec_argv("x", [])


def test_nsexec_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert nsexec_main(["only-a-name"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_nsexec_missing_namespace(unique_prefix: str) -> None:
    out = subprocess.run(
        netns.exec_argv(unique_prefix, ["true"]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
    )
    assert out.returncode == 1
    assert "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


@privileged
def test_nsexec_missing_program(topo: TwoHostTopology) -> None:
    out = subprocess.run(
        topo.a.argv(["/nonexistent/program"]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
    )
    assert out.returncode == 127
    assert "cannot run" in out.stderr
    assert "Traceback" not in out.stderr
