"""Independent PyTorch reference of the two architectures allsweep trains: U-Net and FocusNet.

Why this exists: the Rust worker builds the same networks on libtorch; this file is a
separately written PyTorch version, used to cross-check parameter counts and output
shapes and as the PyTorch side of the training-step benchmark (scripts/bench/). The
architectures follow docs/paper-notes.md, section 4, with these choices where the notes
leave room:

- every 2x up-sampling is nearest; "conv2x2 same" pads one zero column/row on the
  right/bottom, then convolves with a 2x2 kernel and no padding (Keras "same");
- U-Net convs followed by BN have no bias; FocusNet convs all have a bias;
- FocusNet width w scales every written channel count c to max(1, c*w//32). The two
  fixed counts are not scaled: the single-channel outputs and the 4-channel concat of the
  four outputs that feeds the final fusion conv.

Run it to print parameter counts as JSON and check output shapes:
    .venv/bin/python scripts/reference/models.py
"""

import json

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- shared pieces


class Conv2x2Same(nn.Module):
    """Pad right/bottom by one, then a 2x2 convolution: output keeps H and W."""

    def __init__(self, cin, cout, bias):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=2, padding=0, bias=bias)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


def upsample(x, factor=2):
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- U-Net


def conv_bn_relu(cin, cout, stride=1):
    """conv3x3 (pad 1, no bias) + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNetEncoderLevel(nn.Module):
    """Two conv3x3+BN+ReLU (optional dropout) -> skip; strided conv3x3 -> down."""

    def __init__(self, cin, cout, dropout):
        super().__init__()
        self.convs = nn.Sequential(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()
        self.down = conv_bn_relu(cout, cout, stride=2)

    def forward(self, x):
        skip = self.dropout(self.convs(x))
        return skip, self.down(skip)


class UNetDecoderLevel(nn.Module):
    """Up x2 + conv2x2 same + BN + ReLU, concat [skip, up], two conv3x3+BN+ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.up_conv = nn.Sequential(
            Conv2x2Same(cin, cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )
        self.convs = nn.Sequential(conv_bn_relu(2 * cout, cout), conv_bn_relu(cout, cout))

    def forward(self, x, skip):
        up = self.up_conv(upsample(x))
        return self.convs(torch.cat([skip, up], dim=1))


class UNet(nn.Module):
    """U-Net with BN, dropout on the two deepest levels and strided downsampling."""

    def __init__(self, in_ch=3, width=32):
        super().__init__()
        c = [width * 2**k for k in range(5)]
        self.encoder = nn.ModuleList(
            UNetEncoderLevel(in_ch if k == 0 else c[k - 1], c[k], dropout=(k == 3))
            for k in range(4)
        )
        self.bottom = nn.Sequential(conv_bn_relu(c[3], c[4]), conv_bn_relu(c[4], c[4]),
                                    nn.Dropout(0.5))
        # decoder[0] is level 3 (deepest), decoder[3] is level 0.
        self.decoder = nn.ModuleList(UNetDecoderLevel(c[k + 1], c[k]) for k in (3, 2, 1, 0))
        self.head = nn.Conv2d(c[0], 1, 1, bias=True)

    def forward(self, x):
        skips = []
        for level in self.encoder:
            skip, x = level(x)
            skips.append(skip)
        x = self.bottom(x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = level(x, skip)
        return torch.sigmoid(self.head(x))


# ---------------------------------------------------------------- FocusNet


class Res(nn.Module):
    """Pre-activation residual block; `first` skips the leading BN+ReLU."""

    def __init__(self, cin, cout, stride=1, first=False):
        super().__init__()
        pre = [] if first else [nn.BatchNorm2d(cin), nn.ReLU()]
        self.path = nn.Sequential(
            *pre,
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
        )
        needs_projection = stride != 1 or cin != cout
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if needs_projection else None

    def forward(self, x):
        short = x if self.shortcut is None else self.shortcut(x)
        return self.path(x) + short


class SE(nn.Module):
    """Squeeze-and-excitation, ratio 16, bias-free FCs."""

    def __init__(self, c):
        super().__init__()
        hidden = max(1, c // 16)
        self.fc1 = nn.Linear(c, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, c, bias=False)

    def forward(self, x):
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class Up(nn.Module):
    """Nearest x2, conv2x2 same + ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = Conv2x2Same(cin, cout, bias=True)

    def forward(self, x):
        return F.relu(self.conv(upsample(x)))


class Side(nn.Module):
    """Nearest up x factor -> conv3x3(->32)+ReLU -> conv1x1(->1)+sigmoid."""

    def __init__(self, cin, mid, factor):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(cin, mid, 3, padding=1)
        self.out = nn.Conv2d(mid, 1, 1)

    def forward(self, x):
        x = F.relu(self.conv(upsample(x, self.factor)))
        return torch.sigmoid(self.out(x))


class FocusBranch1(nn.Module):
    """The small U-Net whose decoder features (conv5/6/7) gate branch 2."""

    def __init__(self, in_ch, ch):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_ch, ch(32), 3, padding=1), nn.BatchNorm2d(ch(32)), nn.LeakyReLU(0.3)
        )
        self.down1 = Res(ch(32), ch(32), stride=2, first=True)
        self.conv2 = Res(ch(32), ch(64))
        self.down2 = Res(ch(64), ch(64), stride=2)
        self.conv3 = Res(ch(64), ch(128))
        self.down3 = Res(ch(128), ch(128), stride=2)
        self.deep = Res(ch(128), ch(256))
        self.dropout = nn.Dropout(0.2)
        self.up5 = Up(ch(256), ch(256))
        self.conv5 = Res(ch(256) + ch(128), ch(256))
        self.up6 = Up(ch(256), ch(128))
        self.conv6 = Res(ch(128) + ch(64), ch(128))
        self.up7 = Up(ch(128), ch(64))
        self.conv7 = Res(ch(64) + ch(32), ch(64))

    def forward(self, x):
        """Returns (conv7, conv6, conv5) at H, H/2, H/4."""
        conv1 = self.conv1(x)
        conv2 = self.conv2(self.down1(conv1))
        conv3 = self.conv3(self.down2(conv2))
        x = self.dropout(self.deep(self.down3(conv3)))
        conv5 = self.conv5(torch.cat([self.up5(x), conv3], dim=1))
        conv6 = self.conv6(torch.cat([self.up6(conv5), conv2], dim=1))
        conv7 = self.conv7(torch.cat([self.up7(conv6), conv1], dim=1))
        return conv7, conv6, conv5


class GatedStage(nn.Module):
    """res -> SE -> * sigmoid(gate) -> SE -> res/s2."""

    def __init__(self, cin, c, first):
        super().__init__()
        self.res = Res(cin, c, first=first)
        self.se1 = SE(c)
        self.se2 = SE(c)
        self.down = Res(c, c, stride=2)

    def forward(self, x, gate):
        b = self.se1(self.res(x)) * torch.sigmoid(gate)
        return self.down(self.se2(b))


class DecoderStep(nn.Module):
    """up(cin->cout), concat [up, skip], res(cout+skip_ch -> cout)."""

    def __init__(self, cin, cout, skip_ch):
        super().__init__()
        self.up = Up(cin, cout)
        self.res = Res(cout + skip_ch, cout)

    def forward(self, x, skip):
        return self.res(torch.cat([self.up(x), skip], dim=1))


class FocusNet(nn.Module):
    """FocusNet (Kaul et al., ISBI 2019): two branches, SE attention, deep supervision
    fused into one output."""

    def __init__(self, in_ch=3, width=32):
        super().__init__()

        def ch(c):
            return max(1, c * width // 32)

        self.branch1 = FocusBranch1(in_ch, ch)
        self.conv1r = nn.Sequential(
            nn.Conv2d(in_ch, ch(64), 7, padding=3), nn.BatchNorm2d(ch(64)), nn.ReLU()
        )
        self.stages = nn.ModuleList([
            GatedStage(ch(64), ch(64), first=True),
            GatedStage(ch(64), ch(128), first=False),
            GatedStage(ch(128), ch(256), first=False),
        ])
        self.bottom = nn.Sequential(
            Res(ch(256), ch(512)), SE(ch(512)), Res(ch(512), ch(512), stride=2)
        )
        self.dec3 = DecoderStep(ch(512), ch(256), skip_ch=ch(256))
        self.dec2 = DecoderStep(ch(256), ch(128), skip_ch=ch(128))
        self.dec1 = DecoderStep(ch(128), ch(64), skip_ch=ch(64))
        self.up0 = Up(ch(64), ch(32))
        self.head4 = nn.Sequential(
            Res(ch(32) + ch(64), ch(32)), Res(ch(32), ch(16)), Res(ch(16), ch(4)),
            nn.Conv2d(ch(4), 1, 1), nn.Sigmoid(),
        )
        self.side1 = Side(ch(256), ch(32), 8)
        self.side2 = Side(ch(128), ch(32), 4)
        self.side3 = Side(ch(64), ch(32), 2)
        self.fuse = nn.Sequential(
            nn.Conv2d(4, ch(32), 3, padding=1), nn.ReLU(), nn.Conv2d(ch(32), 1, 1), nn.Sigmoid()
        )

    def forward(self, x):
        gates = self.branch1(x)  # conv7 (H), conv6 (H/2), conv5 (H/4)
        conv1r = self.conv1r(x)
        h = conv1r
        stage_out = []
        for stage, gate in zip(self.stages, gates):
            h = stage(h, gate)
            stage_out.append(h)  # s_1 (H/2), s_2 (H/4), s_3 (H/8)
        h = self.bottom(h)  # H/16
        d3 = self.dec3(h, stage_out[2])
        d2 = self.dec2(d3, stage_out[1])
        d1 = self.dec1(d2, stage_out[0])
        o4 = self.head4(torch.cat([self.up0(d1), conv1r], dim=1))
        outs = [self.side1(d3), self.side2(d2), self.side3(d1), o4]
        return self.fuse(torch.cat(outs, dim=1))


# ---------------------------------------------------------------- entry points


ARCHS = {"unet": UNet, "focusnet": FocusNet}


def build(arch, in_ch=3, width=32):
    return ARCHS[arch](in_ch=in_ch, width=width)


def check_shapes(model, in_ch, sizes):
    """Eval-mode forward on batch 1 for each (H, W): output must be [1,1,H,W] in [0,1]."""
    model.eval()
    with torch.no_grad():
        for h, w in sizes:
            y = model(torch.rand(1, in_ch, h, w))
            assert y.shape == (1, 1, h, w), (type(model).__name__, (h, w), tuple(y.shape))
            assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def main():
    torch.manual_seed(0)
    variants = {
        "unet": ("unet", 3, 32),
        "focusnet": ("focusnet", 3, 32),
        "unet_w8_in1": ("unet", 1, 8),
        "focusnet_w8_in1": ("focusnet", 1, 8),
    }
    counts = {}
    sizes = [(48, 48), (128, 128), (192, 256)]
    for name, (arch, in_ch, width) in variants.items():
        model = build(arch, in_ch, width)
        counts[name] = count_params(model)
        check_shapes(model, in_ch, sizes)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
