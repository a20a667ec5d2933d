"""Explicit huge pages (2 MiB and 1 GiB), in total and per NUMA node."""

from __future__ import annotations

from hosttune import cpulist
from hosttune.change import Change, SetValue
from hosttune.cpus import numa_nodes
from hosttune.host import Host, HostError
from hosttune.knobs.base import Knob
from hosttune.profile import Profile
from hosttune.result import CheckResult, Status, skip

SIZES = {"2M": "hugepages-2048kB", "1G": "hugepages-1048576kB"}


def _count(host: Host, path: str) -> int | None:
    """A page counter; None when the file is absent, HostError naming it when garbled."""
    text = host.read_opt(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as e:
        raise HostError(f"{path} holds {text.strip()!r}, not a page count") from e


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
        try:
            nodes = numa_nodes(host)
        except cpulist.CpuListError as e:
            rows.append(skip("hugepages.nodes", "NUMA nodes", f"per-node split not checked: {e}"))
            nodes = []
        for size, want in self._wanted(profile).items():
            rid, title = f"hugepages.{size}", f"{size} huge pages"
            base = f"/sys/kernel/mm/hugepages/{SIZES[size]}"
            if not host.exists(f"{base}/nr_hugepages"):
                why = (
                    "kernel or CPU does not offer this page size"
                    if want
                    else "not offered (not needed)"
                )
                rows.append(skip(rid, title, why, f">= {want}"))
                continue
            rows.append(self._row(host, rid, title, base, want))
            if profile.hugepages.per_node and len(nodes) > 1 and want:
                for node, n_want in _split(want, nodes).items():
                    nb = f"/sys/devices/system/node/node{node}/hugepages/{SIZES[size]}"
                    rows.append(
                        self._row(host, f"{rid}.node{node}", f"{title} node {node}", nb, n_want)
                    )
        return rows

    @staticmethod
    def _row(host: Host, rid: str, title: str, base: str, want: int) -> CheckResult:
        path = f"{base}/nr_hugepages"
        try:
            total, free = _count(host, path), _count(host, f"{base}/free_hugepages")
        except HostError as e:
            return skip(rid, title, str(e), f">= {want} reserved")
        if total is None:
            return skip(rid, title, f"no counters in {base}", f">= {want} reserved")
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
        try:
            nodes = numa_nodes(host)
        except cpulist.CpuListError:
            nodes = []  # unknown layout: reserve the total and let the kernel spread it
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
                try:
                    have = _count(host, path)
                except HostError:
                    continue  # a value we cannot read is a value we could not restore
                if have is not None and have < w:
                    changes.append(SetValue(path=path, old=str(have), new=str(w)))
        return changes
