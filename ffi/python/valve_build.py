"""Build-time half of the binding: the cffi declarations, made from the C header.

setup.py hands ``ffibuilder`` to cffi (``cffi_modules``), which writes the module ``valve._ffi``
into the package: cffi's out-of-line ABI mode, so the installed package carries the parsed
declarations and needs no header, and no C compiler, at run time.

The declarations come from ``include/valve.h`` itself rather than a copy, so the binding cannot
drift from the library: the header's conditional blocks are evaluated for C11 (not C++), integer
``#define`` constants are kept, and every other preprocessor line is dropped before ``cdef``.
The header is the crate's: in a checkout, the repository root two levels up; in an sdist, the
copy of the crate that setup.py put in ``crate/``.
"""

import re
from pathlib import Path

from cffi import FFI

_HERE = Path(__file__).resolve().parent


def crate_dir() -> Path:
    """The Rust crate the package is built from: the sdist's copy, else the checkout's root."""
    bundled = _HERE / "crate"
    return bundled if (bundled / "Cargo.toml").is_file() else _HERE.parent.parent


def header_path() -> Path:
    return crate_dir() / "include" / "valve.h"


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


def ffibuilder() -> FFI:
    """The FFI that cffi emits as ``valve._ffi`` (ABI mode: no C source to compile)."""
    builder = FFI()
    builder.cdef(cdef_source(header_path().read_text()))
    builder.set_source("valve._ffi", None)
    return builder
