"""Independent PyTorch reference of the two architectures allsweep trains: U-Net and FocusNet.

Why this exists: the Rust worker builds the same networks on libtorch; this file is a
separately written PyTorch version of the authors' Keras networks (TheFocusNetSeries:
`focusnet()` and `unet()` in models.py, the blocks in resnet.py, se.py and layers.py), used to
cross-check parameter counts, the forward and backward pass (model_vectors.py) and as the
PyTorch side of the training-step benchmark (scripts/bench/). docs/networks.md maps every
part to its Keras lines. Keras semantics kept here:

- "same" padding as TensorFlow computes it: stride 1 pads (k-1)/2 each side (a 2x2 kernel:
  one row/column after), stride 2 on even sides pads k-2, the odd one after;
- kernels `he_normal` (a normal truncated at 2 sd, variance 2/fan_in), Keras's default
  `glorot_uniform` where a layer declares none; biases 0;
- batch norm gamma 1, beta 0, eps 1e-3, Keras momentum 0.99 (PyTorch's 0.01);
- FocusNet's residual blocks: `is_first_layer=True` is stride 1 without the leading BN-ReLU,
  `False` stride 2 with it; every block convolution has a bias and L2 1e-4, the initial 3x3
  convolution no bias and L2 5e-4, the 7x7 `_conv_bn_relu` L2 1e-4 (`l2_terms`);
- concatenations put the skip first, as `Concatenate()([skip, up])`.

Module attributes are named as the Rust variables are (after the Keras tensors), so the two
state dicts share their keys. FocusNet width w scales every written channel count c to
max(1, c*w//32); the single-channel outputs and the 4-channel concat are not scaled.

Run it to print parameter counts as JSON and check output shapes:
    .venv/bin/python scripts/reference/models.py
"""

import json
import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- Keras semantics


def he_normal_(w):
    """Keras `he_normal`: truncated at 2 sd, scaled so the variance is 2 / fan_in."""
    fan_in = w.shape[1] * math.prod(w.shape[2:])
    with torch.no_grad():
        nn.init.trunc_normal_(w, 0.0, 1.0, -2.0, 2.0)
        w.mul_(math.sqrt(2.0 / fan_in) / 0.87962566103423978)


def glorot_uniform_(w):
    receptive = math.prod(w.shape[2:])
    limit = math.sqrt(6.0 / ((w.shape[0] + w.shape[1]) * receptive))
    with torch.no_grad():
        w.uniform_(-limit, limit)


class KConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (even input sides) and Keras initialisers."""

    def __init__(self, cin, cout, k, stride=1, bias=True, init=he_normal_, valid=False):
        super().__init__(cin, cout, k, stride=stride, padding=0, bias=bias)
        total = 0 if valid else (k - 1 if stride == 1 else max(k - stride, 0))
        self.pad = (total // 2, total - total // 2) * 2
        init(self.weight)
        if bias:
            nn.init.zeros_(self.bias)

    def forward(self, x):
        if any(self.pad):
            x = F.pad(x, self.pad)
        return super().forward(x)


def bn(c):
    """Keras BatchNormalization(): gamma 1, beta 0, eps 1e-3, momentum 0.99."""
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


def upsample(x, factor=2):
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- U-Net


class ConvBnRelu(nn.Module):
    """conv (no bias, he_normal) + BN + ReLU."""

    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        self.conv = KConv(cin, cout, k, stride=stride, bias=False)
        self.bn = bn(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Pair(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = ConvBnRelu(cin, cout)
        self.conv2 = ConvBnRelu(cout, cout)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class UNetEncoderLevel(nn.Module):
    """Two conv3x3+BN+ReLU (optional dropout) -> skip; strided conv3x3 -> down."""

    def __init__(self, cin, cout, dropout):
        super().__init__()
        self.block = Pair(cin, cout)
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()
        self.stride2 = ConvBnRelu(cout, cout, stride=2)

    def forward(self, x):
        skip = self.dropout(self.block(x))
        return skip, self.stride2(skip)


class UNetDecoderLevel(nn.Module):
    """Up x2 + conv2x2 same + BN + ReLU, concat [skip, up], two conv3x3+BN+ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.up_conv = KConv(cin, cout, 2, bias=False)
        self.up_bn = bn(cout)
        self.block = Pair(2 * cout, cout)

    def forward(self, x, skip):
        up = F.relu(self.up_bn(self.up_conv(upsample(x))))
        return self.block(torch.cat([skip, up], dim=1))


class UNet(nn.Module):
    """U-Net with BN, dropout on the two deepest levels and strided downsampling; the
    authors' head (3x3 to 2 channels + ReLU, 1x1 + sigmoid)."""

    def __init__(self, in_ch=3, width=32):
        super().__init__()
        c = [width * 2**k for k in range(5)]
        for k in range(4):
            setattr(self, f"down{k}", UNetEncoderLevel(in_ch if k == 0 else c[k - 1], c[k], dropout=(k == 3)))
        self.bottom = Pair(c[3], c[4])
        self.bottom_dropout = nn.Dropout(0.5)
        for k in (3, 2, 1, 0):
            setattr(self, f"up{k}", UNetDecoderLevel(c[k + 1], c[k]))
        self.head_conv = KConv(c[0], 2, 3)
        self.head = KConv(2, 1, 1, init=glorot_uniform_)

    def forward(self, x):
        skips = []
        for k in range(4):
            skip, x = getattr(self, f"down{k}")(x)
            skips.append(skip)
        x = self.bottom_dropout(self.bottom(x))
        for k in (3, 2, 1, 0):
            x = getattr(self, f"up{k}")(x, skips[k])
        return torch.sigmoid(self.head(F.relu(self.head_conv(x))))

    def l2_terms(self):
        return []


# ---------------------------------------------------------------- FocusNet

L2_RESIDUAL = 1e-4
L2_INITIAL = 5e-4


class Res(nn.Module):
    """`_residual_block(basic_block, ...)`: stride 2 means BN-ReLU first (is_first_layer=False)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.stride = stride
        if stride == 2:
            self.bn1 = bn(cin)
        self.conv1 = KConv(cin, cout, 3, stride=stride)
        self.bn2 = bn(cout)
        self.conv2 = KConv(cout, cout, 3)
        self.shortcut = KConv(cin, cout, 1, stride=stride, valid=True) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        h = self.conv1(F.relu(self.bn1(x)) if self.stride == 2 else x)
        residual = self.conv2(F.relu(self.bn2(h)))
        return (x if self.shortcut is None else self.shortcut(x)) + residual

    def kernels(self):
        return [m.weight for m in (self.conv1, self.conv2, self.shortcut) if m is not None]


class SE(nn.Module):
    """`squeeze_excite_block`, ratio 16, bias-free he_normal Dense layers."""

    def __init__(self, c):
        super().__init__()
        hidden = max(1, c // 16)
        self.fc1 = nn.Linear(c, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, c, bias=False)
        he_normal_(self.fc1.weight)
        he_normal_(self.fc2.weight)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


class Up(KConv):
    """UpSampling2D x2, Conv2D(c, 2, relu, same); the caller concatenates [skip, up]."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 2)

    def forward(self, x):
        return F.relu(super().forward(upsample(x)))


class Head(nn.Module):
    """Conv2D(32, 3, relu) then Conv2D(1, 1, sigmoid)."""

    def __init__(self, cin, hidden):
        super().__init__()
        self.conv = KConv(cin, hidden, 3)
        self.out = KConv(hidden, 1, 1)

    def forward(self, x):
        return torch.sigmoid(self.out(F.relu(self.conv(x))))


class FocusNet(nn.Module):
    """`focusnet()`: branch 1 (a small U-Net) gates branch 2 through SE; four outputs fused."""

    def __init__(self, in_ch=3, width=32):
        super().__init__()

        def ch(c):
            return max(1, c * width // 32)

        # Branch 1.
        self.conv1 = KConv(in_ch, ch(32), 3, bias=False)
        self.conv1_bn = bn(ch(32))
        self.pool1 = Res(ch(32), ch(32), 2)
        self.conv2 = Res(ch(32), ch(64))
        self.pool2 = Res(ch(64), ch(64), 2)
        self.conv3 = Res(ch(64), ch(128))
        self.pool3 = Res(ch(128), ch(128), 2)
        self.conv4 = Res(ch(128), ch(256))
        self.drop4 = nn.Dropout(0.2)
        self.up5 = Up(ch(256), ch(256))
        self.conv5 = Res(ch(128) + ch(256), ch(256))
        self.up6 = Up(ch(256), ch(128))
        self.conv6 = Res(ch(64) + ch(128), ch(128))
        self.up7 = Up(ch(128), ch(64))
        self.conv7 = Res(ch(32) + ch(64), ch(64))
        # Branch 2.
        self.conv1r = KConv(in_ch, ch(64), 7)
        self.conv1r_bn = bn(ch(64))
        for k, (cin, c) in enumerate(((ch(64), ch(64)), (ch(64), ch(128)), (ch(128), ch(256))), start=1):
            setattr(self, f"block{k}", Res(cin, c))
            setattr(self, f"se{k}", SE(c))
            setattr(self, f"block{k}se", SE(c))
            setattr(self, f"block{k}b", Res(c, c, 2))
        self.block4 = Res(ch(256), ch(512))
        self.block4se = SE(ch(512))
        self.block4b = Res(ch(512), ch(512), 2)
        self.up2_5 = Up(ch(512), ch(256))
        self.conv2_5 = Res(2 * ch(256), ch(256))
        self.out1 = Head(ch(256), ch(32))
        self.up2_6 = Up(ch(256), ch(128))
        self.conv2_6 = Res(2 * ch(128), ch(128))
        self.out2 = Head(ch(128), ch(32))
        self.up2_7 = Up(ch(128), ch(64))
        self.conv2_7 = Res(2 * ch(64), ch(64))
        self.out3 = Head(ch(64), ch(32))
        self.up2_8 = Up(ch(64), ch(32))
        self.conv2_8 = Res(ch(64) + ch(32), ch(32))
        self.conv2_8b = Res(ch(32), ch(16))
        self.conv2_8c = Res(ch(16), ch(4))
        self.out4 = KConv(ch(4), 1, 1)
        self.out_concat = Head(4, ch(32))

    def forward(self, x):
        conv1 = F.leaky_relu(self.conv1_bn(self.conv1(x)), 0.3)
        conv2 = self.conv2(self.pool1(conv1))
        conv3 = self.conv3(self.pool2(conv2))
        drop4 = self.drop4(self.conv4(self.pool3(conv3)))
        conv5 = self.conv5(torch.cat([conv3, self.up5(drop4)], 1))
        conv6 = self.conv6(torch.cat([conv2, self.up6(conv5)], 1))
        conv7 = self.conv7(torch.cat([conv1, self.up7(conv6)], 1))
        h = conv1r = F.relu(self.conv1r_bn(self.conv1r(x)))
        outs = []
        for k, gate in zip((1, 2, 3), (conv7, conv6, conv5)):
            b = getattr(self, f"se{k}")(getattr(self, f"block{k}")(h)) * torch.sigmoid(gate)
            h = getattr(self, f"block{k}b")(getattr(self, f"block{k}se")(b))
            outs.append(h)
        block1b, block2b, block3b = outs
        block4b = self.block4b(self.block4se(self.block4(block3b)))
        conv2_5 = self.conv2_5(torch.cat([block3b, self.up2_5(block4b)], 1))
        conv2_6 = self.conv2_6(torch.cat([block2b, self.up2_6(conv2_5)], 1))
        conv2_7 = self.conv2_7(torch.cat([block1b, self.up2_7(conv2_6)], 1))
        conv2_8 = self.conv2_8(torch.cat([conv1r, self.up2_8(conv2_7)], 1))
        conv2_8 = self.conv2_8c(self.conv2_8b(conv2_8))
        out = [
            self.out1(upsample(conv2_5, 8)),
            self.out2(upsample(conv2_6, 4)),
            self.out3(upsample(conv2_7, 2)),
            torch.sigmoid(self.out4(conv2_8)),
        ]
        return self.out_concat(torch.cat(out, 1))

    def l2_terms(self):
        """(kernel, coefficient) for every kernel a Keras regulariser covers."""
        terms = [(self.conv1.weight, L2_INITIAL), (self.conv1r.weight, L2_RESIDUAL)]
        for module in self.modules():
            if isinstance(module, Res):
                terms += [(w, L2_RESIDUAL) for w in module.kernels()]
        return terms


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
