"""Loads libvalve through cffi (out-of-line ABI mode) and checks it matches the declarations.

The declarations are ``valve._ffi``, which the build generated from ``include/valve.h``
(``valve_build.py``), so no header is read at run time. The library is ``$VALVE_LIB`` if set,
else the libvalve that the build compiled from the crate and put in this package.

Failure mode contained: a library of another version than the declarations, whose structs or
status codes may differ, is refused at import rather than called with the wrong layout.
"""

import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from ._ffi import ffi

# setuptools-rust names the library as it names extension modules (libvalve.cpython-...so).
_BUNDLED = [Path(__file__).resolve().parent / f"libvalve{suffix}" for suffix in EXTENSION_SUFFIXES]


def _library_path() -> Path:
    if os.environ.get("VALVE_LIB"):
        return Path(os.environ["VALVE_LIB"])
    for candidate in _BUNDLED:
        if candidate.is_file():
            return candidate
    raise ImportError(
        f"valve: libvalve is not in the package ({_BUNDLED[0].parent}): reinstall it where "
        "cargo is on PATH (pip install builds the library), or set VALVE_LIB to a libvalve"
    )


library_path = _library_path()
lib = ffi.dlopen(str(library_path))

if lib.valve_version_number() != lib.VALVE_VERSION_NUMBER:
    raise ImportError(
        f"valve: header version {lib.VALVE_VERSION_NUMBER:#x} does not match "
        f"library version {lib.valve_version_number():#x} ({library_path})"
    )
