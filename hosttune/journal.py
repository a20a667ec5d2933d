"""The apply journal: every change is recorded (old, new, time) before it is made.

Stored as JSON under the host root so ``revert`` can undo exactly what ``apply`` did, across
processes and reboots. Entries are appended; revert walks them newest-first and then removes the
journal, which makes a second revert a no-op.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hosttune.change import Change
from hosttune.host import Host, HostError

DEFAULT_PATH = "/var/lib/hosttune/journal.json"


@dataclass(frozen=True)
class Entry:
    knob: str
    change: Change
    time_ns: int

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "time_ns": self.time_ns, "change": self.change.to_json()}


class Journal:
    def __init__(self, host: Host, path: str = DEFAULT_PATH) -> None:
        self.host = host
        self.path = path

    def entries(self) -> list[Entry]:
        text = self.host.read_opt(self.path)
        if text is None:
            return []
        try:
            raw = json.loads(text)
            return [
                Entry(knob=e["knob"], change=Change.from_json(e["change"]), time_ns=e["time_ns"])
                for e in raw["entries"]
            ]
        except (ValueError, KeyError, TypeError) as e:
            raise HostError(
                f"journal {self.path} is damaged ({e}); nothing was reverted. Inspect it, fix or "
                "remove it by hand"
            ) from e

    def record(self, knob: str, change: Change) -> None:
        """Append one entry and flush it to disk before the change is made."""
        entries = self.entries()
        entries.append(Entry(knob=knob, change=change, time_ns=time.time_ns()))
        self._save(entries)

    def forget_last(self) -> None:
        """Drop the newest entry: its change was refused, so there is nothing to undo."""
        self.replace(self.entries()[:-1])

    def replace(self, entries: list[Entry]) -> None:
        if entries:
            self._save(entries)
        else:
            self.host.remove(self.path)

    def _save(self, entries: list[Entry]) -> None:
        doc = {"version": 1, "entries": [e.to_json() for e in entries]}
        self.host.write(self.path, json.dumps(doc, indent=1) + "\n")
