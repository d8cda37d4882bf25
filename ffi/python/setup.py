"""Builds the optional C fast path; the package's metadata is in pyproject.toml.

libvalve is not linked: cffi loads it at runtime. The header comes from this checkout; where the
extension cannot be built (no compiler, no header) the package installs without it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "valve._fastpath",
            sources=["valve/_fastpath.c"],
            include_dirs=["../../include"],
            depends=["../../include/valve.h"],
            optional=True,
        )
    ]
)
