#!/usr/bin/env bash
# Writes valve's pkg-config files, valve.pc and valve-static.pc, into OUTDIR.
#
#   ffi/c/write-pc.sh OUTDIR PREFIX LIBDIR INCLUDEDIR
#
# LIBDIR and INCLUDEDIR are relative to PREFIX: `lib` and `include` for an install
# (ffi/c/install.sh), `target/release` and `include` for the build tree (`make build-tree`).
#   valve.pc         -lvalve, which the linker takes as libvalve.so; Libs.private has what a fully
#                    static link (`cc -static ... $(pkg-config --static --libs valve)`) adds.
#   valve-static.pc  libvalve.a (as -l:libvalve.a, since -lvalve finds the .so first) with the
#                    system libraries the Rust standard library in it needs: valve linked in,
#                    libc still shared. Libs.private has -Wl,--gc-sections, which cgo refuses
#                    from pkg-config (it never asks for --static), so Go can use the file too.
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: $0 OUTDIR PREFIX LIBDIR INCLUDEDIR" >&2; exit 2; }
outdir=$1 prefix=$2 libdir=$3 includedir=$4
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$(dirname "$0")/../../Cargo.toml" | head -n 1)

# What `cargo rustc --release --lib --crate-type staticlib -- --print native-static-libs` prints
# (-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc), less -lgcc_s and -lc: the compiler driver adds
# them itself, and as libgcc_eh under -static, where a -lgcc_s would find no archive.
system_libs="-lutil -lrt -lpthread -lm -ldl"
# Drops the parts of the Rust standard library that valve never calls: a static link then adds
# about 0.4 MB instead of 1.1 MB (README, "C").
gc_sections="-Wl,--gc-sections"

# pkg-config splits a value on blanks unless they are escaped.
escaped_prefix=${prefix// /\\ }

mkdir -p "$outdir"
# write_pc NAME DESCRIPTION LIBS [LIBS_PRIVATE]
write_pc() {
    cat >"$outdir/$1.pc" <<PC
prefix=$escaped_prefix
libdir=\${prefix}/$libdir
includedir=\${prefix}/$includedir

Name: $1
Description: $2
URL: https://github.com/overload-valve/valve
Version: $version
Cflags: -I\${includedir}
Libs: $3
PC
    if [[ -n "${4:-}" ]]; then echo "Libs.private: $4" >>"$outdir/$1.pc"; fi
}
write_pc valve "Overload control: adaptive concurrency limits, retry budgets and circuit breakers" \
    '-L${libdir} -lvalve' "$gc_sections $system_libs"
write_pc valve-static "valve linked statically from libvalve.a" \
    "-L\${libdir} -l:libvalve.a $system_libs" "$gc_sections"
echo "wrote $outdir/valve.pc and $outdir/valve-static.pc (prefix $prefix)"
