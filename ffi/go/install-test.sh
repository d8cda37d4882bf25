#!/usr/bin/env bash
# Uses the Go binding the way a Go user meets it: libvalve installed by `make install` into a
# temporary prefix outside the checkout (with a space in its path), found through pkg-config,
# and a fresh module in a temporary directory that requires the binding (a `replace` to this
# checkout's ffi/go until it is published). It builds and runs the program linked to
# libvalve.so and, with -tags valve_static, to libvalve.a, then checks what `go build` says with
# no libvalve and with CGO_ENABLED=0. Nothing is downloaded (GOPROXY=off). Prints one line for
# each check.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
soversion=${version%%.*}
module=$(sed -n 's/^module //p' ffi/go/go.mod)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/valve-go-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/valve prefix"
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# Pipes end in `grep >/dev/null`, not `grep -q`: -q exits at the first match, and the writer's
# SIGPIPE would then fail the pipeline under pipefail.

for shim in ffi/go/install-libvalve.pc ffi/go/install-libvalve-static.pc; do
    grep -qx "Version: $version" "$shim" && grep -q "^Requires: valve[-a-z]* >= $version\$" "$shim" \
        || fail "$shim does not name version $version (Cargo.toml)"
done
ok "ffi/go's pkg-config shims name version $version"

cargo build --release --quiet
make --no-print-directory install PREFIX="$prefix" >/dev/null
ok "make install PREFIX='$prefix'"

app="$tmp/go app"
mkdir -p "$app"
cat >"$app/go.mod" <<GOMOD
module example.com/valveapp

go 1.24

require $module v0.0.0

replace $module => "$root/ffi/go"
GOMOD
cat >"$app/main.go" <<'GO'
// Sheds load with a limiter, spends retries from a budget and guards a call with a breaker.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"

	valve "github.com/overload-valve/valve/ffi/go"
)

func main() {
	limiter, err := valve.New(valve.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer limiter.Close()
	served, shed := 0, 0
	for range 100 {
		permit, err := limiter.TryAcquire()
		if errors.Is(err, valve.ErrRejected) {
			shed++
			continue
		} else if err != nil {
			log.Fatal(err)
		}
		served++
		permit.Success()
	}
	permit, err := limiter.Acquire(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	permit.Success()

	quotaConfig, err := valve.GRPCQuota(10, 0.1)
	if err != nil {
		log.Fatal(err)
	}
	quota, err := valve.NewTokenQuota(quotaConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer quota.Close()
	retry, err := quota.TryRetry(valve.CostClass(0))
	if err != nil {
		log.Fatal(err)
	}
	quota.OnSuccess(&retry)

	breaker, err := valve.NewBreaker(valve.DefaultBreakerConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer breaker.Close()
	call, err := breaker.Allow()
	if err != nil {
		log.Fatal(err)
	}
	call.Success()
	state, err := breaker.State()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("valve %s: served %d, shed %d, retry tokens %d, breaker state %d\n",
		valve.Version(), served, shed, quota.Balance(), state)
}
GO

cd "$app"
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# Go's build cache keys a cgo package on CGO_CFLAGS but not on what pkg-config says: a key in
# CGO_CFLAGS for each run and each search path makes every build below ask pkg-config afresh.
go_build() { # cache-key, go build arguments...
    local key=$1
    shift
    CGO_CFLAGS="-O2 -g -DVALVE_INSTALL_TEST_KEY=${key}_${tmp##*.}" go build "$@"
}
expect_output() {
    local out
    out=$("$@")
    [[ $out == "valve $version: served "* ]] || fail "$1 printed '$out'"
}

go_build installed -o app_shared .
LD_LIBRARY_PATH="$prefix/lib" ldd app_shared | grep "libvalve.so.$soversion => $prefix/lib/libvalve.so.$soversion" >/dev/null \
    || fail "app_shared does not load the installed libvalve.so.$soversion"
expect_output env LD_LIBRARY_PATH="$prefix/lib" ./app_shared
ok "go build in a fresh module (replace => checkout's ffi/go, PKG_CONFIG_PATH=\$PREFIX/lib/pkgconfig): loads libvalve.so.$soversion, limiter + budget + breaker run"

go_build installed -tags valve_static -o app_static .
ldd app_static | grep libvalve >/dev/null && fail "app_static needs libvalve.so"
expect_output ./app_static
ok "go build -tags valve_static: libvalve.a linked in, no libvalve.so needed, runs"

# No libvalve: an empty search path (PKG_CONFIG_LIBDIR hides the system's directories too).
mkdir -p "$tmp/no-pkgconfig"
for tags in valve_static ""; do
    if PKG_CONFIG_PATH="$tmp/no-pkgconfig" PKG_CONFIG_LIBDIR="$tmp/no-pkgconfig" \
        go_build "missing$tags" -tags "$tags" -o /dev/null . >"$tmp/missing.log" 2>&1; then
        fail "go build -tags '$tags' succeeded with no libvalve"
    fi
    grep -q "required by 'install-libvalve" "$tmp/missing.log" && grep -q 'valve.*\.pc' "$tmp/missing.log" \
        || { cat "$tmp/missing.log" >&2; fail "the missing-library message does not name install-libvalve"; }
done
ok "no libvalve installed: go build (with or without -tags valve_static) fails with pkg-config's message naming install-libvalve:"
sed 's/^/    /' "$tmp/missing.log"

if CGO_ENABLED=0 go_build nocgo -o /dev/null . >"$tmp/nocgo.log" 2>&1; then
    fail "CGO_ENABLED=0 go build succeeded"
fi
grep -q 'undefined: valve_requires_cgo_set_CGO_ENABLED_1' "$tmp/nocgo.log" \
    || { cat "$tmp/nocgo.log" >&2; fail "the CGO_ENABLED=0 message does not name cgo"; }
ok "CGO_ENABLED=0: go build fails naming valve_requires_cgo_set_CGO_ENABLED_1:"
sed 's/^/    /' "$tmp/nocgo.log"

echo "Go install test passed"
