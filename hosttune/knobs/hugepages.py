"""Explicit huge pages (2 MiB and 1 GiB), in total and per NUMA node."""

from __future__ import annotations

from hosttune.change import Change, SetValue
from hosttune.cpus import numa_nodes
from hosttune.host import Host
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

SIZES = {"2M": "hugepages-2048kB", "1G": "hugepages-1048576kB"}


def _count(host: Host, path: str) -> int | None:
    text = host.read_opt(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _split(total: int, nodes: list[int]) -> dict[int, int]:
    """Even split across nodes, remainder to the lowest nodes."""
    base, extra = divmod(total, len(nodes))
    return {n: base + (1 if i < extra else 0) for i, n in enumerate(nodes)}


class HugePagesKnob(Knob):
    """Huge pages reserved for packet buffers and AF_XDP UMEM (``[hugepages]``).

    Checks the reserved count (and how many are still free) for each size, and per NUMA node when
    the host has more than one::

        [hugepages]
        pages_2m = 512     # 1 GiB of 2 MiB pages
        pages_1g = 0
        per_node = true    # split evenly across nodes
        boot = true        # also reserve at boot (see cmdline)

    ``apply`` writes ``nr_hugepages`` (per node when split). The kernel may grant fewer pages
    than asked when memory is fragmented; the check afterwards shows what was granted, and
    ``boot = true`` reserves them before fragmentation can happen.
    """

    id = "hugepages"
    title = "huge pages"

    def _wanted(self, profile: Profile) -> dict[str, int]:
        return {"2M": profile.hugepages.pages_2m, "1G": profile.hugepages.pages_1g}

    def check(self, host: Host, profile: Profile) -> list[CheckResult]:
        rows = []
        nodes = numa_nodes(host)
        for size, want in self._wanted(profile).items():
            rid, title = f"hugepages.{size}", f"{size} huge pages"
            base = f"/sys/kernel/mm/hugepages/{SIZES[size]}"
            total, free = (
                _count(host, f"{base}/nr_hugepages"),
                _count(host, f"{base}/free_hugepages"),
            )
            if total is None:
                why = (
                    "kernel or CPU does not offer this page size"
                    if want
                    else "not offered (not needed)"
                )
                rows.append(skip(rid, title, why, f">= {want}"))
                continue
            rows.append(self._row(rid, title, total, free, want, f"{base}/nr_hugepages"))
            if profile.hugepages.per_node and len(nodes) > 1 and want:
                for node, n_want in _split(want, nodes).items():
                    nb = f"/sys/devices/system/node/node{node}/hugepages/{SIZES[size]}"
                    n_total = _count(host, f"{nb}/nr_hugepages")
                    if n_total is None:
                        rows.append(
                            skip(
                                f"{rid}.node{node}", f"{title} node {node}", "no per-node counters"
                            )
                        )
                        continue
                    rows.append(
                        self._row(
                            f"{rid}.node{node}",
                            f"{title} node {node}",
                            n_total,
                            _count(host, f"{nb}/free_hugepages"),
                            n_want,
                            f"{nb}/nr_hugepages",
                        )
                    )
        return rows

    @staticmethod
    def _row(
        rid: str, title: str, total: int, free: int | None, want: int, path: str
    ) -> CheckResult:
        observed = f"{total} reserved, {free if free is not None else '?'} free"
        if total < want:
            status, fix = Status.FAIL, f"echo {want} > {path} (or `hosttune apply`)"
        elif want and free == 0:
            status, fix = (
                Status.WARN,
                "all reserved pages are in use: reserve more or stop their user",
            )
        else:
            status, fix = Status.PASS, ""
        return CheckResult(
            id=rid,
            title=title,
            status=status,
            observed=observed,
            expected=f">= {want} reserved",
            fix=fix,
        )

    def plan(self, host: Host, profile: Profile) -> list[Change]:
        changes: list[Change] = []
        nodes = numa_nodes(host)
        for size, want in self._wanted(profile).items():
            if not want:
                continue
            if profile.hugepages.per_node and len(nodes) > 1:
                targets = {
                    f"/sys/devices/system/node/node{n}/hugepages/{SIZES[size]}/nr_hugepages": w
                    for n, w in _split(want, nodes).items()
                }
            else:
                targets = {f"/sys/kernel/mm/hugepages/{SIZES[size]}/nr_hugepages": want}
            for path, w in targets.items():
                have = _count(host, path)
                if have is not None and have < w:
                    changes.append(SetValue(path=path, old=str(have), new=str(w)))
        return changes
