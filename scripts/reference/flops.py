"""Floating-point operations of one training step per image, for the presets' time estimates.

Why this exists: presets/README.md estimates each paper experiment's time on one H100. No GPU
was at hand when they were written, so the estimate is FLOPs / an assumed sustained rate: this
counts the FLOPs of forward + backward of the reference models (the same networks as allsweep's,
`models.py`) with PyTorch's FlopCounterMode, per image, at the paper's input sizes.

    .venv/bin/python scripts/reference/flops.py
"""

import json

import torch
from torch.utils.flop_counter import FlopCounterMode

import models

SIZES = {"drive": (48, 48), "dsb2018": (128, 128), "isic2018": (192, 256)}


def train_step_flops(arch, size):
    model = models.build(arch, in_ch=3)
    model.train()
    x = torch.rand(2, 3, *size)
    with FlopCounterMode(display=False) as counter:
        model(x).mean().backward()
    return counter.get_total_flops() / 2


def main():
    out = {f"{arch}/{name}": train_step_flops(arch, size) for arch in ("unet", "focusnet") for name, size in SIZES.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
