"""The C library handle shared by this package's ctypes bindings, and errno-to-OSError glue."""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any


@functools.cache
def libc() -> ctypes.CDLL:
    """The process's C library (symbols of the running executable and its libraries)."""
    return ctypes.CDLL(None, use_errno=True)


def function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private, prototyped handle on libc's ``name``; ``AttributeError`` when libc lacks it.

    Indexing (not attribute access) returns a fresh function object, so the prototype set here
    cannot clash with another module's view of the same symbol.
    """
    fn = libc()[name]
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def last_os_error(what: str) -> OSError:
    """An ``OSError`` built from the errno left by the last ctypes call."""
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")
