#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/seeds/), so that they start from inputs a
real client sends rather than from nothing:

- spec: every preset (presets/*.toml) and a few small specs that reach each grid form.
- worker_rpc: one well-formed message of each of the nine types a worker sends, as the
  target reads its input: a byte picking the type, a byte for the trial's epochs, then the
  message in protobuf's encoding (written here by hand: the messages are flat and small).

Run from the repository root: python3 fuzz/make_seeds.py
"""

import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
PROTOCOL_VERSION = 3  # allsweep_proto::PROTOCOL_VERSION
CALLER = "fuzz-worker-1"  # the caller of fuzz_targets/worker_rpc.rs


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, value):
    """One field: an int is a varint, a float a double, str/bytes length-delimited."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, float):
        return varint(number << 3 | 1) + struct.pack("<d", value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(n, v) for n, v in fields)


TRIAL = "table-1-omega-x-epsilon-3f2a9c1b7e-0123456789abcdef"
METRICS = ["train_loss", "validation_loss", "jaccard", "dice", "precision", "recall", "tnr",
           "accuracy", "auc", "seconds", "train_images_per_second", "custom.learning_rate"]


def worker_messages():
    progress = message((1, TRIAL), (2, 1), (3, 2))
    points = [message((1, 2), (2, name), (3, 0.5)) for name in METRICS]
    header = message((1, TRIAL), (2, 1), (3, 2), (4, 20), (5, 200), (6, "ab" * 32))
    test = message((1, 0.5), (2, 0.6), (3, 0.75), (4, 0.6), (5, 0.9), (6, 0.8), (7, 0.9))
    roc = [message((1, t), (2, f), (3, p)) for t, f, p in [(float("inf"), 0.0, 0.0), (0.5, 0.1, 0.8), (0.0, 1.0, 1.0)]]
    return {
        "register": (0, message((1, PROTOCOL_VERSION), (2, "gpu-01"), (3, "cuda:0 NVIDIA H100"),
                                (4, 80 << 30), (5, 2), (6, "0.1.0"), (7, CALLER))),
        "lease": (1, message((1, CALLER), (2, 2))),
        "heartbeat": (2, message((1, CALLER), (2, progress), (2, progress))),
        "metrics": (3, message((1, TRIAL), (2, 1), *[(3, p) for p in points])),
        "checkpoint-header": (4, message((1, header))),
        "checkpoint-data": (4, message((2, b"\x00" * 100))),
        "checkpoint-request": (5, message((1, TRIAL), (2, 1))),
        "complete": (6, message((1, TRIAL), (2, 1), (3, test), *[(4, r) for r in roc],
                                (5, "by image: 12 train / 4 held out"), (6, 2), (7, 1234))),
        "fail": (7, message((1, TRIAL), (2, 1), (3, "diverged: the loss was NaN at epoch 3"), (5, 2))),
        "release": (8, message((1, CALLER), (2, progress))),
    }


SPECS = {
    "grid-inline-tables": '''name = "DRIVE: U-Net, Dice vs ALL"
seeds = [0, 1]
max_attempts = 3
keep_checkpoints = false
[dataset]
kind = "synthetic"
shape = "vessels"
images = 16
[model]
arch = "unet"
width = 8
[train]
epochs = 2
[loss]
kind = "all"
[grid]
loss = [{kind = "dice"}, {kind = "all", gamma = 0.1}]
"model.arch" = ["unet", "focusnet"]
''',
    "grid-subtables": '''name = 'nested'
dataset = { kind = "synthetic", size = [32, 32] }
model.arch = "focusnet"
train = {epochs = 0x2, lr = 1e-3}
[loss]
kind = "all"
[grid.loss]
omega = [6, 8.0, 1.2e1]
[grid.model]
width = [8, 16]
''',
}


def main():
    for target in ("spec", "worker_rpc"):
        shutil.rmtree(SEEDS / target, ignore_errors=True)
        (SEEDS / target).mkdir(parents=True)
    for preset in sorted((ROOT / "presets").glob("*.toml")):
        shutil.copy(preset, SEEDS / "spec" / preset.name)
    for name, text in SPECS.items():
        (SEEDS / "spec" / f"{name}.toml").write_text(text)
    for name, (kind, body) in worker_messages().items():
        (SEEDS / "worker_rpc" / name).write_bytes(bytes([kind, 2]) + body)


if __name__ == "__main__":
    main()
