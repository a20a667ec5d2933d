"""A minimal reader of the kernel's BTF (/sys/kernel/btf/vmlinux): the facts tracing needs.

BTF describes every type of the running kernel. Tracing programs written in assembly need a
few of them that change between kernel versions: the value names of an enum (drop reasons),
the byte offset of a struct member (``sock.__sk_common.skc_cookie``) and the arguments of a
raw tracepoint (``btf_trace_kfree_skb``). Only what those lookups need is decoded.

Example::

    btf = vmlinux()
    reasons = btf.enum("skb_drop_reason")           # {2: "SKB_DROP_REASON_NOT_SPECIFIED", ...}
    off = btf.member_offset("sock", "__sk_common.skc_cookie")
    args = btf.tracepoint_args("kfree_skb")         # [("", "struct sk_buff *"), ...]
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Final

VMLINUX: Final = Path("/sys/kernel/btf/vmlinux")
_MAGIC: Final = 0xEB9F

_HEADER = struct.Struct("=HBBIIIII")  # magic version flags hdr_len type_off type_len str_off ...
_TYPE = struct.Struct("=III")  # name_off info size|type
_MEMBER = struct.Struct("=III")  # name_off type offset
_ENUM = struct.Struct("=Ii")  # name_off val
_ENUM64 = struct.Struct("=IIi")  # name_off val_lo32 val_hi32
_PARAM = struct.Struct("=II")  # name_off type


class Kind(IntEnum):
    """BTF_KIND_* values."""

    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# Bytes following the fixed 12-byte header: (fixed extra, extra per vlen item).
_EXTRA: Final[dict[int, tuple[int, int]]] = {
    Kind.INT: (4, 0),
    Kind.ARRAY: (12, 0),
    Kind.STRUCT: (0, 12),
    Kind.UNION: (0, 12),
    Kind.ENUM: (0, 8),
    Kind.FUNC_PROTO: (0, 8),
    Kind.VAR: (4, 0),
    Kind.DATASEC: (0, 12),
    Kind.DECL_TAG: (4, 0),
    Kind.ENUM64: (0, 12),
}
_MODIFIERS: Final = frozenset(
    {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}
)


class BtfError(LookupError):
    """The BTF lacks what was asked for, or cannot be read."""


@dataclass(frozen=True, slots=True)
class BtfType:
    """One type record: where its extra data starts in the type section."""

    id: int
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    size_or_type: int
    extra: int  # offset of the first byte after the 12-byte header


class Btf:
    """Parsed type and string sections of one BTF blob."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < _HEADER.size:
            raise BtfError("BTF blob too short for its header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HEADER.unpack_from(blob)
        )
        if magic != _MAGIC:
            raise BtfError(f"not BTF (magic {magic:#x}, expected {_MAGIC:#x})")
        self._types = blob[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strings = blob[hdr_len + str_off : hdr_len + str_off + str_len]
        self._records: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]  # id 0 is void
        self._by_name: dict[str, list[int]] = {}
        self._index()

    def _index(self) -> None:
        data, pos, end = self._types, 0, len(self._types)
        records, by_name = self._records, self._by_name
        while pos < end:
            name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            fixed, per_item = _EXTRA.get(kind, (0, 0))
            records.append((pos, name_off, info, size_or_type))
            if name_off:
                by_name.setdefault(self._string(name_off), []).append(len(records) - 1)
            pos += _TYPE.size + fixed + per_item * vlen

    def _string(self, offset: int) -> str:
        end = self._strings.index(b"\0", offset)
        return self._strings[offset:end].decode()

    def type(self, type_id: int) -> BtfType:
        """The record of ``type_id``."""
        if not 0 < type_id < len(self._records):
            raise BtfError(f"BTF has no type id {type_id}")
        pos, name_off, info, size_or_type = self._records[type_id]
        return BtfType(
            id=type_id,
            kind=(info >> 24) & 0x1F,
            name=self._string(name_off) if name_off else "",
            vlen=info & 0xFFFF,
            kind_flag=bool(info >> 31),
            size_or_type=size_or_type,
            extra=pos + _TYPE.size,
        )

    def find(self, name: str, kind: Kind) -> BtfType:
        """The first type called ``name`` of ``kind``."""
        for type_id in self._by_name.get(name, ()):
            t = self.type(type_id)
            if t.kind == kind:
                return t
        raise BtfError(f"kernel BTF has no {kind.name.lower()} named {name!r}")

    def resolve(self, type_id: int) -> BtfType | None:
        """``type_id`` with typedefs and qualifiers stripped (None for void)."""
        while type_id:
            t = self.type(type_id)
            if t.kind not in _MODIFIERS:
                return t
            type_id = t.size_or_type
        return None

    # --- enums ---

    def enum(self, name: str) -> dict[int, str]:
        """Value -> name of every enumerator of ``enum name`` (ENUM or ENUM64)."""
        for kind in (Kind.ENUM, Kind.ENUM64):
            try:
                t = self.find(name, kind)
            except BtfError:
                continue
            return dict(self._enumerators(t))
        raise BtfError(f"kernel BTF has no enum named {name!r}")

    def _enumerators(self, t: BtfType) -> Iterator[tuple[int, str]]:
        for i in range(t.vlen):
            if t.kind == Kind.ENUM:
                name_off, value = _ENUM.unpack_from(self._types, t.extra + i * _ENUM.size)
            else:
                name_off, lo, hi = _ENUM64.unpack_from(self._types, t.extra + i * _ENUM64.size)
                value = (hi << 32) | lo
            yield value, self._string(name_off)

    # --- structs ---

    def members(self, t: BtfType) -> Iterator[tuple[str, int, int]]:
        """``(name, type id, bit offset)`` of each member of a struct or union."""
        if t.kind not in (Kind.STRUCT, Kind.UNION):
            raise BtfError(f"BTF type {t.name!r} is not a struct or union")
        for i in range(t.vlen):
            name_off, type_id, offset = _MEMBER.unpack_from(self._types, t.extra + i * 12)
            bits = offset & 0xFFFFFF if t.kind_flag else offset
            yield (self._string(name_off) if name_off else ""), type_id, bits

    def _member_bits(self, t: BtfType, name: str) -> tuple[int, int] | None:
        """Bit offset and type of member ``name``, searching anonymous members too."""
        for member, type_id, bits in self.members(t):
            if member == name:
                return bits, type_id
            if not member:
                inner = self.resolve(type_id)
                if inner is not None and inner.kind in (Kind.STRUCT, Kind.UNION):
                    found = self._member_bits(inner, name)
                    if found is not None:
                        return bits + found[0], found[1]
        return None

    def member_offset(self, struct_name: str, path: str) -> int:
        """Byte offset of ``path`` (dotted member names) inside ``struct struct_name``."""
        t: BtfType | None = self.find(struct_name, Kind.STRUCT)
        total = 0
        for name in path.split("."):
            if t is None or t.kind not in (Kind.STRUCT, Kind.UNION):
                raise BtfError(f"{struct_name}.{path}: {name!r} is not inside a struct")
            found = self._member_bits(t, name)
            if found is None:
                raise BtfError(f"kernel struct {struct_name} has no member {path!r}")
            bits, type_id = found
            if bits % 8:
                raise BtfError(f"{struct_name}.{path} is a bitfield")
            total += bits // 8
            t = self.resolve(type_id)
        return total

    # --- tracepoints ---

    def tracepoint_args(self, tracepoint: str) -> list[tuple[str, str]]:
        """``(name, C type)`` of each argument a raw tracepoint program sees in ``ctx[i]``.

        Names are usually empty: vmlinux BTF does not keep tracepoint parameter names.
        """
        typedef = self.find(f"btf_trace_{tracepoint}", Kind.TYPEDEF)
        ptr = self.type(typedef.size_or_type)
        proto = self.type(ptr.size_or_type) if ptr.kind == Kind.PTR else ptr
        if proto.kind != Kind.FUNC_PROTO:
            raise BtfError(f"btf_trace_{tracepoint} is not a function pointer")
        params = [
            _PARAM.unpack_from(self._types, proto.extra + i * _PARAM.size)
            for i in range(proto.vlen)
        ]
        # The first parameter is the tracepoint's private ``void *__data``, not in ctx.
        return [
            (self._string(name_off) if name_off else "", self.describe(type_id))
            for name_off, type_id in params[1:]
        ]

    def describe(self, type_id: int) -> str:
        """A short C spelling of a type (``struct sock *``, ``enum skb_drop_reason``)."""
        if type_id == 0:
            return "void"
        t = self.type(type_id)
        if t.kind == Kind.PTR:
            return self.describe(t.size_or_type) + " *"
        if t.kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG):
            return self.describe(t.size_or_type)
        prefix = {
            Kind.STRUCT: "struct ",
            Kind.UNION: "union ",
            Kind.ENUM: "enum ",
            Kind.ENUM64: "enum ",
            Kind.FWD: "struct ",
        }.get(Kind(t.kind), "")
        return prefix + (t.name or "<anonymous>")


@functools.cache
def vmlinux(path: Path = VMLINUX) -> Btf:
    """The running kernel's BTF, parsed once per process."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BtfError(
            f"cannot read kernel BTF at {path}: {exc.strerror} (needs CONFIG_DEBUG_INFO_BTF)"
        ) from None
    return Btf(blob)


__all__ = ["VMLINUX", "Btf", "BtfError", "BtfType", "Kind", "vmlinux"]
