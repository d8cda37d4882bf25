"""Builds what the package carries besides its Python code; the metadata is in pyproject.toml.

- libvalve, compiled from the Rust crate by setuptools-rust and put in the package
  (``valve/libvalve.<extension suffix>``). Needs cargo: without it the build stops and says so.
- ``valve._ffi``, the cffi declarations made from the crate's ``include/valve.h``
  (``valve_build.py``).
- the optional C fast path ``valve._fastpath``, compiled against the same header. libvalve is not
  linked: cffi loads it at run time. Where it cannot be built the package installs without it.

The crate is the checkout's (two levels up) when building from the repository. An sdist carries
its own copy in ``crate/``: the files ``cargo package`` would publish, so a wheel built from the
sdist anywhere compiles the same sources.
"""

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.sdist import sdist
from setuptools.errors import PlatformError
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

sys.path.insert(0, str(Path(__file__).resolve().parent))
from valve_build import crate_dir  # noqa: E402

CRATE = crate_dir()
IN_CHECKOUT = CRATE != Path(__file__).resolve().parent / "crate"
# Relative paths: setuptools refuses absolute ones in an Extension's sources and depends.
CRATE_REL = os.path.relpath(CRATE, Path(__file__).resolve().parent)
CARGO = os.environ.get("CARGO", "cargo")


def require_cargo() -> str:
    found = shutil.which(CARGO)
    if found is None:
        raise PlatformError(
            "overload-valve: cargo (the Rust toolchain) is needed to build this package: "
            f"`{CARGO}` is not on PATH. It compiles libvalve from the crate's Rust sources. "
            "Install Rust (https://rustup.rs), make sure cargo is on PATH, and retry; or install "
            "a built wheel."
        )
    return found


class build_rust_checked(build_rust):
    """setuptools-rust's build_rust, stopping first with a clear message where cargo is missing
    (setuptools-rust itself checks only for rustc)."""

    def run(self) -> None:
        require_cargo()
        super().run()


# The safe extraction filter, where this Python has it (3.9.17+, 3.10.12+, 3.11.4+).
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class sdist_with_crate(sdist):
    """An sdist that carries the crate in ``crate/``: ``cargo package``'s files in a checkout."""

    def make_release_tree(self, base_dir: str, files) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / "crate"
        if not IN_CHECKOUT:
            shutil.copytree(CRATE, target, ignore=shutil.ignore_patterns("target"))
            return
        cargo = require_cargo()
        with tempfile.TemporaryDirectory() as scratch:
            self.spawn(
                [
                    cargo,
                    "package",
                    "--package",
                    "overload-valve",
                    "--quiet",
                    "--no-verify",
                    "--allow-dirty",
                    "--manifest-path",
                    str(CRATE / "Cargo.toml"),
                    "--target-dir",
                    scratch,
                ]
            )
            (packaged,) = (Path(scratch) / "package").glob("*.crate")
            with tarfile.open(packaged) as archive:
                members = archive.getmembers()
                for member in members:
                    # Each member is under `<name>-<version>/`.
                    member.name = member.name.split("/", 1)[1]
                archive.extractall(target, members, **_TAR_FILTER)


rust_env = dict(os.environ)
if IN_CHECKOUT:
    # Its own target directory, so the checkout's target/release is left as `cargo build` made it
    # (setuptools-rust builds the cdylib alone, with other flags, which would replace it).
    rust_env.setdefault("CARGO_TARGET_DIR", str(CRATE / "target" / "python"))

setup(
    rust_extensions=[
        RustExtension(
            "valve.libvalve",
            path=os.path.join(CRATE_REL, "Cargo.toml"),
            binding=Binding.NoBinding,
            debug=False,
            strip=Strip.Debug,
            cargo_manifest_args=["--locked"],
            env=rust_env,
        )
    ],
    cffi_modules=["valve_build.py:ffibuilder"],
    ext_modules=[
        Extension(
            "valve._fastpath",
            sources=["valve/_fastpath.c"],
            include_dirs=[os.path.join(CRATE_REL, "include")],
            depends=[os.path.join(CRATE_REL, "include", "valve.h")],
            optional=True,
        )
    ],
    cmdclass={"build_rust": build_rust_checked, "sdist": sdist_with_crate},
)
