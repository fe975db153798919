#!/usr/bin/env bash
# Builds here what the GPU check (scripts/gpu-check.sh) needs on a GPU machine that has no
# Rust: the stripped release binaries, the stripped trainer test binary (run there with
# ALLSWEEP_TEST_DEVICE=cuda) and DRIVE's training images, in gpu-bundle/ (about 45 MB; the
# device tool carries at most 64 MiB). libtorch is not carried: the binaries find the GPU
# machine's own torch 2.11 through LD_LIBRARY_PATH (gpu-check.sh sets it).
#
#     scripts/gpu-bundle.sh        # then, through the device tool, with carry ["gpu-bundle"]:
#     bash scripts/gpu-check.sh    # results in $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
data_dir=${ALLSWEEP_DATA:-../shared/data}
bundle=gpu-bundle
max_bytes=$((60 * 1024 * 1024))

cargo build --release --bins
# The trainer's unit tests (the trainer, losses, metrics, models, checkpoints) as one binary.
test_bin=$(cargo test --release -p allsweep-worker --lib --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
[ -x "$test_bin" ] || { echo "gpu-bundle: no trainer test binary was built" >&2; exit 1; }

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/data/DRIVE"
strip -o "$bundle/bin/allsweep" target/release/allsweep
strip -o "$bundle/bin/allsweep-worker" target/release/allsweep-worker
strip -o "$bundle/bin/worker-tests" "$test_bin"
[ -d "$data_dir/DRIVE/training/images" ] || { echo "gpu-bundle: no DRIVE under $data_dir" >&2; exit 1; }
cp -r "$data_dir/DRIVE/training" "$bundle/data/DRIVE/"
git rev-parse HEAD > "$bundle/commit"
bytes=$(du -sb "$bundle" | cut -f1)
echo "gpu-bundle: $((bytes / 1024 / 1024)) MiB in $bundle/ (commit $(cat "$bundle/commit"))"
[ "$bytes" -lt "$max_bytes" ] || { echo "gpu-bundle: over $((max_bytes / 1024 / 1024)) MiB" >&2; exit 1; }
