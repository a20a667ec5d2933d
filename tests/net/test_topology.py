"""TwoHostTopology: what it builds (checked through netlink), teardown paths, stale cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from feeder.net import topology
from feeder.net.netns import NETNS_DIR, entered, netns_inode
from feeder.net.topology import (
    Host,
    TopologyError,
    TwoHostTopology,
    cleanup_stale,
    list_stale,
    side_names,
    topology_support,
)
from tests.privilege import require_root

privileged = pytest.mark.privileged

IFF_UP = 0x1


def _link_facts(host: Host) -> dict[str, object]:
    """What netlink inside ``host``'s namespace says about its links, address and routes."""
    with entered(host.netns), IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=host.ifname)
        (lo,) = ipr.get_links(ifname="lo")
        idx = link["index"]
        addrs = [
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)
        ]
        routes = [
            (r.get_attr("RTA_DST"), r["dst_len"], r.get_attr("RTA_OIF"))
            for r in ipr.route("dump", table=254, family=2)
        ]
        kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        with open(f"/proc/sys/net/ipv4/conf/{host.ifname}/rp_filter") as f:
            rp_filter = int(f.read())
        return {
            "index": idx,
            "kind": kind,
            "up": bool(link["flags"] & IFF_UP),
            "lo_up": bool(lo["flags"] & IFF_UP),
            "addrs": addrs,
            "routes": routes,
            "rp_filter": rp_filter,
        }


@privileged
def test_build_creates_namespaces_veth_addresses_and_routes(topo: TwoHostTopology) -> None:
    assert {topo.a.netns, topo.b.netns} <= set(os.listdir(NETNS_DIR))
    assert netns_inode(topo.a.netns) != netns_inode(topo.b.netns)
    for host in topo.hosts:
        facts = _link_facts(host)
        assert facts["kind"] == "veth"
        assert facts["up"] and facts["lo_up"]
        assert facts["addrs"] == [(host.address, host.prefixlen)]
        assert ("224.0.0.0", 4, facts["index"]) in facts["routes"]  # type: ignore[operator]
        assert facts["rp_filter"] == 0
    assert topo.a.address != topo.b.address
    assert len(topo.a.ifname) <= topology.IFNAME_MAX


@privileged
def test_nothing_is_created_in_the_host_namespace(topo: TwoHostTopology) -> None:
    with IPRoute() as ipr:
        assert ipr.link_lookup(ifname=topo.a.ifname) == []
        assert ipr.link_lookup(ifname=topo.b.ifname) == []


@privileged
def test_hosts_reach_each_other(topo: TwoHostTopology) -> None:
    with topo.b.socket() as server, topo.a.socket() as client:
        server.bind((topo.b.address, 0))
        server.settimeout(2)
        client.sendto(b"ping", server.getsockname())
        data, (src, _port) = server.recvfrom(16)
    assert (data, src) == (b"ping", topo.a.address)


@privileged
def test_close_removes_everything_and_is_idempotent(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    topo = TwoHostTopology.build(ns_prefix)
    assert len(list_stale(ns_prefix)) == 2
    topo.close()
    assert topo.closed
    assert list_stale(ns_prefix) == []
    topo.close()  # second close: no error, nothing to do


@privileged
def test_close_on_exception(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    with pytest.raises(ZeroDivisionError), TwoHostTopology.build(ns_prefix):
        assert len(list_stale(ns_prefix)) == 2
        _ = 1 / 0
    assert list_stale(ns_prefix) == []


@privileged
def test_failed_build_removes_what_it_created(
    ns_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_root("builds network namespaces")

    def fail(host: Host) -> None:
        raise TopologyError(f"injected failure configuring {host.netns}")

    monkeypatch.setattr(topology, "_configure_host", fail)
    with pytest.raises(TopologyError, match="injected failure"):
        TwoHostTopology.build(ns_prefix)
    assert list_stale(ns_prefix) == []


@privileged
def test_names_are_unique_per_prefix(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    other = ns_prefix[:-1] + ("x" if ns_prefix[-1] != "x" else "y")
    try:
        with TwoHostTopology.build(ns_prefix) as one, TwoHostTopology.build(other) as two:
            names = {one.a.netns, one.b.netns, two.a.netns, two.b.netns}
            assert len(names) == 4
            with pytest.raises(FileExistsError, match="already exists"):
                TwoHostTopology.build(ns_prefix)
            # The failed duplicate must not have touched the live topology.
            assert set(list_stale(ns_prefix)) == {one.a.netns, one.b.netns}
    finally:
        cleanup_stale(other)


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("", "must be letters"),
        ("bad/name", "must be letters"),
        ("has-dash", "must be letters"),
        ("x" * (topology.PREFIX_MAX + 1), "at most"),
    ],
)
def test_bad_prefix_is_rejected(prefix: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        side_names(prefix)


@pytest.mark.parametrize("subnet", ["10.0.0.0/31", "not-a-net", "10.0.0.1/30"])
def test_bad_subnet_is_rejected_before_anything_is_created(ns_prefix: str, subnet: str) -> None:
    with pytest.raises(ValueError, match="subnet"):
        TwoHostTopology.build(ns_prefix, subnet=subnet)
    assert list_stale(ns_prefix) == []


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


BUILD_AND_WAIT = """
    import time
    from feeder.net.topology import TwoHostTopology
    topo = TwoHostTopology.build({prefix!r})
    print("ready", flush=True)
    {body}
"""


@privileged
@pytest.mark.parametrize(
    ("sig", "body"),
    [
        (signal.SIGTERM, "with topo:\n        time.sleep(30)"),
        (signal.SIGINT, "with topo:\n        time.sleep(30)"),
        (signal.SIGHUP, "time.sleep(30)"),  # not even a with block: atexit + SystemExit
    ],
    ids=["SIGTERM", "SIGINT", "SIGHUP-without-with"],
)
def test_signal_while_in_use_tears_down(ns_prefix: str, sig: int, body: str) -> None:
    require_root("builds network namespaces")
    child = _child(BUILD_AND_WAIT.format(prefix=ns_prefix, body=body))
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        assert len(list_stale(ns_prefix)) == 2
        child.send_signal(sig)
        code = child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code != 0
    assert list_stale(ns_prefix) == []


@privileged
def test_normal_exit_without_close_tears_down(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    child = _child(BUILD_AND_WAIT.format(prefix=ns_prefix, body="pass"))
    assert child.wait(timeout=10) == 0
    assert list_stale(ns_prefix) == []


@privileged
def test_cleanup_stale_after_sigkill_touches_only_its_prefix(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    child = _child(BUILD_AND_WAIT.format(prefix=ns_prefix, body="time.sleep(30)"))
    other = ns_prefix[:-1] + ("x" if ns_prefix[-1] != "x" else "y")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.kill()  # no cleanup possible: leftovers are expected
        child.wait(timeout=10)
        with TwoHostTopology.build(other) as survivor:
            assert set(list_stale(ns_prefix)) == set(side_names(ns_prefix))
            removed = cleanup_stale(ns_prefix)
            assert set(removed) == set(side_names(ns_prefix))
            assert list_stale(ns_prefix) == []
            assert set(list_stale(other)) == {survivor.a.netns, survivor.b.netns}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        cleanup_stale(other)


def test_cleanup_stale_rejects_empty_prefix() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        cleanup_stale("")


@privileged
def test_signal_handlers_are_restored_after_close(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    before = signal.getsignal(signal.SIGTERM)
    with TwoHostTopology.build(ns_prefix):
        if before == signal.SIG_DFL:
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) == before


@privileged
def test_built_off_the_main_thread_leaves_signal_handlers_alone(ns_prefix: str) -> None:
    require_root("builds network namespaces")
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def build_and_close() -> None:
        with TwoHostTopology.build(ns_prefix) as topo:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(len(list_stale(ns_prefix)))
            assert topo.a.address

    worker = threading.Thread(target=build_and_close)
    worker.start()
    worker.join()
    assert seen == [before, 2]
    assert signal.getsignal(signal.SIGTERM) == before
    assert list_stale(ns_prefix) == []


@privileged
def test_support_reports_ok_as_root() -> None:
    require_root("probes namespace creation")
    support = topology_support()
    assert support.ok, support.reason
    assert support.reason


def test_support_explains_missing_privileges(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t0000000000000000\n")
    support = topology_support(str(status))
    assert not support.ok
    assert "needs root" in support.reason and "CAP_SYS_ADMIN" in support.reason


def test_support_explains_unreadable_status(tmp_path: Path) -> None:
    support = topology_support(str(tmp_path / "missing"))
    assert not support.ok
    assert "capabilities" in support.reason
