# `make test` runs every test the project has; CI (.ci/run) calls it.
CARGO ?= cargo
LOOM_TARGET_DIR ?= target/loom

.PHONY: test lint unit loom docs fuzz

test: lint unit loom docs fuzz

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# Every atomic protocol, model-checked under loom (see tests/loom.rs).
loom:
	RUSTFLAGS="--cfg valve_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=$(LOOM_TARGET_DIR) \
		$(CARGO) test --features loom --test loom --release

docs:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps

# Every fuzz target, built and run briefly (FUZZ_SECONDS each, default 20).
fuzz:
	fuzz/smoke.sh
