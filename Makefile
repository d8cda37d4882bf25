# `make test` runs every test the project has; CI (.ci/run) calls it.
CARGO ?= cargo
LOOM_TARGET_DIR ?= target/loom

.PHONY: test lint unit loom docs header package release ffi-c ffi-go ffi-python fuzz

test: lint unit loom docs header package ffi-c ffi-go ffi-python fuzz

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

ffi-c: release
	$(MAKE) -C ffi/c

# Go's build cache does not hash headers outside the package, so a changed valve.h could meet
# a cached cgo object built for the old struct layouts; its checksum in CGO_CFLAGS keys them.
ffi-go: release
	cd ffi/go && export CGO_CFLAGS="-O2 -g -DVALVE_HEADER_SUM=$$(cksum < ../../include/valve.h | cut -d' ' -f1)" && \
		go vet ./... && go test -race -count=1 ./...

ffi-python: release
	ffi/python/test.sh

# Every fuzz target, built and run briefly (FUZZ_SECONDS each, default 20).
fuzz:
	fuzz/smoke.sh
