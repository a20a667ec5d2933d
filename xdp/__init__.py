"""eBPF and AF_XDP from pure Python: bpf(2) via ctypes, an assembler, programs, XDP attach,
kernel drop tracing.

Modules: ``bpf`` (the system call), ``asm`` (instruction encoding), ``maps`` (Map objects,
bpffs pins), ``programs`` (the XDP and tracing programs, also as C for bcc), ``loader`` (bcc or
ctypes loading; XDP attach/detach over netlink), ``tracing`` (``DropTracer``), ``btf`` and
``mounts`` (helpers). The names below are re-exported lazily, so ``import xdp`` stays cheap
(netlink support is only imported when a loader name is used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xdp.asm import Asm
    from xdp.bpf import BPFError, MapType, ProgType, VerifierError
    from xdp.loader import (
        AttachMode,
        Program,
        XdpAttachError,
        attach,
        attached,
        attached_programs,
        bcc_status,
        detach,
        load,
    )
    from xdp.maps import Map, ensure_bpffs
    from xdp.programs import PortFilterMaps, ProgramSpec, port_filter, xsk_redirect
    from xdp.tracing import DropTracer

_EXPORTS = {
    "Asm": "xdp.asm",
    "BPFError": "xdp.bpf",
    "MapType": "xdp.bpf",
    "ProgType": "xdp.bpf",
    "VerifierError": "xdp.bpf",
    "AttachMode": "xdp.loader",
    "Program": "xdp.loader",
    "XdpAttachError": "xdp.loader",
    "attach": "xdp.loader",
    "attached": "xdp.loader",
    "attached_programs": "xdp.loader",
    "bcc_status": "xdp.loader",
    "detach": "xdp.loader",
    "load": "xdp.loader",
    "Map": "xdp.maps",
    "ensure_bpffs": "xdp.maps",
    "PortFilterMaps": "xdp.programs",
    "ProgramSpec": "xdp.programs",
    "port_filter": "xdp.programs",
    "xsk_redirect": "xdp.programs",
    "DropTracer": "xdp.tracing",
}


def __getattr__(name: str) -> object:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'xdp' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Asm",
    "AttachMode",
    "BPFError",
    "DropTracer",
    "Map",
    "MapType",
    "PortFilterMaps",
    "ProgType",
    "Program",
    "ProgramSpec",
    "VerifierError",
    "XdpAttachError",
    "attach",
    "attached",
    "attached_programs",
    "bcc_status",
    "detach",
    "ensure_bpffs",
    "load",
    "port_filter",
    "xsk_redirect",
]
