# allsweep: every entry point installs what it needs first (idempotent), then runs.
#   make build   release binaries in target/release
#   make demo    the main job
#   make test    every check: format, clippy (warnings denied), all tests
#   make bench   the training-step benchmark against PyTorch (minutes; not part of test)

SHELL := bash
VENV := $(CURDIR)/.venv

# libtorch comes from the project's virtual environment (PyPI's torch==2.11.0).
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup build test demo bench vectors

setup:
	@scripts/setup-torch.sh

build: setup
	cargo build --release --workspace --bins

test: setup
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo test --release --workspace

demo: build
	@scripts/demo.sh

bench: build
	$(VENV)/bin/python scripts/bench/training_step.py

# Regenerates worker/tests/vectors from the independent PyTorch reference.
vectors: setup
	$(VENV)/bin/python scripts/reference/make_vectors.py
