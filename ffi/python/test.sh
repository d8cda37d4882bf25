#!/usr/bin/env bash
# Installs the Python binding into a fresh virtual environment (pip compiles libvalve from this
# checkout's crate, into target/python, and the C fast path), then runs its tests from a
# temporary directory, so they use the installed package and nothing of the checkout: once
# through the C fast path (a test fails if it is missing), once through the pure-Python classes.
# Needs python3 with venv, cargo, a C compiler, and PyPI (requirements-dev.txt and what the
# build needs: setuptools, setuptools-rust, cffi).
# ffi/python/install-test.sh checks the wheel, the sdist and the build's messages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m venv "$tmp/env"
py="$tmp/env/bin/python"
"$py" -m pip install --quiet -r "$here/requirements-dev.txt" "$here"
cd "$tmp"
CHECKOUT="$here" "$py" -c '
import os, pathlib, valve
package = pathlib.Path(valve.__file__).resolve().parent
assert pathlib.Path(os.environ["CHECKOUT"]) not in package.parents, package
print(f"testing valve installed in {package}")
'
"$py" -m pytest -q -p no:cacheprovider "$here/tests"
VALVE_PURE_PYTHON=1 "$py" -m pytest -q -p no:cacheprovider "$here/tests"
