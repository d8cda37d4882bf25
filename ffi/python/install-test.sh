#!/usr/bin/env bash
# The Python package as a user meets it, in temporary directories outside the checkout:
#   1. `python -m build` makes an sdist and, from the sdist, a wheel (so the sdist compiles);
#   2. the wheel, in a fresh virtual environment, used from a temporary directory: it carries
#      libvalve, the cffi declarations and the C fast path, and no header;
#   3. the README's Python example, as pasted;
#   4. VALVE_LIB loads another copy of the library; a missing one is named in the error;
#   5. the sdist, installed with pip into another fresh environment (compiles the crate again);
#   6. without cargo on PATH, installing the sdist or the checkout's package stops with a
#      message that says cargo is needed.
# Needs python3 with venv, cargo, a C compiler, and PyPI (requirements-dev.txt and what the
# build needs: setuptools, setuptools-rust, cffi).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/run"

step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }

venv() { "$PYTHON" -m venv "$1"; }

# Uses the installed package from a directory that is not the checkout, and checks that nothing
# of the checkout is loaded. Prints what it checked.
check_installed() {
    (cd "$tmp/run" && CHECKOUT="$here/../.." "$1/bin/python" - <<'EOF'
import importlib.metadata
import os
from pathlib import Path

import valve
import valve._native

package = Path(valve.__file__).parent
checkout = Path(os.environ["CHECKOUT"]).resolve()
assert checkout not in package.parents, package
assert valve._native.library_path.parent == package, valve._native.library_path
print(f"ok: imports from {package}, with libvalve {valve._native.library_path.name}")
assert not any(package.rglob("*.h")), "a header was installed"
maps = Path("/proc/self/maps").read_text()
assert str(checkout) not in maps, "a file of the checkout is mapped"
print("ok: no header in the package, no file of the checkout loaded")
assert importlib.metadata.version("overload-valve") == valve.version()
print(f"ok: distribution overload-valve {valve.version()} matches libvalve's version")

assert valve._fastpath is not None, "valve._fastpath was not built"
limiter = valve.Limiter(valve.FixedConfig(1))
assert isinstance(limiter, valve._fastpath.LimiterCore)
with limiter.acquire() as permit:
    assert type(permit) is valve._fastpath.Permit
    try:
        limiter.acquire()
        raise AssertionError("a second permit past the limit of 1")
    except valve.Rejected:
        pass
assert limiter.snapshot().admitted == 1 and limiter.snapshot().rejected == 1
print("ok: limiter admits up to its limit through the C fast path, rejects past it")

breaker = valve.Breaker(consecutive_failures=2, open_duration=60)
for _ in range(2):
    try:
        with breaker.call():
            raise ConnectionError
    except ConnectionError:
        pass
assert breaker.state == valve.BreakerState.OPEN
try:
    with breaker.call():
        raise AssertionError("an open breaker let a call through")
except valve.BreakerOpen:
    pass
print("ok: breaker opens after 2 consecutive failures and refuses the next call")

budget = valve.TokenQuota.aws_standard_legacy()
retries = 0
try:
    while True:
        budget.try_retry()
        retries += 1
except valve.BudgetExhausted:
    pass
assert retries == 100 and budget.balance == 0, (retries, budget.balance)
print("ok: retry budget (AWS legacy, 500 tokens at 5 a retry) allows 100 retries, then refuses")
EOF
    )
}

step "python -m build: sdist, then a wheel from the sdist"
venv "$tmp/build-env"
"$tmp/build-env/bin/python" -m pip install --quiet -r "$here/requirements-dev.txt"
"$tmp/build-env/bin/python" -m build --outdir "$tmp/dist" "$here" >"$tmp/build.log" 2>&1 ||
    { tail -40 "$tmp/build.log"; exit 1; }
sdist=("$tmp"/dist/overload_valve-*.tar.gz)
wheel=("$tmp"/dist/overload_valve-*.whl)
tar -tzf "${sdist[0]}" >"$tmp/sdist.list"
grep -q '/crate/src/lib.rs$' "$tmp/sdist.list"
grep -q '/crate/include/valve.h$' "$tmp/sdist.list"
ok "sdist $(basename "${sdist[0]}") carries the crate (crate/src, crate/include/valve.h)"
"$tmp/build-env/bin/python" - "${wheel[0]}" <<'EOF'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
for prefix in ("valve/libvalve.", "valve/_fastpath.", "valve/_ffi.py"):
    assert any(n.startswith(prefix) for n in names), f"{prefix} is not in the wheel"
assert not any(n.endswith((".h", ".c")) for n in names), "a C source or header is in the wheel"
print("ok: wheel carries libvalve, valve._fastpath and valve._ffi; no C source or header")
EOF

step "the wheel, in a fresh virtual environment, from a temporary directory"
venv "$tmp/wheel-env"
"$tmp/wheel-env/bin/python" -m pip install --quiet "${wheel[0]}"
check_installed "$tmp/wheel-env"

step "the README's Python example, as pasted"
"$PYTHON" - "$here/../../README.md" >"$tmp/run/readme_example.py" <<'EOF'
import sys

text = open(sys.argv[1]).read()
section = text[text.index("### Python") :]
start = section.index("```python\n") + len("```python\n")
print(section[start : section.index("```", start)], end="")
EOF
(cd "$tmp/run" && "$tmp/wheel-env/bin/python" readme_example.py)
ok "README example ran"

step "VALVE_LIB overrides the library"
mkdir "$tmp/other lib"
other="$tmp/other lib/libvalve.so"
cp "$("$tmp/wheel-env/bin/python" -c 'import valve._native as n; print(n.library_path)')" "$other"
(cd "$tmp/run" && VALVE_LIB="$other" "$tmp/wheel-env/bin/python" - <<'EOF'
import os
from pathlib import Path

import valve
import valve._native

assert valve._native.library_path == Path(os.environ["VALVE_LIB"])
maps = Path("/proc/self/maps").read_text()
assert os.environ["VALVE_LIB"] in maps, "VALVE_LIB is not loaded"
bundled = Path(valve.__file__).parent / "libvalve."
assert str(bundled) not in maps, "the package's own libvalve was loaded too"
with valve.Limiter().acquire():
    pass
print("ok: VALVE_LIB (a path with a space) is loaded, the package's libvalve is not")
EOF
)
if (cd "$tmp/run" && VALVE_LIB="$tmp/missing/libvalve.so" "$tmp/wheel-env/bin/python" \
    -c 'import valve') 2>"$tmp/missing.log"; then
    echo "import succeeded with VALVE_LIB naming a missing file"; exit 1
fi
grep -q "$tmp/missing/libvalve.so" "$tmp/missing.log" || { cat "$tmp/missing.log"; exit 1; }
ok "a missing VALVE_LIB fails the import, naming the path"

step "the sdist, installed by pip into a fresh virtual environment (compiles the crate)"
venv "$tmp/sdist-env"
"$tmp/sdist-env/bin/python" -m pip install --quiet "${sdist[0]}" >"$tmp/sdist.log" 2>&1 ||
    { tail -40 "$tmp/sdist.log"; exit 1; }
check_installed "$tmp/sdist-env"

step "without cargo on PATH, the build says cargo is needed"
no_cargo_path=""
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
    [[ -x "$dir/cargo" ]] || no_cargo_path="${no_cargo_path:+$no_cargo_path:}$dir"
done
venv "$tmp/no-cargo-env"
for source in "${sdist[0]}" "$here"; do
    label="$(basename "${sdist[0]}")"
    [[ "$source" == "$here" ]] && label="the checkout's ffi/python"
    if PATH="$no_cargo_path" "$tmp/no-cargo-env/bin/python" -m pip install "$source" \
        >"$tmp/no-cargo.log" 2>&1; then
        echo "pip install $label succeeded without cargo"; exit 1
    fi
    message="$(grep -o 'cargo (the Rust toolchain) is needed[^.]*' "$tmp/no-cargo.log")" ||
        { tail -30 "$tmp/no-cargo.log"; exit 1; }
    ok "pip install $label without cargo fails: \"${message%%$'\n'*}\""
done

printf '\nok: the Python package builds, installs and runs outside the checkout\n'
