# allsweep: every entry point installs what it needs first (idempotent), then runs.
#   make build   release binaries in target/release
#   make demo    the main job
#   make test    every check: format, clippy (warnings denied), all tests, then the system tests
#   make test-system  the system tests alone (tests/system/: Kubernetes manifests, Docker, Slurm,
#                several hosts; root; TESTS="k8s slurm" runs some)
#   make bench   the training-step benchmark against PyTorch (minutes; not part of test)
#   make fuzz    the cargo-fuzz targets, FUZZ_SECONDS each (default 300; nightly Rust; not part of test)
#   make chaos   the fault-injection suite on SQLite and a private Postgres (minutes, root; not part of test)

SHELL := bash
VENV := $(CURDIR)/.venv

# libtorch comes from the project's virtual environment (PyPI's torch==2.11.0).
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup setup-web-tests build test test-system demo bench vectors fuzz chaos

setup:
	@scripts/setup-torch.sh

# What the dashboard and metrics tests drive for real: Debian's chromium, chromium-driver, prometheus.
setup-web-tests:
	@scripts/setup-web-tests.sh

build: setup
	cargo build --release --workspace --bins

test: setup setup-web-tests
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo test --release --workspace
	tests/system/run.sh

# Each system test installs what it drives (Debian's docker.io, docker-compose, debootstrap,
# slurm-wlm, munge; PyPI's kubernetes-validate in .venv-k8s) and caches base images under
# ~/.cache/allsweep.
test-system: build
	tests/system/run.sh $(TESTS)

demo: build
	@scripts/demo.sh

bench: build
	$(VENV)/bin/python scripts/bench/training_step.py

# Regenerates worker/tests/vectors (losses, metrics, networks) from the independent PyTorch reference.
vectors: setup
	$(VENV)/bin/python scripts/reference/make_vectors.py
	$(VENV)/bin/python scripts/reference/model_vectors.py
	$(VENV)/bin/python scripts/reference/init_stats.py

# The fuzz targets in fuzz/ (a workspace of its own), each for FUZZ_SECONDS, from the seeds
# in fuzz/seeds/ and the corpus grown by earlier runs (fuzz/corpus/, not in git). A crash
# stops the run and leaves its input in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := spec worker_rpc

fuzz:
	@rustup run nightly rustc --version >/dev/null 2>&1 || { echo "make fuzz needs a nightly Rust toolchain: rustup toolchain install nightly"; exit 1; }
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target && \
		cargo +nightly fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

# The fault-injection suite at full counts (chaos/): 100 worker SIGKILLs, 20 SIGTERMs, 10
# coordinator SIGKILLs, Postgres restarts (fast and immediate) and a partition longer than the
# lease, on SQLite and on a private Postgres that it starts with initdb; then every invariant
# checked with SQL against a fault-free run. Needs root (network namespace, postgres user).
# CHAOS_ARGS passes options (--seed N to repeat a plan, --backends sqlite); the short version
# is coordinator/tests/chaos.rs, in make test.
chaos: build
	target/release/allsweep-chaos $(CHAOS_ARGS)
