#!/usr/bin/env bash
# Installs the Python binding (and cffi, pytest if missing), then runs its tests against the
# library built by `cargo build --release`, from the repository root so the package finds it:
# once through the C fast path, which the install builds (a test fails if it is missing), and
# once through the pure-Python classes.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import cffi" 2>/dev/null || "$PYTHON" -m pip install --quiet cffi
"$PYTHON" -c "import pytest" 2>/dev/null || "$PYTHON" -m pip install --quiet pytest
"$PYTHON" -m pip install --quiet ./ffi/python
# Tests import the installed package, not the source tree.
"$PYTHON" -m pytest -q -p no:cacheprovider ffi/python/tests
VALVE_PURE_PYTHON=1 "$PYTHON" -m pytest -q -p no:cacheprovider ffi/python/tests
