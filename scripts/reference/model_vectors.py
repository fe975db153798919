"""Generate the network cross-check vectors in worker/tests/vectors/models/.

Why this exists: the Rust networks must compute the same function as the independent PyTorch
reference (models.py), forward and backward, not only have the same parameter counts. Both
sides fill every tensor of the state dict from the same formula (no weights to ship), run
one training-mode pass (batch-norm batch statistics, dropout masks from the same counter-based
hash as the Rust `SeededDropout`) with a squared-error loss and backward, then one eval-mode
pass, and the Rust test (worker/tests/reference_models.rs) compares: every output pixel,
the loss, every parameter's gradient (sum, sum of absolute values, L2 norm) and every
running statistic after the training pass. Float64 formulas, float32 networks.

Run from the repository root:  .venv/bin/python scripts/reference/model_vectors.py
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "worker" / "tests" / "vectors" / "models"
STEP_SEED = 20211
CASES = {
    # name: (arch, width, in_channels, (N, H, W))
    "focusnet_w8": ("focusnet", 8, 3, (2, 32, 32)),
    "unet_w4": ("unet", 4, 3, (2, 32, 32)),
}
MASK64 = (1 << 64) - 1


def formula(name, shape):
    """The value of every element of state-dict entry `name` (both sides use this)."""
    n = math.prod(shape)
    phase = (sum(name.encode()) % 97) / 10.0
    base = torch.sin(torch.arange(n, dtype=torch.float64) * 0.731 + phase)
    if name.endswith("running_var"):
        values = 1.0 + 0.5 * base.abs()
    elif name.endswith("running_mean"):
        values = 0.1 * base
    elif len(shape) == 1 and name.endswith(".weight"):  # batch-norm gamma
        values = 1.0 + 0.2 * base
    elif len(shape) == 1:  # biases and batch-norm beta
        values = 0.1 * base
    else:
        fan_in = shape[1] * math.prod(shape[2:])
        values = base * math.sqrt(6.0 / fan_in)
    return values.reshape(shape).to(torch.float32)


def pattern(shape, scale, shift):
    n = math.prod(shape)
    return torch.sin(torch.arange(n, dtype=torch.float64) * scale + shift).reshape(shape)


def hashed_uniform(numel, seed):
    """The Rust `hashed_uniform`: splitmix64's finaliser of index * golden + seed."""
    with np.errstate(over="ignore"):
        h = (np.arange(numel, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed & MASK64))
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(40)).astype(np.float32) / float(1 << 24)


class HashedDropout(nn.Module):
    """The Rust `SeededDropout`: the mask of layer `layer` at step seed `seed`."""

    def __init__(self, p, layer):
        super().__init__()
        self.p, self.layer, self.seed = p, layer, 0

    def forward(self, x):
        if not self.training:
            return x
        seed = self.seed ^ ((self.layer * 0xD6E8FEB86659FD93) & MASK64)
        keep = torch.from_numpy(hashed_uniform(x.numel(), seed)).reshape(x.shape) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


def seeded_dropouts(model, arch):
    """Swaps the reference's dropout layers for the Rust ones, with the Rust layer numbers."""
    if arch == "focusnet":
        layers = {"drop4": 0}
    else:
        model.down3.dropout = HashedDropout(0.5, 3)
        layers = {"bottom_dropout": 4}
    for attr, layer in layers.items():
        setattr(model, attr, HashedDropout(getattr(model, attr).p, layer))
    for module in model.modules():
        if isinstance(module, HashedDropout):
            module.seed = STEP_SEED


def case(arch, width, in_ch, nhw):
    model = models.build(arch, in_ch, width)
    seeded_dropouts(model, arch)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    with torch.no_grad():
        for name, tensor in state.items():
            tensor.copy_(formula(name, tuple(tensor.shape)))
    # In float64 from here (the values above are float32's): float32 convolutions round
    # differently from one CPU to another, by more than the test's tolerance after thirty
    # batch norms in training mode; float64 makes the check the same on every machine.
    model.double()
    n, h, w = nhw
    x = (0.5 + 0.5 * pattern((n, in_ch, h, w), 0.1, 0.3)).float().double()
    target = (pattern((n, 1, h, w), 0.05, 0.0) > 0).double()

    model.train()
    out = model(x)
    loss = ((out - target) ** 2).mean()
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad.double()
        grads[name] = [g.sum().item(), g.abs().sum().item(), g.norm().item()]
    running = {
        name: [t.double().sum().item(), t.double().abs().sum().item()]
        for name, t in model.state_dict().items()
        if name.endswith("running_mean") or name.endswith("running_var")
    }
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    return {
        "arch": arch,
        "width": width,
        "in_channels": in_ch,
        "input_shape": [n, in_ch, h, w],
        "step_seed": STEP_SEED,
        "train": {
            "output": [round(v, 12) for v in out.detach().double().flatten().tolist()],
            "loss": loss.item(),
            "grads": grads,
            "running": running,
        },
        "eval": {"output": [round(v, 12) for v in eval_out.double().flatten().tolist()]},
    }


def main():
    torch.manual_seed(0)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, (arch, width, in_ch, nhw) in CASES.items():
        data = case(arch, width, in_ch, nhw)
        path = OUT_DIR / f"{name}.json"
        path.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
        print(f"{path.relative_to(REPO)}: {len(data['train']['grads'])} parameters, loss {data['train']['loss']:.6f}")


if __name__ == "__main__":
    main()
