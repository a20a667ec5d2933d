"""The huge-pages knob on fake sysfs trees: totals, free pages, sizes, and NUMA splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosttune.change import SetValue
from hosttune.knobs.hugepages import HugePagesKnob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status
from tests.hosttune.fakehost import fake_host, profile

KNOB = HugePagesKnob()
G2 = "/sys/kernel/mm/hugepages/hugepages-2048kB"
G1 = "/sys/kernel/mm/hugepages/hugepages-1048576kB"
NODES = "/sys/devices/system/node"


def node_dir(node: int, size: str = "2048kB") -> str:
    return f"{NODES}/node{node}/hugepages/hugepages-{size}"


def counters(base: str, total: int | str, free: int | str | None) -> dict[str, str]:
    files = {f"{base}/nr_hugepages": f"{total}\n"}
    if free is not None:
        files[f"{base}/free_hugepages"] = f"{free}\n"
    return files


def want(pages_2m: int = 0, pages_1g: int = 0, per_node: bool = True) -> Profile:
    return profile(hugepages={"pages_2m": pages_2m, "pages_1g": pages_1g, "per_node": per_node})


def rows_by_id(tmp_path: Path, files: dict[str, str], prof: Profile) -> dict[str, CheckResult]:
    return {r.id: r for r in KNOB.check(fake_host(tmp_path, files), prof)}


@pytest.mark.parametrize(
    ("total", "free", "wanted", "status", "observed"),
    [
        (512, 512, 512, Status.PASS, "512 reserved, 512 free"),
        (600, 10, 512, Status.PASS, "600 reserved, 10 free"),  # more than asked is fine
        (0, 0, 512, Status.FAIL, "0 reserved, 0 free"),
        (511, 511, 512, Status.FAIL, "511 reserved, 511 free"),
        (512, 0, 512, Status.WARN, "512 reserved, 0 free"),  # reserved but all in use
        (0, 0, 0, Status.PASS, "0 reserved, 0 free"),  # none wanted: nothing to warn about
        (512, None, 512, Status.PASS, "512 reserved, ? free"),  # free counter missing
    ],
)
def test_2m_rows(
    tmp_path: Path, total: int, free: int | None, wanted: int, status: Status, observed: str
) -> None:
    host = fake_host(tmp_path, counters(G2, total, free))
    row = KNOB.check(host, want(pages_2m=wanted))[0]
    assert (row.id, row.title) == ("hugepages.2M", "2M huge pages")
    assert (row.status, row.observed, row.expected) == (status, observed, f">= {wanted} reserved")
    if status is Status.FAIL:
        assert row.fix == f"echo {wanted} > {G2}/nr_hugepages (or `hosttune apply`)"
    elif status is Status.WARN:
        assert "in use" in row.fix
    else:
        assert row.fix == ""


def test_1g_size_absent_is_a_skip(tmp_path: Path) -> None:
    files = counters(G2, 0, 0)
    rows = rows_by_id(tmp_path, files, want(pages_2m=0, pages_1g=0))
    g1 = rows["hugepages.1G"]
    assert g1.status is Status.SKIP and g1.observed == "not offered (not needed)"
    rows = rows_by_id(tmp_path, files, want(pages_1g=2))
    g1 = rows["hugepages.1G"]
    assert g1.status is Status.SKIP
    assert "does not offer this page size" in g1.observed
    assert KNOB.plan(fake_host(tmp_path, files), want(pages_1g=2)) == []


def test_both_sizes(tmp_path: Path) -> None:
    host = fake_host(tmp_path, {**counters(G2, 512, 100), **counters(G1, 1, 1)})
    rows = KNOB.check(host, want(pages_2m=512, pages_1g=2))
    assert [(r.id, r.status) for r in rows] == [
        ("hugepages.2M", Status.PASS),
        ("hugepages.1G", Status.FAIL),
    ]
    assert KNOB.plan(host, want(pages_2m=512, pages_1g=2)) == [
        SetValue(f"{G1}/nr_hugepages", old="1", new="2")
    ]


@pytest.mark.parametrize("garbled", ["lots", "", "\n", "1.5", "12 pages"])
def test_garbled_counter_is_a_skip_naming_the_file(tmp_path: Path, garbled: str) -> None:
    host = fake_host(tmp_path, {f"{G2}/nr_hugepages": garbled, f"{G2}/free_hugepages": "0\n"})
    row = KNOB.check(host, want(pages_2m=8))[0]
    assert row.status is Status.SKIP
    assert f"{G2}/nr_hugepages" in row.observed and "not a page count" in row.observed
    # A value that cannot be read could not be restored: no change is planned for it.
    assert KNOB.plan(host, want(pages_2m=8)) == []


def test_garbled_free_counter_is_a_skip(tmp_path: Path) -> None:
    host = fake_host(tmp_path, counters(G2, 8, "x"))
    row = KNOB.check(host, want(pages_2m=8))[0]
    assert row.status is Status.SKIP and "free_hugepages" in row.observed


def test_unreadable_counter_is_a_skip(tmp_path: Path) -> None:
    (tmp_path / G2.lstrip("/") / "nr_hugepages").mkdir(parents=True)
    row = KNOB.check(fake_host(tmp_path, {}), want(pages_2m=8))[0]
    assert row.status is Status.SKIP


def three_nodes(per_node_total: tuple[int, int, int] = (0, 0, 0)) -> dict[str, str]:
    files = {f"{NODES}/has_memory": "0-2\n", **counters(G2, sum(per_node_total), 0)}
    for n, total in enumerate(per_node_total):
        files.update(counters(node_dir(n), total, total))
    return files


def test_three_nodes_split_ten_pages_four_three_three(tmp_path: Path) -> None:
    host = fake_host(tmp_path, three_nodes())
    rows = KNOB.check(host, want(pages_2m=10))
    assert [(r.id, r.expected, r.status) for r in rows if r.id.startswith("hugepages.2M")] == [
        ("hugepages.2M", ">= 10 reserved", Status.FAIL),
        ("hugepages.2M.node0", ">= 4 reserved", Status.FAIL),
        ("hugepages.2M.node1", ">= 3 reserved", Status.FAIL),
        ("hugepages.2M.node2", ">= 3 reserved", Status.FAIL),
    ]
    assert rows[1].title == "2M huge pages node 0"
    assert rows[1].fix == f"echo 4 > {node_dir(0)}/nr_hugepages (or `hosttune apply`)"
    assert KNOB.plan(host, want(pages_2m=10)) == [
        SetValue(f"{node_dir(0)}/nr_hugepages", old="0", new="4"),
        SetValue(f"{node_dir(1)}/nr_hugepages", old="0", new="3"),
        SetValue(f"{node_dir(2)}/nr_hugepages", old="0", new="3"),
    ]


def test_total_met_but_one_node_short(tmp_path: Path) -> None:
    host = fake_host(tmp_path, three_nodes((6, 2, 3)))
    rows = {r.id: r.status for r in KNOB.check(host, want(pages_2m=10))}
    assert rows == {
        "hugepages.2M": Status.WARN,  # 11 reserved; the fake's global free counter says 0
        "hugepages.2M.node0": Status.PASS,
        "hugepages.2M.node1": Status.FAIL,
        "hugepages.2M.node2": Status.PASS,
        "hugepages.1G": Status.SKIP,
    }
    # Only the short node is raised; nodes above their share are never lowered.
    assert KNOB.plan(host, want(pages_2m=10)) == [
        SetValue(f"{node_dir(1)}/nr_hugepages", old="2", new="3")
    ]


def test_sparse_node_ids_and_online_fallback(tmp_path: Path) -> None:
    # No has_memory: the node list comes from "online"; node ids need not be contiguous.
    files = {f"{NODES}/online": "0,2\n", **counters(G2, 0, 0)}
    files.update(counters(node_dir(0), 0, 0))
    files.update(counters(node_dir(2), 0, 0))
    host = fake_host(tmp_path, files)
    assert [c.path for c in KNOB.plan(host, want(pages_2m=5))] == [
        f"{node_dir(0)}/nr_hugepages",
        f"{node_dir(2)}/nr_hugepages",
    ]
    assert [c.new for c in KNOB.plan(host, want(pages_2m=5))] == ["3", "2"]


def test_per_node_off_checks_and_writes_only_the_total(tmp_path: Path) -> None:
    host = fake_host(tmp_path, three_nodes())
    prof = want(pages_2m=10, per_node=False)
    assert [r.id for r in KNOB.check(host, prof)] == ["hugepages.2M", "hugepages.1G"]
    assert KNOB.plan(host, prof) == [SetValue(f"{G2}/nr_hugepages", old="0", new="10")]


def test_single_node_writes_the_global_counter(tmp_path: Path) -> None:
    files = {f"{NODES}/has_memory": "0\n", **counters(G2, 0, 0), **counters(node_dir(0), 0, 0)}
    host = fake_host(tmp_path, files)
    assert [r.id for r in KNOB.check(host, want(pages_2m=64))] == ["hugepages.2M", "hugepages.1G"]
    assert KNOB.plan(host, want(pages_2m=64)) == [SetValue(f"{G2}/nr_hugepages", old="0", new="64")]


def test_missing_per_node_counters_are_skip_rows(tmp_path: Path) -> None:
    files = {f"{NODES}/has_memory": "0-1\n", **counters(G2, 8, 8)}
    rows = rows_by_id(tmp_path, files, want(pages_2m=8))
    assert rows["hugepages.2M"].status is Status.PASS
    for n in (0, 1):
        row = rows[f"hugepages.2M.node{n}"]
        assert row.status is Status.SKIP and node_dir(n) in row.observed


def test_garbled_node_list_skips_the_split_but_checks_the_total(tmp_path: Path) -> None:
    files = {f"{NODES}/has_memory": "zero-two\n", **counters(G2, 0, 0)}
    host = fake_host(tmp_path, files)
    rows = {r.id: r for r in KNOB.check(host, want(pages_2m=8))}
    assert rows["hugepages.nodes"].status is Status.SKIP
    assert f"{NODES}/has_memory" in rows["hugepages.nodes"].observed
    assert rows["hugepages.2M"].status is Status.FAIL
    assert KNOB.plan(host, want(pages_2m=8)) == [SetValue(f"{G2}/nr_hugepages", old="0", new="8")]


def test_nothing_wanted_nothing_planned(tmp_path: Path) -> None:
    host = fake_host(tmp_path, three_nodes())
    assert KNOB.plan(host, want()) == []
    assert [r.id for r in KNOB.check(host, want())] == ["hugepages.2M", "hugepages.1G"]


def test_plan_do_check_undo_per_node(tmp_path: Path) -> None:
    host = fake_host(tmp_path, three_nodes((1, 0, 0)))
    prof = want(pages_2m=10)
    changes = KNOB.plan(host, prof)
    assert len(changes) == 3 and all(isinstance(c, SetValue) for c in changes)
    for c in changes:
        c.do(host)
    # The kernel would add the new pages to the free counters; the fake tree needs telling.
    for n in range(3):
        host.write(f"{node_dir(n)}/free_hugepages", host.read(f"{node_dir(n)}/nr_hugepages"))
    rows = [r for r in KNOB.check(host, prof) if ".node" in r.id]
    assert [(r.status, r.observed) for r in rows] == [
        (Status.PASS, "4 reserved, 4 free"),
        (Status.PASS, "3 reserved, 3 free"),
        (Status.PASS, "3 reserved, 3 free"),
    ]
    assert KNOB.plan(host, prof) == []
    KNOB.revert(host, changes)
    assert [host.read(f"{node_dir(n)}/nr_hugepages").strip() for n in range(3)] == ["1", "0", "0"]
