"""The bpf(2) system call through ctypes: command numbers, ``bpf_attr`` layouts, typed errors.

Every function here is one bpf(2) command. File descriptors returned are owned by the caller
(close them with ``os.close``; ``xdp.maps.Map`` and ``xdp.loader.Program`` do it for you).
Failures raise ``BPFError`` (an ``OSError`` carrying ``errno`` and the command name); a program
the verifier rejects raises ``VerifierError`` whose ``log`` is the verifier's own explanation.

Example::

    import os
    from xdp import asm, bpf

    a = asm.Asm()
    a.mov(asm.R0, 2)  # XDP_PASS
    a.exit()
    fd = bpf.prog_load(bpf.ProgType.XDP, a.assemble(), name="pass_all")
    print(bpf.prog_info(fd).id)
    os.close(fd)
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, cast

#: bpf(2) system call numbers per architecture (asm/unistd.h).
SYSCALL_NUMBERS: Final = {
    "x86_64": 321,
    "aarch64": 280,
    "riscv64": 280,
    "ppc64le": 361,
    "s390x": 351,
    "i686": 357,
    "armv7l": 386,
}

#: Longest object name the kernel keeps (BPF_OBJ_NAME_LEN minus the NUL).
OBJ_NAME_MAX = 15
_OBJ_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
#: Verifier log buffers start here and grow (x4) up to the kernel's limit when it says ENOSPC.
LOG_SIZE_START = 64 * 1024
LOG_SIZE_MAX = 16 * 1024 * 1024
#: PROG_LOAD can fail with EAGAIN when interrupted; like libbpf, retry a few times.
_LOAD_ATTEMPTS = 5


class Cmd(IntEnum):
    """``enum bpf_cmd`` (the subset this package uses)."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    PROG_GET_FD_BY_ID = 13
    OBJ_GET_INFO_BY_FD = 15
    RAW_TRACEPOINT_OPEN = 17


class MapType(IntEnum):
    """``enum bpf_map_type`` (the subset this package uses)."""

    HASH = 1
    ARRAY = 2
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    DEVMAP = 14
    XSKMAP = 17


class ProgType(IntEnum):
    """``enum bpf_prog_type`` (the subset this package uses)."""

    SOCKET_FILTER = 1
    SCHED_CLS = 3
    XDP = 6
    RAW_TRACEPOINT = 17


class UpdateFlag(IntEnum):
    """Flags of BPF_MAP_UPDATE_ELEM."""

    ANY = 0  # create or replace
    NOEXIST = 1  # create only
    EXIST = 2  # replace only


#: MAP_CREATE flag: hash maps allocate entries on demand instead of all up front.
F_NO_PREALLOC = 1

PERCPU_TYPES: Final = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY})


class BPFError(OSError):
    """A bpf(2) command failed: ``errno`` says why, ``command`` which command."""

    def __init__(self, command: Cmd, err: int, detail: str = "", *, what: str = "") -> None:
        message = what or f"bpf({command.name}) failed: {os.strerror(err)}"
        if detail:
            message += f" ({detail})"
        hint = _HINTS.get(err, "")
        if hint:
            message += f"; {hint}"
        super().__init__(err, message)
        self.command = command


class VerifierError(BPFError):
    """The kernel refused a program; ``log`` holds the verifier's explanation."""

    def __init__(self, err: int, name: str, log: str) -> None:
        last = _last_line(log)
        what = f"bpf(PROG_LOAD): the kernel rejected program {name!r} ({os.strerror(err)})"
        super().__init__(Cmd.PROG_LOAD, err, last, what=what)
        self.log = log

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n--- verifier log ---\n{self.log.rstrip()}" if self.log else base


_HINTS: Final = {
    errno.EPERM: "needs root (CAP_BPF with CAP_NET_ADMIN/CAP_PERFMON, or CAP_SYS_ADMIN)",
    errno.ENOSYS: "this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL off)",
}


def _last_line(log: str) -> str:
    """The verifier's final complaint: the last non-empty line not about processing stats."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line and not line.startswith(("processed ", "verification time")):
            return line
    return ""


# --- bpf_attr layouts, one per command group (the kernel accepts a prefix of the union) ---


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
    ]


class _MapElemAttr(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),  # also next_key for GET_NEXT_KEY
        ("flags", ctypes.c_uint64),
    ]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _ObjAttr(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
    ]


class _TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
    ]


class _GetIdAttr(ctypes.Structure):
    _fields_ = [
        ("start_id", ctypes.c_uint32),  # also prog_id for GET_FD_BY_ID
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _RawTracepointAttr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_uint64),
        ("prog_fd", ctypes.c_uint32),
    ]


class _ProgInfo(ctypes.Structure):
    """The head of ``struct bpf_prog_info``; the kernel fills only what fits ``info_len``."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


class _MapInfo(ctypes.Structure):
    """The head of ``struct bpf_map_info``."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


@dataclass(frozen=True)
class ProgInfo:
    """What the kernel reports about a loaded program."""

    id: int
    type: int
    name: str
    tag: str
    map_ids: tuple[int, ...]


@dataclass(frozen=True)
class MapInfo:
    """What the kernel reports about a map."""

    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int


@dataclass(frozen=True)
class TestRun:
    """Result of running a program once in the kernel on a test input (BPF_PROG_TEST_RUN)."""

    retval: int
    data: bytes
    duration_ns: int


# --- the system call ---


@functools.cache
def _syscall() -> Callable[[int, int, int, int], int]:
    fn = ctypes.CDLL(None, use_errno=True)["syscall"]
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
    return cast(Callable[[int, int, int, int], int], fn)


@functools.cache
def syscall_number(machine: str | None = None) -> int:
    """The bpf(2) number for ``machine`` (default: this one); ``OSError`` if unknown."""
    arch = machine or platform.machine()
    try:
        return SYSCALL_NUMBERS[arch]
    except KeyError:
        raise OSError(
            errno.ENOSYS, f"bpf(2): system call number unknown for architecture {arch!r}"
        ) from None


def _raw(cmd: Cmd, attr: ctypes.Structure) -> int:
    """Issue one command; the result, or ``-errno``."""
    ret = _syscall()(syscall_number(), cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
    return ret if ret >= 0 else -ctypes.get_errno()


def sys_bpf(cmd: Cmd, attr: ctypes.Structure, detail: str = "") -> int:
    """Issue one command; its non-negative result, or ``BPFError``."""
    ret = _raw(cmd, attr)
    if ret < 0:
        raise BPFError(cmd, -ret, detail)
    return ret


def _address(buf: ctypes.Array[ctypes.c_char] | None) -> int:
    return 0 if buf is None else ctypes.addressof(buf)


def check_name(name: str) -> bytes:
    """``name`` encoded for the kernel, or ``ValueError`` explaining what it accepts."""
    if len(name) > OBJ_NAME_MAX or not set(name) <= _OBJ_NAME_CHARS:
        raise ValueError(
            f"BPF object name {name!r} must be at most {OBJ_NAME_MAX} characters from [A-Za-z0-9_.]"
        )
    return name.encode()


# --- maps ---


def map_create(
    map_type: MapType | int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    flags: int = 0,
    name: str = "",
) -> int:
    """Create a map; its fd."""
    for what, value in (("key_size", key_size), ("value_size", value_size)):
        if not 0 <= value < 1 << 32:
            raise ValueError(f"map {what} {value} out of range")
    if max_entries <= 0 or max_entries >= 1 << 32:
        raise ValueError(f"map max_entries must be a positive 32-bit number, not {max_entries}")
    attr = _MapCreateAttr(
        map_type=int(map_type),
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=flags,
        map_name=check_name(name),
    )
    detail = f"type {enum_name(MapType, map_type)}, key {key_size} B, value {value_size} B"
    return sys_bpf(Cmd.MAP_CREATE, attr, detail)


def map_lookup(
    fd: int, key: ctypes.Array[ctypes.c_char], value: ctypes.Array[ctypes.c_char]
) -> bool:
    """Copy the value stored under ``key`` into ``value``; False when there is none."""
    attr = _MapElemAttr(map_fd=fd, key=ctypes.addressof(key), value=ctypes.addressof(value))
    ret = _raw(Cmd.MAP_LOOKUP_ELEM, attr)
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise BPFError(Cmd.MAP_LOOKUP_ELEM, -ret)
    return True


def map_update(
    fd: int,
    key: ctypes.Array[ctypes.c_char],
    value: ctypes.Array[ctypes.c_char],
    flags: UpdateFlag | int = UpdateFlag.ANY,
) -> None:
    """Store ``value`` under ``key``."""
    attr = _MapElemAttr(
        map_fd=fd, key=ctypes.addressof(key), value=ctypes.addressof(value), flags=int(flags)
    )
    sys_bpf(Cmd.MAP_UPDATE_ELEM, attr)


def map_delete(fd: int, key: ctypes.Array[ctypes.c_char]) -> bool:
    """Delete ``key``; False when it was not there."""
    ret = _raw(Cmd.MAP_DELETE_ELEM, _MapElemAttr(map_fd=fd, key=ctypes.addressof(key)))
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise BPFError(Cmd.MAP_DELETE_ELEM, -ret)
    return True


def map_next_key(
    fd: int, key: ctypes.Array[ctypes.c_char] | None, next_key: ctypes.Array[ctypes.c_char]
) -> bool:
    """Write the key after ``key`` (the first key when None) into ``next_key``; False at end."""
    attr = _MapElemAttr(map_fd=fd, key=_address(key), value=ctypes.addressof(next_key))
    ret = _raw(Cmd.MAP_GET_NEXT_KEY, attr)
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise BPFError(Cmd.MAP_GET_NEXT_KEY, -ret)
    return True


def map_info(fd: int) -> MapInfo:
    """Type, sizes and id of the map behind ``fd``."""
    info = _MapInfo()
    _get_info(fd, info)
    return MapInfo(
        id=info.id,
        type=info.type,
        name=info.name.decode(errors="replace"),
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        flags=info.map_flags,
    )


# --- programs ---


def prog_load(
    prog_type: ProgType | int,
    insns: bytes,
    *,
    name: str = "",
    license: str = "GPL",
    expected_attach_type: int = 0,
    log_level: int = 0,
) -> int:
    """Load a program; its fd, or ``VerifierError`` with the verifier's log.

    The first attempt runs without a log (``log_level`` 0), which is faster; a rejected
    program is loaded again with ``log_level`` 1 purely to collect the explanation. Pass
    ``log_level`` 2 to get verifier statistics even for accepted programs (see ``prog_load_log``).
    """
    fd, _log = prog_load_log(
        prog_type,
        insns,
        name=name,
        license=license,
        expected_attach_type=expected_attach_type,
        log_level=log_level,
    )
    return fd


def prog_load_log(
    prog_type: ProgType | int,
    insns: bytes,
    *,
    name: str = "",
    license: str = "GPL",
    expected_attach_type: int = 0,
    log_level: int = 0,
) -> tuple[int, str]:
    """Like ``prog_load`` but also returns the verifier log ("" when ``log_level`` is 0)."""
    if not insns or len(insns) % 8:
        raise ValueError(f"program {name!r}: instructions must be a non-empty multiple of 8 bytes")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = _ProgLoadAttr(
        prog_type=int(prog_type),
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(lic),
        prog_name=check_name(name),
        expected_attach_type=expected_attach_type,
    )
    if log_level:
        return _load_with_log(attr, name, log_level)
    ret = _load(attr)
    if ret >= 0:
        return ret, ""
    if ret == -errno.EPERM:
        raise BPFError(Cmd.PROG_LOAD, errno.EPERM, f"program {name!r}")
    # Rejected: load again, this time asking the verifier to explain. (Should the second
    # attempt succeed after all, the failure was transient and the program is kept.)
    fd, _ = _load_with_log(attr, name, 1)
    return fd, ""


def _load(attr: _ProgLoadAttr) -> int:
    ret = -errno.EAGAIN
    for _ in range(_LOAD_ATTEMPTS):
        ret = _raw(Cmd.PROG_LOAD, attr)
        if ret != -errno.EAGAIN:
            break
    return ret


def _load_with_log(attr: _ProgLoadAttr, name: str, log_level: int) -> tuple[int, str]:
    size = LOG_SIZE_START
    while True:
        log = ctypes.create_string_buffer(size)
        attr.log_level, attr.log_size, attr.log_buf = log_level, size, ctypes.addressof(log)
        ret = _load(attr)
        text = log.value.decode(errors="replace")
        if ret >= 0:
            return ret, text
        if ret == -errno.ENOSPC and size < LOG_SIZE_MAX:
            size = min(size * 4, LOG_SIZE_MAX)
            continue
        raise VerifierError(-ret, name, text)


def prog_info(fd: int) -> ProgInfo:
    """Id, type, name, tag and map ids of the program behind ``fd``."""
    info = _ProgInfo()
    _get_info(fd, info)
    count = info.nr_map_ids
    ids = (ctypes.c_uint32 * count)()
    if count:
        # A second call with room for the map ids (the first told us how many).
        info = _ProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids))
        _get_info(fd, info)
    return ProgInfo(
        id=info.id,
        type=info.type,
        name=info.name.decode(errors="replace"),
        tag=bytes(info.tag).hex(),
        map_ids=tuple(ids[: min(count, info.nr_map_ids)]),
    )


def prog_ids() -> list[int]:
    """Ids of every program loaded in the kernel (needs root)."""
    ids: list[int] = []
    attr = _GetIdAttr(start_id=0)
    while True:
        ret = _raw(Cmd.PROG_GET_NEXT_ID, attr)
        if ret == -errno.ENOENT:
            return ids
        if ret < 0:
            raise BPFError(Cmd.PROG_GET_NEXT_ID, -ret)
        ids.append(attr.next_id)
        attr = _GetIdAttr(start_id=attr.next_id)


def prog_fd_by_id(prog_id: int) -> int:
    """An fd on the loaded program ``prog_id``; ``BPFError`` (ENOENT) when it is gone."""
    return sys_bpf(Cmd.PROG_GET_FD_BY_ID, _GetIdAttr(start_id=prog_id), f"program id {prog_id}")


def prog_exists(prog_id: int) -> bool:
    """Whether a program with this id is still loaded in the kernel."""
    ret = _raw(Cmd.PROG_GET_FD_BY_ID, _GetIdAttr(start_id=prog_id))
    if ret >= 0:
        os.close(ret)
        return True
    if ret == -errno.ENOENT:
        return False
    raise BPFError(Cmd.PROG_GET_FD_BY_ID, -ret, f"program id {prog_id}")


def prog_test_run(fd: int, data: bytes, *, repeat: int = 1, out_size: int | None = None) -> TestRun:
    """Run the program in the kernel on ``data`` (a packet for XDP/SCHED_CLS) and report."""
    data_in = ctypes.create_string_buffer(data, len(data))
    size_out = len(data) + 256 if out_size is None else out_size
    data_out = ctypes.create_string_buffer(size_out)
    attr = _TestRunAttr(
        prog_fd=fd,
        data_size_in=len(data),
        data_size_out=size_out,
        data_in=ctypes.addressof(data_in),
        data_out=ctypes.addressof(data_out),
        repeat=repeat,
    )
    sys_bpf(Cmd.PROG_TEST_RUN, attr)
    return TestRun(attr.retval, data_out.raw[: attr.data_size_out], attr.duration)


def raw_tracepoint_open(name: str, prog_fd: int) -> int:
    """Attach a RAW_TRACEPOINT program to tracepoint ``name``; closing the fd detaches it."""
    tp = ctypes.create_string_buffer(name.encode())
    attr = _RawTracepointAttr(name=ctypes.addressof(tp), prog_fd=prog_fd)
    return sys_bpf(Cmd.RAW_TRACEPOINT_OPEN, attr, f"tracepoint {name!r}")


# --- pinning ---


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    """Pin the map or program behind ``fd`` at ``path`` (a new file on a bpf filesystem)."""
    where = os.fspath(path)
    buf = ctypes.create_string_buffer(os.fsencode(where))
    sys_bpf(Cmd.OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(buf), bpf_fd=fd), where)


def obj_get(path: str | os.PathLike[str]) -> int:
    """An fd on the object pinned at ``path``."""
    where = os.fspath(path)
    buf = ctypes.create_string_buffer(os.fsencode(where))
    return sys_bpf(Cmd.OBJ_GET, _ObjAttr(pathname=ctypes.addressof(buf)), where)


# --- helpers ---


def _get_info(fd: int, info: ctypes.Structure) -> None:
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    sys_bpf(Cmd.OBJ_GET_INFO_BY_FD, attr, f"fd {fd}")


def enum_name(enum: type[IntEnum], value: int) -> str:
    """``enum(value).name``, or the number when this module does not know the value."""
    try:
        return enum(value).name
    except ValueError:
        return str(int(value))


@functools.cache
def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """How many CPUs per-CPU maps hold a value for (the kernel's ``num_possible_cpus``)."""
    with open(path) as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += (int(hi) if hi else int(lo)) - int(lo) + 1
    return count


__all__ = [
    "F_NO_PREALLOC",
    "PERCPU_TYPES",
    "BPFError",
    "Cmd",
    "MapInfo",
    "MapType",
    "ProgInfo",
    "ProgType",
    "TestRun",
    "UpdateFlag",
    "VerifierError",
    "check_name",
    "enum_name",
    "map_create",
    "map_delete",
    "map_info",
    "map_lookup",
    "map_next_key",
    "map_update",
    "obj_get",
    "obj_pin",
    "possible_cpus",
    "prog_exists",
    "prog_fd_by_id",
    "prog_ids",
    "prog_info",
    "prog_load",
    "prog_load_log",
    "prog_test_run",
    "raw_tracepoint_open",
    "sys_bpf",
    "syscall_number",
]
