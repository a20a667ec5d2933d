"""Journaled changes: each knows how to do itself and how to undo itself exactly.

A knob's ``plan`` returns these; ``apply`` journals each one (old value, new value, time) before
doing it and ``revert`` undoes them in reverse order. Dry-run prints the same plan, so "what would
change" and "what changes" are one code path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from hosttune.host import Host, HostError


class Change(ABC):
    kind: ClassVar[str]
    #: True when the change acts on the running kernel (``--runtime-only`` keeps just these).
    runtime: ClassVar[bool] = False
    _kinds: ClassVar[dict[str, type[Change]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "kind" in cls.__dict__:
            Change._kinds[cls.kind] = cls

    @abstractmethod
    def do(self, host: Host) -> None: ...

    @abstractmethod
    def undo(self, host: Host) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...

    def needs_reboot(self) -> bool:
        return False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}  # type: ignore[call-overload]

    @staticmethod
    def from_json(d: dict[str, Any]) -> Change:
        try:
            cls = Change._kinds[d["kind"]]
        except KeyError as e:
            raise ValueError(f"journal entry has unknown change kind {d.get('kind')!r}") from e
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class SetValue(Change):
    """Write one kernel value (procfs/sysfs); undo writes the old one back."""

    kind: ClassVar[str] = "set-value"
    runtime: ClassVar[bool] = True
    path: str
    old: str
    new: str

    def do(self, host: Host) -> None:
        host.write(self.path, self.new)

    def undo(self, host: Host) -> None:
        host.write(self.path, self.old)

    def describe(self) -> str:
        return f"write {self.path}: {self.old.strip()!r} -> {self.new.strip()!r}"


@dataclass(frozen=True)
class WriteFile(Change):
    """Create or replace a config file; undo restores the old content or removes the file."""

    kind: ClassVar[str] = "write-file"
    path: str
    new: str
    old: str | None  # None: the file did not exist, so undo removes it
    reboot: bool = False  # the file only takes effect at the next boot (grub drop-in)
    # Run after writing and after restoring (update-grub), so do and undo stay one step each
    # and revert's newest-first order can't run the command before the file is back.
    then_run: list[str] | None = None
    # Directories the write creates (outermost first), removed again by undo when empty.
    made_dirs: list[str] = field(default_factory=list)

    @classmethod
    def replacing(
        cls,
        host: Host,
        path: str,
        new: str,
        *,
        reboot: bool = False,
        then_run: list[str] | None = None,
    ) -> WriteFile | None:
        """The change that makes ``path`` hold ``new``; None when it already does, or when the
        file exists but cannot be read (then no exact undo would be possible)."""
        old = host.read_opt(path)
        if old == new or (old is None and host.exists(path)):
            return None
        missing: list[str] = []
        parent = path.rsplit("/", 1)[0]
        while parent and not host.exists(parent):
            missing.insert(0, parent)
            parent = parent.rsplit("/", 1)[0]
        return cls(path=path, new=new, old=old, reboot=reboot, then_run=then_run, made_dirs=missing)

    def needs_reboot(self) -> bool:
        return self.reboot

    def do(self, host: Host) -> None:
        host.write(self.path, self.new)
        self._then(host)

    def undo(self, host: Host) -> None:
        if self.old is None:
            host.remove(self.path)
            for d in reversed(self.made_dirs):
                host.remove_empty_dir(d)
        else:
            host.write(self.path, self.old)
        self._then(host)

    def _then(self, host: Host) -> None:
        # Only on the live root: on an image the bootloader config is generated at its install.
        if not self.then_run or not (host.is_live and host.allow_commands):
            return
        rc, out = host.run(self.then_run)
        if rc != 0:
            raise HostError(f"{' '.join(self.then_run)} failed ({rc}): {out[-300:]}")

    def describe(self) -> str:
        verb = "create" if self.old is None else "rewrite"
        return f"{verb} {self.path}"
