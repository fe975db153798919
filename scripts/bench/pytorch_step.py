"""PyTorch side of the training-step benchmark: time full Adam steps of U-Net or FocusNet.

Why this exists: allsweep's claim is that its Rust/libtorch trainer is as fast as plain
PyTorch. This script times the same work the Rust `allsweep-worker inspect step`
command times - forward, batch Dice loss (smooth 1), backward, Adam step (lr 1e-4),
zero_grad - on the reference models in scripts/reference/models.py, and prints one JSON
line with the same keys as the Rust side ("impl": "pytorch").

    .venv/bin/python scripts/bench/pytorch_step.py --arch unet --size 48x48 --steps 5 --warmup 1

On a GPU (`--device cuda`) a step is timed up to the device's finishing it, and `--precision
bf16` runs the network under `torch.autocast(dtype=torch.bfloat16)` (the loss in fp32), the
peer of allsweep's `[train] precision = "bf16"`.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import losses  # noqa: E402
import models  # noqa: E402


def parse_size(text):
    """'HxW' -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=sorted(models.ARCHS), required=True)
    p.add_argument("--size", type=parse_size, required=True, help="HxW, e.g. 192x256")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    p.add_argument("--channels", type=int, default=3, choices=(1, 2, 3))
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true",
                   help="the model and the input in the channels-last memory format")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("need --steps >= 1, --warmup >= 0, --batch >= 1")
    return args


def make_batch(batch, channels, height, width, device):
    """Uniform random input and a random {0,1} target."""
    x = torch.rand(batch, channels, height, width, device=device)
    y = (torch.rand(batch, 1, height, width, device=device) < 0.5).float()
    return x, y


def train_step(model, optimizer, x, y, precision="fp32"):
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        pred = model(x)
    loss = losses.dice_loss(pred.float(), y, smooth=1.0, reduction="batch")
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model, optimizer, x, y, steps, warmup, precision="fp32"):
    """Seconds taken by each of `steps` timed steps after `warmup` untimed ones."""
    for _ in range(warmup):
        train_step(model, optimizer, x, y, precision)
    synchronize(x.device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step(model, optimizer, x, y, precision)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(0)
    height, width = args.size
    device = torch.device(args.device)
    model = models.build(args.arch, in_ch=args.channels).to(device)
    model.train()
    x, y = make_batch(args.batch, args.channels, height, width, device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = time_steps(model, optimizer, x, y, args.steps, args.warmup, args.precision)
    print(json.dumps({
        "impl": "pytorch",
        "arch": args.arch,
        "height": height,
        "width": width,
        "batch": args.batch,
        "steps": args.steps,
        "seconds_per_step_median": statistics.median(times),
        "seconds_per_step_mean": statistics.fmean(times),
        "params": models.count_params(model),
        "device": str(device),
        "precision": args.precision + ("-cl" if args.channels_last else ""),
    }))


if __name__ == "__main__":
    main()
