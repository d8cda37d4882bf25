"""Loads libvalve through cffi (ABI mode), declaring it from the C header itself.

The declarations come from ``include/valve.h`` rather than a copy, so the binding cannot drift
from the library: the header's conditional blocks are evaluated for C11 (not C++), integer
``#define`` constants are kept, and every other preprocessor line is dropped before ``cdef``.

Where the files are found:

- the library: ``$VALVE_LIB``, else ``target/release/libvalve.so`` (``.dylib`` on macOS) under
  the working directory or one of its parents, or above this package (an in-tree checkout);
- the header: ``$VALVE_HEADER``, else ``include/valve.h`` beside the ``target`` directory the
  library came from, or found the same way as the library.
"""

import os
import re
import sys
from pathlib import Path

from cffi import FFI

_LIB_NAME = {"darwin": "libvalve.dylib", "win32": "valve.dll"}.get(sys.platform, "libvalve.so")


def _search(relative: Path) -> Path:
    here = Path(__file__).resolve().parent
    for root in (Path.cwd(), *Path.cwd().parents, *here.parents):
        candidate = root / relative
        if candidate.is_file():
            return candidate
    raise OSError(
        f"valve: cannot find {relative} (build it with `cargo build --release`, "
        "or set VALVE_LIB and VALVE_HEADER)"
    )


def _library_path() -> Path:
    if "VALVE_LIB" in os.environ:
        return Path(os.environ["VALVE_LIB"])
    return _search(Path("target") / "release" / _LIB_NAME)


def _header_path(library: Path) -> Path:
    if "VALVE_HEADER" in os.environ:
        return Path(os.environ["VALVE_HEADER"])
    beside = library.resolve().parent.parent.parent / "include" / "valve.h"
    return beside if beside.is_file() else _search(Path("include") / "valve.h")


_DEFINE_INT = re.compile(r"#\s*define\s+\w+\s+\d+\s*$")
_COMPARISON = re.compile(r"(\d+)\s*(>=|<=|==|!=|>|<)\s*(\d+)")
_COMPARE = {
    ">=": int.__ge__,
    "<=": int.__le__,
    "==": int.__eq__,
    "!=": int.__ne__,
    ">": int.__gt__,
    "<": int.__lt__,
}


def _atom(text: str, directive: str) -> bool:
    text = text.strip().strip("()").strip()
    if text.isdigit():
        return int(text) != 0
    match = _COMPARISON.fullmatch(text)
    if not match:
        raise ValueError(f"valve: cannot evaluate #{directive}")
    return _COMPARE[match[2]](int(match[1]), int(match[3]))


def _condition(directive: str) -> bool:
    """Evaluates an #if/#ifdef/#ifndef as a C11 compiler would, with no macro defined.

    Handles what cbindgen emits: ``defined(X)``, ``__STDC_VERSION__``, comparisons, ``||`` and
    ``&&``; anything else is refused rather than guessed.
    """
    keyword, _, expr = directive.partition(" ")
    if keyword == "ifdef":
        return False
    if keyword == "ifndef":
        return True
    expr = re.sub(r"defined\s*\(?\s*\w+\s*\)?", "0", expr)
    expr = re.sub(r"\b__STDC_VERSION__\b", "201112", expr)
    expr = re.sub(r"(\d+)L\b", r"\1", expr)
    return any(
        all(_atom(term, directive) for term in alternative.split("&&"))
        for alternative in expr.split("||")
    )


def cdef_source(header: str) -> str:
    """The header as cffi's ``cdef`` accepts it."""
    out = []
    stack = []  # (enclosing block active, a branch of this block was taken)
    active = True
    for line in header.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if active:
                out.append(line)
            continue
        directive = " ".join(stripped[1:].split("//")[0].split())
        keyword = directive.split(" ")[0]
        if keyword in ("if", "ifdef", "ifndef"):
            taken = _condition(directive)
            stack.append((active, taken))
            active = active and taken
        elif keyword == "else":
            enclosing, taken = stack[-1]
            active = enclosing and not taken
        elif keyword == "endif":
            active = stack.pop()[0]
        elif active and _DEFINE_INT.match(stripped):
            out.append(stripped)
    return "\n".join(out)


ffi = FFI()
_library = _library_path()
ffi.cdef(cdef_source(_header_path(_library).read_text()))
lib = ffi.dlopen(str(_library))

if lib.valve_version_number() != lib.VALVE_VERSION_NUMBER:
    raise ImportError(
        f"valve: header version {lib.VALVE_VERSION_NUMBER:#x} does not match "
        f"library version {lib.valve_version_number():#x} ({_library})"
    )
