#!/usr/bin/env bash
# The main job, for now: the training core at work. The networks at the paper's input sizes,
# the Adaptive Logarithmic Loss against the Dice loss it wraps (on both sides of gamma), the
# metrics, and one timed training step. Grows into a real sweep as the trainer lands.
set -euo pipefail
cd "$(dirname "$0")/.."
worker=target/release/allsweep-worker
vectors=worker/tests/vectors

echo "== The networks (3 input channels, paper widths)"
for arch in unet focusnet; do
  for size in 48x48 128x128 192x256; do
    "$worker" inspect model --arch "$arch" --size "$size" --json
  done
done

echo
echo "== ALL wraps the Dice loss: steeper than Dice once Dice falls below gamma = 0.1"
for case in random_fg50 good_mixed_fg30 very_good_fg30; do
  echo "-- $case"
  for kind in dice all; do
    "$worker" inspect loss --kind "$kind" --pred "$vectors/$case/pred.npy" --target "$vectors/$case/target.npy"
  done
done

echo
echo "== Every baseline on one prediction (10% foreground)"
for kind in jaccard tversky focal_tversky focal combo; do
  "$worker" inspect loss --kind "$kind" --pred "$vectors/moderate_fg10/pred.npy" --target "$vectors/moderate_fg10/target.npy"
done

echo
echo "== Metrics of that prediction"
"$worker" inspect metrics --pred "$vectors/moderate_fg10/pred.npy" --target "$vectors/moderate_fg10/target.npy"

echo
echo "== One training step of U-Net, batch 16 at 48x48, on CPU"
"$worker" inspect step --arch unet --size 48x48 --batch 16 --steps 2 --warmup 1 --device cpu
