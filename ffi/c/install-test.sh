#!/usr/bin/env bash
# Uses valve's C library the way a C user meets it: installed by `make install` into a temporary
# prefix outside the checkout (with a space in its path), then found by pkg-config and by CMake.
# It checks the installed files and SONAME, that libvalve.so exports exactly the functions of
# valve.h, the sizes (stripped libvalve.so and what a static link adds, each under 1 MB), and
# builds ffi/c/example.c shared, statically against libvalve.a, fully static, from a DESTDIR
# staging, and with find_package(valve), running each. Prints one line for each check.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
soversion=${version%%.*}
CC=${CC:-cc}
cflags=(-std=c11 -O2 -Wall -Wextra -Werror -pedantic)
size_goal=1000000

tmp=$(mktemp -d "${TMPDIR:-/tmp}/valve-c-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/valve prefix"
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# Pipes end in `grep >/dev/null`, not `grep -q`: -q exits at the first match, and the writer's
# SIGPIPE would then fail the pipeline under pipefail.
# pkg-config escapes the blanks of a path with a backslash; eval undoes it, as make's shell does.
pc_flags() { eval "pc=($(pkg-config "$@"))"; }
expect_example_output() {
    local out
    out=$("$@")
    [[ $out == "valve $version: served "* ]] || fail "$1 printed '$out'"
}

cargo build --release --quiet
make --no-print-directory install PREFIX="$prefix" >/dev/null
for file in include/valve.h lib/libvalve.a "lib/libvalve.so.$version" lib/pkgconfig/valve.pc \
    lib/pkgconfig/valve-static.pc lib/cmake/valve/valveConfig.cmake \
    lib/cmake/valve/valveConfigVersion.cmake; do
    [[ -f "$prefix/$file" ]] || fail "make install did not install $file"
done
[[ $(readlink "$prefix/lib/libvalve.so.$soversion") == "libvalve.so.$version" ]] || fail "libvalve.so.$soversion link"
[[ $(readlink "$prefix/lib/libvalve.so") == "libvalve.so.$soversion" ]] || fail "libvalve.so link"
ok "make install PREFIX='$prefix' installed valve.h, libvalve.a, libvalve.so.$version (+ .so.$soversion, .so links), valve.pc, valve-static.pc and the CMake package"

soname=$(readelf -d "$prefix/lib/libvalve.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[[ $soname == "libvalve.so.$soversion" ]] || fail "SONAME is '$soname', not libvalve.so.$soversion"
ok "SONAME libvalve.so.$soversion"

# Exactly the functions valve.h declares: no Rust symbol leaks, and no declared one is missing.
grep -oE '\bvalve_[a-z0-9_]+\(' include/valve.h | tr -d '(' | sort -u >"$tmp/declared"
nm -D --defined-only "$prefix/lib/libvalve.so.$version" | awk '{print $3}' | sort -u >"$tmp/exported"
if ! diff "$tmp/declared" "$tmp/exported" >"$tmp/symbols.diff"; then
    cat "$tmp/symbols.diff" >&2
    fail "libvalve.so's exported symbols (>) differ from valve.h's functions (<)"
fi
ok "libvalve.so exports the $(wc -l <"$tmp/declared") functions of valve.h and nothing else (nm -D --defined-only)"

# Shared, by pkg-config: found through LD_LIBRARY_PATH at run time, then through an rpath.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pc_flags --cflags --libs valve
"$CC" "${cflags[@]}" -o "$tmp/example_shared" ffi/c/example.c "${pc[@]}"
LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/example_shared" | grep "libvalve.so.$soversion => $prefix/lib/libvalve.so.$soversion" >/dev/null \
    || fail "example_shared does not load the installed libvalve.so.$soversion"
expect_example_output env LD_LIBRARY_PATH="$prefix/lib" "$tmp/example_shared"
ok "cc example.c \$(pkg-config --cflags --libs valve): loads $prefix/lib/libvalve.so.$soversion through LD_LIBRARY_PATH, runs"
"$CC" "${cflags[@]}" -o "$tmp/example_rpath" ffi/c/example.c "${pc[@]}" -Wl,-rpath,"$prefix/lib"
expect_example_output "$tmp/example_rpath"
ok "the same with -Wl,-rpath: runs with no LD_LIBRARY_PATH"

# libvalve.a linked in, libc shared.
pc_flags --static --cflags --libs valve-static
"$CC" "${cflags[@]}" -o "$tmp/example_static" ffi/c/example.c "${pc[@]}"
ldd "$tmp/example_static" | grep libvalve >/dev/null && fail "example_static needs libvalve.so"
expect_example_output "$tmp/example_static"
ok "cc example.c \$(pkg-config --static --cflags --libs valve-static): libvalve.a linked in, no libvalve.so needed, runs"

# Fully static. glibc warns that its NSS lookups (getaddrinfo, getpwuid_r, which the Rust
# standard library links but valve never calls) would need its shared libraries at run time.
pc_flags --static --cflags --libs valve
"$CC" "${cflags[@]}" -static -o "$tmp/example_all_static" ffi/c/example.c "${pc[@]}" 2>"$tmp/link.log" \
    || { cat "$tmp/link.log" >&2; fail "cc -static with pkg-config --static valve"; }
if grep -v -e 'statically linked applications requires at runtime' -e 'in function' "$tmp/link.log" | grep . >/dev/null; then
    cat "$tmp/link.log" >&2
    fail "cc -static printed more than glibc's NSS warnings"
fi
readelf -l "$tmp/example_all_static" | grep INTERP >/dev/null && fail "example_all_static has a dynamic loader"
expect_example_output "$tmp/example_all_static"
ok "cc -static example.c \$(pkg-config --static --cflags --libs valve): no dynamic loader, runs"

# Sizes: the installed (stripped) libvalve.so, and a stripped example linked with libvalve.a
# less the same program without valve (same flags and system libraries).
so_size=$(stat -c %s "$prefix/lib/libvalve.so.$version")
printf 'int main(void) { return 0; }\n' >"$tmp/empty.c"
pc_flags --static --libs-only-other --libs-only-l valve-static
without_valve=()
for flag in "${pc[@]}"; do [[ $flag == -l:libvalve.a ]] || without_valve+=("$flag"); done
"$CC" -O2 -o "$tmp/empty" "$tmp/empty.c" "${without_valve[@]}"
strip -o "$tmp/empty.stripped" "$tmp/empty"
strip -o "$tmp/example_static.stripped" "$tmp/example_static"
static_adds=$(($(stat -c %s "$tmp/example_static.stripped") - $(stat -c %s "$tmp/empty.stripped")))
echo "size: libvalve.so (stripped) $so_size bytes; a static link adds $static_adds bytes (stripped example with libvalve.a minus the same without it)"
((so_size < size_goal)) || fail "libvalve.so is $so_size bytes, over the $size_goal goal"
((static_adds < size_goal)) || fail "a static link adds $static_adds bytes, over the $size_goal goal"
ok "both under $size_goal bytes"

# A staged install: DESTDIR holds the files, which name PREFIX; pkg-config's sysroot finds them.
stage="$tmp/stage"
make --no-print-directory install DESTDIR="$stage" PREFIX=/opt/valve >/dev/null
[[ -f "$stage/opt/valve/lib/libvalve.so.$version" && ! -e /opt/valve/lib/libvalve.so.$version ]] \
    || fail "DESTDIR install did not land under $stage"
grep -qx 'prefix=/opt/valve' "$stage/opt/valve/lib/pkgconfig/valve.pc" || fail "staged valve.pc does not name PREFIX"
PKG_CONFIG_PATH="$stage/opt/valve/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage" pc_flags --cflags --libs valve
"$CC" "${cflags[@]}" -o "$tmp/example_staged" ffi/c/example.c "${pc[@]}"
expect_example_output env LD_LIBRARY_PATH="$stage/opt/valve/lib" "$tmp/example_staged"
ok "make install DESTDIR=... PREFIX=/opt/valve: files under DESTDIR, valve.pc names /opt/valve; example builds with PKG_CONFIG_SYSROOT_DIR, runs"

# CMake: find_package(valve) from CMAKE_PREFIX_PATH, shared and static.
project="$tmp/cmake project"
mkdir -p "$project"
cp ffi/c/example.c "$project/"
cat >"$project/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.13)
project(valve_example C)
find_package(valve ${VALVE_VERSION} REQUIRED)
add_executable(example example.c)
target_link_libraries(example PRIVATE valve::valve)
CMAKE
unset PKG_CONFIG_PATH
cmake_build() { # build-dir, extra configure arguments...
    local dir=$1
    shift
    cmake -S "$project" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$tmp/cmake.log" 2>&1 \
        && cmake --build "$dir" >>"$tmp/cmake.log" 2>&1
}
cmake_build "$tmp/cmake shared" -DVALVE_VERSION="${version%.*}" || { cat "$tmp/cmake.log" >&2; fail "CMake shared build"; }
ldd "$tmp/cmake shared/example" | grep "libvalve.so.$soversion => $prefix/lib/libvalve.so.$soversion" >/dev/null \
    || fail "the CMake build does not load the installed libvalve.so.$soversion"
expect_example_output "$tmp/cmake shared/example"
ok "CMake find_package(valve ${version%.*}) + valve::valve: links libvalve.so.$soversion (CMake's rpath), runs"
cmake_build "$tmp/cmake static" -Dvalve_USE_STATIC_LIBS=ON || { cat "$tmp/cmake.log" >&2; fail "CMake static build"; }
ldd "$tmp/cmake static/example" | grep libvalve >/dev/null && fail "the static CMake build needs libvalve.so"
expect_example_output "$tmp/cmake static/example"
strip -o "$tmp/cmake_static.stripped" "$tmp/cmake static/example"
cmake_static_size=$(stat -c %s "$tmp/cmake_static.stripped")
pc_static_size=$(stat -c %s "$tmp/example_static.stripped")
# Without --gc-sections the static example is some 700 KB larger.
((cmake_static_size < pc_static_size + 100000)) \
    || fail "CMake's static example is $cmake_static_size bytes, pkg-config's $pc_static_size: no --gc-sections?"
ok "CMake with valve_USE_STATIC_LIBS=ON: libvalve.a linked in with --gc-sections ($cmake_static_size bytes stripped; pkg-config's $pc_static_size), runs"
if cmake_build "$tmp/cmake newer" -DVALVE_VERSION=$((soversion + 1)).0; then
    fail "find_package(valve $((soversion + 1)).0) accepted valve $version"
fi
ok "CMake find_package(valve $((soversion + 1)).0) refuses valve $version (version file)"

echo "C install test passed"
