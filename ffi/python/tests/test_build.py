"""The build helper that turns include/valve.h into cffi declarations (valve_build.py, beside
this directory: it runs at build time and is not installed)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "valve_build", Path(__file__).resolve().parent.parent / "valve_build.py"
)
valve_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(valve_build)


def test_cdef_source_drops_cpp_and_c23_blocks():
    header = "\n".join(
        [
            "#ifndef X_H",
            "#define X_H",
            "#include <stdint.h>",
            "#define X_ONE 1",
            "#define X_EXPR (1 << 3)",
            "enum e",
            "#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L",
            "  : uint32_t",
            "#endif // comment",
            " { A = 0 };",
            "#ifndef __cplusplus",
            "#if __STDC_VERSION__ >= 202311L",
            "typedef enum e e;",
            "#else",
            "typedef uint32_t e;",
            "#endif",
            "#endif",
            "#ifdef __cplusplus",
            'extern "C" {',
            "#endif",
            "#endif",
        ]
    )
    assert valve_build.cdef_source(header).split("\n") == [
        "#define X_ONE 1",
        "enum e",
        " { A = 0 };",
        "typedef uint32_t e;",
    ]
