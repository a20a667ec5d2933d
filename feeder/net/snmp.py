"""Kernel protocol counters from ``/proc/net/snmp``: parse, snapshot, diff.

The file holds pairs of lines per protocol, a header naming the counters and a line of values::

    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors ...
    Udp: 1042 0 3 998 3 0 0 ...

The counters belong to a network namespace: ``/proc/net`` shows the namespace of the reading
process's main thread, ``/proc/<pid>/net/snmp`` that of process ``pid``, and
``/proc/thread-self/net/snmp`` the calling thread's. ``read_snmp_in(name)`` reads namespace
``name`` by stepping this thread into it for the read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from feeder.net.netns import entered

#: A snapshot: protocol ("Udp", "Ip", ...) -> counter name -> value.
Snapshot = dict[str, dict[str, int]]

DEFAULT_PATH = Path("/proc/net/snmp")
#: The calling thread's namespace (``/proc/self/net`` would follow the main thread).
THREAD_PATH = Path("/proc/thread-self/net/snmp")
#: The UDP counters that reveal loss (receive/send buffer overflow, bad checksums, no listener).
UDP_LOSS_COUNTERS = ("RcvbufErrors", "SndbufErrors", "InErrors", "InCsumErrors", "NoPorts")


class SnmpFormatError(ValueError):
    """The file does not have the header/values line pairs of /proc/net/snmp."""


def parse_snmp(text: str, source: str = "<text>") -> Snapshot:
    """Parse the contents of a ``/proc/net/snmp`` file."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise SnmpFormatError(f"{source}: odd number of lines; expected header/value pairs")
    snapshot: Snapshot = {}
    for i in range(0, len(lines), 2):
        header, values = lines[i], lines[i + 1]
        proto, sep, names = header.partition(":")
        vproto, vsep, numbers = values.partition(":")
        where = f"{source}:{i + 1}"
        if not sep or not vsep or proto != vproto:
            raise SnmpFormatError(f"{where}: expected two '{proto}:' lines, got {values!r}")
        keys, raw = names.split(), numbers.split()
        if len(keys) != len(raw):
            raise SnmpFormatError(
                f"{where}: {proto} has {len(keys)} counter names but {len(raw)} values"
            )
        try:
            snapshot[proto.strip()] = {k: int(v) for k, v in zip(keys, raw, strict=True)}
        except ValueError:
            raise SnmpFormatError(f"{where}: {proto} has a non-integer value") from None
    return snapshot


def read_snmp(path: Path | str = DEFAULT_PATH) -> Snapshot:
    """Parse an snmp file (``/proc/net/snmp``, ``/proc/<pid>/net/snmp``, or a saved copy)."""
    path = Path(path)
    return parse_snmp(path.read_text(), str(path))


def read_snmp_of_pid(pid: int) -> Snapshot:
    """Counters of the network namespace process ``pid`` is in."""
    return read_snmp(Path(f"/proc/{pid}/net/snmp"))


def read_snmp_in(netns: str) -> Snapshot:
    """Counters of the named network namespace (read from a thread stepped into it)."""
    with entered(netns):
        return read_snmp(THREAD_PATH)


def diff(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]
) -> Snapshot:
    """``after - before`` for every counter present in both (missing ones are left out)."""
    return {
        proto: {
            name: value - before[proto][name]
            for name, value in counters.items()
            if name in before[proto]
        }
        for proto, counters in after.items()
        if proto in before
    }


def udp_losses(delta: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The nonzero UDP loss counters of a ``diff`` (empty when nothing was lost)."""
    udp = delta.get("Udp", {})
    return {name: udp[name] for name in UDP_LOSS_COUNTERS if udp.get(name)}
