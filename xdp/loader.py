"""Loading programs (through bcc when it works here, else bpf(2) via ctypes) and XDP attach.

``load(spec)`` turns a ``programs.ProgramSpec`` into a loaded ``Program``. With ``use="auto"``
it compiles the spec's C source with bcc when ``bcc_status()`` says bcc can compile on this
host (the module imports *and* kernel headers are found *and* a trial program compiles), and
otherwise loads the spec's assembled instructions with bpf(2). ``Program.via`` and
``Program.why`` say which path was taken and why.

Attaching uses rtnetlink (pyroute2): ``attach(ifindex, fd)`` tries native (driver) mode and
falls back to generic (skb) mode; ``attached(...)`` is a context manager that always detaches,
also on exceptions and Ctrl-C. A program attached this way stays attached if the process is
killed outright (SIGKILL): call ``detach(ifindex, mode)`` to clean up after a crash. Every
netlink call works in the *calling thread's* network namespace.

Example::

    from xdp import loader, programs
    from xdp.maps import Map
    from xdp.bpf import MapType

    with Map.create(MapType.XSKMAP, 4, 4, 64) as xsks:
        with loader.load(programs.xsk_redirect(xsks.fd)) as prog:
            print(prog.via, prog.why)
            with loader.attached(ifindex, prog.fd) as mode:   # AttachMode.NATIVE or GENERIC
                assert loader.attached_programs(ifindex) == {mode: prog.id}
        assert loader.attached_programs(ifindex) == {}
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import platform
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Final, Literal, Self

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from xdp import bpf
from xdp.programs import ProgramSpec

log = logging.getLogger(__name__)

Via = Literal["bcc", "ctypes"]
Use = Literal["auto", "bcc", "ctypes"]

#: Where Debian's python3-bpfcc installs the bcc module (outside any virtualenv).
SYSTEM_DIST_PACKAGES: Final = Path("/usr/lib/python3/dist-packages")
#: A program bcc must be able to compile before we trust it with ours.
_BCC_PROBE_C: Final = "int mdt_probe(struct xdp_md *ctx) { return XDP_PASS; }\n"

# XDP_FLAGS_* from linux/if_link.h.
XDP_FLAGS_UPDATE_IF_NOEXIST: Final = 1
XDP_FLAGS_SKB_MODE: Final = 2
XDP_FLAGS_DRV_MODE: Final = 4
XDP_FLAGS_REPLACE: Final = 16


class LoaderError(RuntimeError):
    """A program could not be loaded by the requested path (the message says why)."""


# --- bcc detection ---


@dataclass(frozen=True)
class BccStatus:
    """Whether bcc can compile programs here; ``reason`` explains either answer."""

    usable: bool
    reason: str


def _kernel_headers(release: str, environ: dict[str, str]) -> str | None:
    """Where bcc would find kernel headers, or None (same search order as bcc)."""
    source = environ.get("BCC_KERNEL_SOURCE")
    if source:
        return source if Path(source).is_dir() else None
    for sub in ("build", "source"):
        tree = Path("/lib/modules") / release / sub
        if tree.is_dir():
            return str(tree)
    kheaders = Path("/sys/kernel/kheaders.tar.xz")
    return str(kheaders) if kheaders.exists() else None


def _import_bcc() -> ModuleType:
    return importlib.import_module("bcc")


def probe_bcc(
    import_bcc: Callable[[], ModuleType] = _import_bcc,
    release: str | None = None,
    environ: dict[str, str] | None = None,
) -> BccStatus:
    """Check, in order: bcc imports, kernel headers exist, a trial program compiles."""
    release = release or platform.release()
    env = dict(os.environ) if environ is None else environ
    try:
        bcc = import_bcc()
    except ImportError as exc:
        if (SYSTEM_DIST_PACKAGES / "bcc").is_dir() and str(SYSTEM_DIST_PACKAGES) not in sys.path:
            return BccStatus(
                False,
                f"bcc is installed for the system Python ({SYSTEM_DIST_PACKAGES}/bcc) but this "
                f"interpreter ({sys.executable}) cannot import it: create the virtualenv with "
                "--system-site-packages or add that directory to PYTHONPATH",
            )
        return BccStatus(
            False, f"the bcc Python module is not installed ({exc}); apt-get install python3-bpfcc"
        )
    headers = _kernel_headers(release, env)
    if headers is None:
        where = (
            f"BCC_KERNEL_SOURCE={env['BCC_KERNEL_SOURCE']} is not a directory"
            if env.get("BCC_KERNEL_SOURCE")
            else f"no /lib/modules/{release}/build or /source, no BCC_KERNEL_SOURCE and no "
            "/sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS)"
        )
        return BccStatus(
            False,
            f"bcc imports but cannot compile: no kernel headers for {release} ({where}); install "
            f"linux-headers-{release} or point BCC_KERNEL_SOURCE at a headers tree",
        )
    with _output_captured() as compiler_output:
        try:
            b = bcc.BPF(text=_BCC_PROBE_C.encode())
            try:
                b.load_func(b"mdt_probe", int(bpf.ProgType.XDP))
            finally:
                b.cleanup()
        except Exception as exc:  # bcc raises bare Exception on compile errors
            failure = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        else:
            failure = ""
    if failure:
        errors = [line.strip() for line in compiler_output() if "error:" in line]
        detail = f" ({errors[0]})" if errors else ""
        return BccStatus(
            False, f"bcc found headers at {headers} but a trial compile failed: {failure}{detail}"
        )
    return BccStatus(
        True, f"bcc {getattr(bcc, '__version__', '?')} compiles with headers at {headers}"
    )


@contextlib.contextmanager
def _output_captured() -> Iterator[Callable[[], list[str]]]:
    """Send fds 1 and 2 to a temporary file for the body (bcc and the clang inside it print
    there directly). Yields a function returning the captured lines once the body is done.
    Process-wide while active: only the one-off bcc probe uses it.
    """
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(capture.fileno(), 1)
            os.dup2(capture.fileno(), 2)
            yield lambda: lines
        finally:
            for fd, original in zip((1, 2), saved, strict=True):
                os.dup2(original, fd)
                os.close(original)
            capture.seek(0)
            lines.extend(capture.read().decode(errors="replace").splitlines())


@functools.cache
def bcc_status() -> BccStatus:
    """``probe_bcc()`` for this process, computed once (a trial compile takes ~1 s)."""
    return probe_bcc()


# --- loaded programs ---


class Program:
    """A loaded program (owns its fd; closed by ``close()``, ``with`` or garbage collection)."""

    def __init__(self, fd: int, spec: ProgramSpec, via: Via, why: str) -> None:
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)
        self.spec = spec
        self.via: Via = via
        self.why = why
        self.id = bpf.prog_info(fd).id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fd(self) -> int:
        if not self._finalizer.alive:
            raise ValueError(f"program {self.name!r} is closed")
        return self._fd

    def close(self) -> None:
        """Close the fd (idempotent); the kernel unloads the program once nothing uses it."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Program({self.name!r}, id={self.id}, via={self.via})"


def load_ctypes(spec: ProgramSpec) -> int:
    """Load ``spec.insns`` with bpf(2); the program fd (``VerifierError`` carries the log)."""
    return bpf.prog_load(spec.prog_type, spec.insns, name=spec.name, license=spec.license)


def load_bcc(spec: ProgramSpec, import_bcc: Callable[[], ModuleType] = _import_bcc) -> int:
    """Compile ``spec.c_source`` with bcc and load its function ``spec.name``; the fd."""
    bcc = import_bcc()
    b: Any = bcc.BPF(text=spec.c_source.encode())
    try:
        fn = b.load_func(spec.name.encode(), int(spec.prog_type))
        return os.dup(fn.fd)  # ours to keep; bcc closes its own on cleanup
    finally:
        b.cleanup()


def load(spec: ProgramSpec, *, use: Use = "auto", status: BccStatus | None = None) -> Program:
    """Load ``spec`` via bcc or ctypes (``use``); ``Program.via``/``why`` record the choice."""
    if use not in ("auto", "bcc", "ctypes"):
        raise ValueError(f"use must be 'auto', 'bcc' or 'ctypes', not {use!r}")
    if use == "ctypes":
        return Program(load_ctypes(spec), spec, "ctypes", "ctypes loader requested")
    bcc = status or bcc_status()
    if not bcc.usable:
        if use == "bcc":
            raise LoaderError(f"cannot load {spec.name!r} through bcc: {bcc.reason}")
        return Program(load_ctypes(spec), spec, "ctypes", f"bcc unusable: {bcc.reason}")
    try:
        return Program(load_bcc(spec), spec, "bcc", bcc.reason)
    except Exception as exc:
        if use == "bcc":
            raise LoaderError(f"bcc failed to load {spec.name!r}: {exc}") from exc
        why = f"bcc failed on {spec.name!r} ({str(exc).strip()[:200]}); used the ctypes loader"
        log.warning("%s", why)
        return Program(load_ctypes(spec), spec, "ctypes", why)


# --- XDP attach / detach over rtnetlink ---


class AttachMode(Enum):
    """How an XDP program is attached to a link."""

    AUTO = "auto"  # native, else generic (only as a request)
    NATIVE = "native"  # in the driver (XDP_FLAGS_DRV_MODE)
    GENERIC = "generic"  # after skb allocation, any driver (XDP_FLAGS_SKB_MODE)

    @property
    def flags(self) -> int:
        return {AttachMode.NATIVE: XDP_FLAGS_DRV_MODE, AttachMode.GENERIC: XDP_FLAGS_SKB_MODE}[self]


class XdpAttachError(OSError):
    """An XDP attach or detach failed; the message names the link, mode and reason."""


def _ipr() -> IPRoute:
    # ext_ack: the kernel's explanation ("native and generic XDP can't be active at the same
    # time", "underlying driver does not support XDP in native mode") lands in the error.
    return IPRoute(ext_ack=True)


def _link_name(ipr: IPRoute, ifindex: int) -> str:
    try:
        return str(ipr.get_links(ifindex)[0].get_attr("IFLA_IFNAME"))
    except NetlinkError:
        return "?"


def _set_xdp(ipr: IPRoute, ifindex: int, attrs: list[tuple[str, int]]) -> None:
    ipr.link("set", index=ifindex, xdp={"attrs": attrs})


def _explain(exc: NetlinkError, action: str, ifindex: int, name: str, mode: AttachMode) -> str:
    reason = os.strerror(exc.code)
    detail = str(exc.args[1]) if len(exc.args) > 1 and exc.args[1] else ""
    if detail and detail.rstrip(".").lower() != reason.lower():
        reason += f": {detail.rstrip('.')}"
    return f"{action} XDP on {name} (ifindex {ifindex}) in {mode.value} mode: {reason}"


def _mode(mode: AttachMode | str) -> AttachMode:
    try:
        return AttachMode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in AttachMode)
        raise ValueError(f"XDP attach mode must be one of {choices}, not {mode!r}") from None


def attach(
    ifindex: int,
    prog_fd: int,
    mode: AttachMode | str = AttachMode.AUTO,
    *,
    replace: bool = False,
) -> AttachMode:
    """Attach ``prog_fd`` to link ``ifindex``; the mode used (AUTO: native, else generic).

    Without ``replace`` an existing program on the link is never replaced (the attach fails
    with a clear error instead).
    """
    mode = _mode(mode)
    tries = [AttachMode.NATIVE, AttachMode.GENERIC] if mode is AttachMode.AUTO else [mode]
    failures: list[str] = []
    code = 0
    with _ipr() as ipr:
        name = _link_name(ipr, ifindex)
        for candidate in tries:
            flags = candidate.flags | (0 if replace else XDP_FLAGS_UPDATE_IF_NOEXIST)
            try:
                _set_xdp(ipr, ifindex, [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", flags)])
            except NetlinkError as exc:
                failures.append(_explain(exc, "cannot attach", ifindex, name, candidate))
                code = exc.code
                continue
            if failures:
                log.info("%s; attached in %s mode instead", failures[-1], candidate.value)
            return candidate
    raise XdpAttachError(code, "; ".join(failures))


def detach(ifindex: int, mode: AttachMode | str, *, expected_fd: int | None = None) -> None:
    """Remove the ``mode`` XDP program of ``ifindex`` (no error when there is none).

    With ``expected_fd`` only that program is removed: if another one took its place, the
    kernel refuses (EEXIST) and it stays.
    """
    mode = _mode(mode)
    if mode is AttachMode.AUTO:
        raise ValueError("detach needs the mode the program was attached with, not AUTO")
    attrs = [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", mode.flags)]
    if expected_fd is not None:
        attrs = [
            ("IFLA_XDP_FD", -1),
            ("IFLA_XDP_FLAGS", mode.flags | XDP_FLAGS_REPLACE),
            ("IFLA_XDP_EXPECTED_FD", expected_fd),
        ]
    with _ipr() as ipr:
        try:
            _set_xdp(ipr, ifindex, attrs)
        except NetlinkError as exc:
            name = _link_name(ipr, ifindex)
            raise XdpAttachError(
                exc.code, _explain(exc, "cannot detach", ifindex, name, mode)
            ) from None


@contextlib.contextmanager
def attached(
    ifindex: int, prog_fd: int, mode: AttachMode | str = AttachMode.AUTO
) -> Iterator[AttachMode]:
    """Attach for the body's duration; detach on exit whatever happens. Yields the mode."""
    used = attach(ifindex, prog_fd, mode)
    try:
        yield used
    finally:
        detach(ifindex, used, expected_fd=prog_fd)


def attached_programs(ifindex: int) -> dict[AttachMode, int]:
    """XDP programs on link ``ifindex`` per netlink (IFLA_XDP): mode -> program id."""
    with _ipr() as ipr:
        try:
            (link,) = ipr.get_links(ifindex)
        except NetlinkError as exc:
            raise XdpAttachError(
                exc.code, f"cannot read the XDP state of ifindex {ifindex}: {os.strerror(exc.code)}"
            ) from None
    xdp = link.get_attr("IFLA_XDP")
    if xdp is None:
        return {}
    attrs = dict(xdp["attrs"])
    state = attrs.get("IFLA_XDP_ATTACHED")
    found: dict[AttachMode, int] = {}
    if attrs.get("IFLA_XDP_DRV_PROG_ID"):
        found[AttachMode.NATIVE] = int(attrs["IFLA_XDP_DRV_PROG_ID"])
    if attrs.get("IFLA_XDP_SKB_PROG_ID"):
        found[AttachMode.GENERIC] = int(attrs["IFLA_XDP_SKB_PROG_ID"])
    if not found and state and attrs.get("IFLA_XDP_PROG_ID"):
        # Older kernels report a single program only through IFLA_XDP_PROG_ID.
        mode = {"xdp": AttachMode.NATIVE, "xdpgeneric": AttachMode.GENERIC}.get(str(state))
        if mode is not None:
            found[mode] = int(attrs["IFLA_XDP_PROG_ID"])
    return found


__all__ = [
    "AttachMode",
    "BccStatus",
    "LoaderError",
    "Program",
    "XdpAttachError",
    "attach",
    "attached",
    "attached_programs",
    "bcc_status",
    "detach",
    "load",
    "load_bcc",
    "load_ctypes",
    "probe_bcc",
]
