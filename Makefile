# `make test` runs every test the project has; CI (.ci/run) calls it.
CARGO ?= cargo
LOOM_TARGET_DIR ?= target/loom
# Where `make install` puts the C library; DESTDIR stages it (the files still name PREFIX).
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: test lint unit loom docs header package release install build-tree install-test \
	ffi-c ffi-go ffi-python fuzz

test: lint unit loom docs header package ffi-c ffi-go ffi-python install-test fuzz

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# Every atomic protocol, model-checked under loom (see tests/loom.rs).
loom:
	RUSTFLAGS="--cfg valve_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=$(LOOM_TARGET_DIR) \
		$(CARGO) test --features loom --test loom --lib --release

docs:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

# The crate as crates.io would receive it: packaged, built from the tarball, and a dry-run publish.
package:
	$(CARGO) package --allow-dirty -p overload-valve
	$(CARGO) publish --dry-run --allow-dirty -p overload-valve

# The checked-in C header is what the pinned cbindgen generates now.
header:
	ffi/check-header.sh

# libvalve.a and libvalve.so, which every binding links.
release:
	$(CARGO) build --release

# The C library, header, pkg-config files and CMake package (ffi/c/install.sh lists them).
# Run `cargo build --release` (or `make release`) first: install builds nothing, so that
# `sudo make install` needs no Rust toolchain for root.
install:
	ffi/c/install.sh "$(DESTDIR)" "$(PREFIX)"

# The build tree as an install: valve.pc and valve-static.pc in target/pkgconfig, for
# target/release, and the link target/release/libvalve.so.0 (the SONAME) that the loader looks
# for. With PKG_CONFIG_PATH="$PWD/target/pkgconfig", pkg-config users (the Go binding) link it.
build-tree: release
	ln -sfn libvalve.so target/release/$$(readelf -d target/release/libvalve.so | \
		sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
	ffi/c/write-pc.sh "$(CURDIR)/target/pkgconfig" "$(CURDIR)" target/release include

# Installs into temporary prefixes outside the checkout and uses each binding from there.
install-test: release
	ffi/c/install-test.sh
	ffi/go/install-test.sh
	ffi/python/install-test.sh

ffi-c: release
	$(MAKE) -C ffi/c

# Against the build tree, linked statically (-tags valve_static) as the README's Go figures were.
# Go's build cache hashes neither headers outside the package nor what pkg-config says, so a
# changed valve.h could meet a cached cgo object built for the old struct layouts, and another
# checkout's build could link this one's library; their checksum in CGO_CFLAGS keys them.
ffi-go: release build-tree
	cd ffi/go && export PKG_CONFIG_PATH="$(CURDIR)/target/pkgconfig" \
		CGO_CFLAGS="-O2 -g -DVALVE_BUILD_SUM=$$(cat ../../include/valve.h ../../target/pkgconfig/*.pc | cksum | cut -d' ' -f1)" && \
		go vet ./... && go vet -tags valve_static ./... && go test -tags valve_static -race -count=1 ./...

# pip builds libvalve itself (setuptools-rust) into the package the tests use.
ffi-python:
	ffi/python/test.sh

# Every fuzz target, built and run briefly (FUZZ_SECONDS each, default 20).
fuzz:
	fuzz/smoke.sh
