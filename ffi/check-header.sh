#!/usr/bin/env bash
# Regenerates include/valve.h into a temporary file with the pinned cbindgen and fails on any
# difference from the checked-in header. `ffi/check-header.sh --write` updates the header.
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.4
if [[ "$(cbindgen --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]]; then
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked
fi

generated="$(mktemp)"
trap 'rm -f "$generated"' EXIT
cbindgen --config cbindgen.toml --crate overload-valve --quiet --output "$generated" .

if [[ "${1:-}" == "--write" ]]; then
    cp "$generated" include/valve.h
    echo "include/valve.h written"
elif ! diff -u include/valve.h "$generated"; then
    echo "include/valve.h is stale: run ffi/check-header.sh --write and commit it" >&2
    exit 1
else
    echo "include/valve.h is up to date"
fi
