"""Faults the simulator can inject, each one named for the command line and the report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FaultKind(Enum):
    DROP_CONNECTION = "drop_connection"  # close every client connection once
    SKIP_SEQUENCE = "skip_sequence"  # one book update is not sent: a sequence gap
    CORRUPT_CHECKSUM = "corrupt_checksum"  # one book update carries a wrong checksum
    MALFORMED = "malformed"  # a frame that is not valid JSON / not the exchange's format
    STALL = "stall"  # send nothing for a while, connection kept open
    DOWN = "down"  # close every connection and refuse new ones for a while (an outage)
    BURST = "burst"  # many updates at once


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    after_events: int = 200  # fire after this many market events on the exchange
    seconds: float = 2.0  # stall length
    count: int = 500  # burst size

    @staticmethod
    def parse(spec: str) -> Fault:
        """``skip_sequence``, ``stall@300`` (after 300 events), ``down@300/4`` (for 4 s)."""
        spec, _, secs = spec.partition("/")
        name, _, at = spec.partition("@")
        try:
            kind = FaultKind(name)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {name!r} (known: {known})") from None
        if at and not at.isdigit():
            raise ValueError(f"fault {spec!r}: the part after @ is an event count")
        try:
            seconds = float(secs) if secs else 2.0
        except ValueError:
            raise ValueError(f"fault {spec!r}: the part after / is a number of seconds") from None
        return Fault(kind, int(at) if at else 200, seconds=seconds)
