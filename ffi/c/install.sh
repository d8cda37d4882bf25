#!/usr/bin/env bash
# Installs valve's C library, built by `cargo build --release`, under DESTDIR + PREFIX
# (`make install PREFIX=... DESTDIR=...` calls it):
#   include/valve.h
#   lib/libvalve.a                 stripped of debug information
#   lib/libvalve.so.X.Y.Z          stripped, SONAME libvalve.so.X (build.rs), with the links
#   lib/libvalve.so.X, lib/libvalve.so
#   lib/pkgconfig/valve.pc, valve-static.pc          (ffi/c/write-pc.sh)
#   lib/cmake/valve/valveConfig.cmake, valveConfigVersion.cmake   (find_package(valve))
# The files name PREFIX, not DESTDIR: DESTDIR stages an install that is then moved to PREFIX.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 DESTDIR PREFIX" >&2; exit 2; }
destdir=$1 prefix=$2
[[ $prefix == /* ]] || { echo "PREFIX must be an absolute path, not '$prefix'" >&2; exit 2; }
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
soversion=${version%%.*}
strip=${STRIP:-strip}
built=target/release
for lib in libvalve.a libvalve.so; do
    [[ -f $built/$lib ]] || { echo "$built/$lib is missing: run cargo build --release first" >&2; exit 1; }
done

root=$destdir$prefix
install -d "$root/include" "$root/lib/pkgconfig"
install -m 644 include/valve.h "$root/include/valve.h"
install -m 644 "$built/libvalve.a" "$root/lib/libvalve.a"
"$strip" --strip-debug "$root/lib/libvalve.a"
install -m 755 "$built/libvalve.so" "$root/lib/libvalve.so.$version"
"$strip" --strip-unneeded "$root/lib/libvalve.so.$version"
ln -sfn "libvalve.so.$version" "$root/lib/libvalve.so.$soversion"
ln -sfn "libvalve.so.$soversion" "$root/lib/libvalve.so"
ffi/c/write-pc.sh "$root/lib/pkgconfig" "$prefix" lib include >/dev/null

if command -v "${CMAKE:-cmake}" >/dev/null; then
    install -d "$root/lib/cmake/valve"
    sed -e "s/@VERSION@/$version/g" -e "s/@SOVERSION@/$soversion/g" \
        ffi/c/cmake/valveConfig.cmake.in >"$root/lib/cmake/valve/valveConfig.cmake"
    "${CMAKE:-cmake}" -DVERSION="$version" -DOUTPUT="$root/lib/cmake/valve/valveConfigVersion.cmake" \
        -DCMAKE_SIZEOF_VOID_P="$(($(getconf LONG_BIT) / 8))" -P ffi/c/cmake/write-version-file.cmake
    cmake_note=", lib/cmake/valve"
else
    cmake_note=" (no CMake package: cmake, which writes its version file, is not installed)"
fi
echo "installed valve $version into $root: include/valve.h, lib/libvalve.a, lib/libvalve.so.$version" \
    "(+ .so.$soversion, .so), lib/pkgconfig/valve.pc, valve-static.pc$cmake_note"
