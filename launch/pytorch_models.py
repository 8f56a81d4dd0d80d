"""PyTorch ports of binjax's two models, for launch/benchmark_pytorch.py; torch and numpy only.

binjax's speed is set against PyTorch running the same network, so these are layer-for-layer
ports, not look-alikes: the same parameter counts (checked against the constants below), the same
padding arithmetic and, for LiteUNet, the same outputs given binjax's weights
(`load_binjax_weights`; tests/test_pytorch_port.py compares them with binjax's own forward pass).
Nothing here imports binjax or JAX: torch is no dependency of binjax, and JAX need not be
installed beside it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

UNET_PARAMETERS = 1_942_289  # binjax's configs/default.py U-Net
LITE_PARAMETERS = 182_107  # binjax's configs/lite.py LiteUNet, grey input


# ------------------------------------------------------------------------------------- U-Net

def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """binjax's default U-Net: depth 4, widths 16-256, 3x3 conv + BatchNorm + ReLU twice per
    level, 2x2 max-pool, 2x2 stride-2 transposed-conv upsampling, 1x1 head."""

    def __init__(self, in_channels: int = 1, base_width: int = 16, depth: int = 4):
        super().__init__()
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList()
        features = in_channels
        for width in widths[:-1]:
            self.encoder.append(double_conv(features, width))
            features = width
        self.bottleneck = double_conv(features, widths[-1])
        self.ups, self.decoder = nn.ModuleList(), nn.ModuleList()
        features = widths[-1]
        for width in reversed(widths[:-1]):
            self.ups.append(nn.ConvTranspose2d(features, width, 2, stride=2))
            self.decoder.append(double_conv(2 * width, width))
            features = width
        self.head = nn.Conv2d(features, 1, 1)

    def forward(self, x):
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.decoder, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


# ---------------------------------------------------------------------------------- LiteUNet
# Module names follow binjax's (binjax/models/lite.py), so that binjax's weights.npz keys map
# onto this state_dict by renaming alone (load_binjax_weights).

def same_padding(size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) of XLA's 'SAME' padding for a 3x3 window: out = ceil(size / stride), the odd
    pixel at the end. A stride-2 conv of an even side pads (0, 1), where PyTorch's padding=1 would
    pad (1, 1) and shift every output by half a pixel."""
    out = -(-size // stride)
    total = max((out - 1) * stride + 2 * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class ConvNormAct(nn.Module):
    """Conv (no bias) -> BatchNorm -> ReLU6 or nothing; 3x3 convs pad as XLA's 'SAME'."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride, bias=False)
        self.norm = nn.BatchNorm2d(cout)  # eps 1e-5, as binjax's
        self.kernel_size, self.stride, self.act = kernel_size, stride, act

    def forward(self, x):
        if self.kernel_size == 3:
            top, bottom = same_padding(x.shape[2], self.stride)
            left, right = same_padding(x.shape[3], self.stride)
            x = F.pad(x, (left, right, top, bottom))
        x = self.norm(self.conv(x))
        return F.relu6(x) if self.act else x


def depthwise3x3(channels: int, dilation: int = 1, bias: bool = False) -> nn.Conv2d:
    # Stride 1: 'SAME' pads `dilation` on every side, as padding=dilation does.
    return nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=bias)


class InvertedResidual(nn.Module):
    """[1x1 expand, ReLU6] -> 3x3 depthwise (dilated), BN, ReLU6 -> 1x1 linear project, + input."""

    def __init__(self, features: int, expansion: int, dilation: int = 1):
        super().__init__()
        hidden = features * expansion
        self.expand = ConvNormAct(features, hidden) if expansion != 1 else None
        self.depthwise = depthwise3x3(hidden, dilation)
        self.depthwise_norm = nn.BatchNorm2d(hidden)
        self.project = ConvNormAct(hidden, features, act=False)

    def forward(self, x):
        y = x if self.expand is None else self.expand(x)
        y = F.relu6(self.depthwise_norm(self.depthwise(y)))
        return x + self.project(y)


def upsample2x(x):
    """binjax's layers.upsample2x: bilinear, half-pixel centres, edges clamped."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class DecoderStage(nn.Module):
    """1x1 projection to the skip width, bilinear 2x upsampling, + skip, one inverted residual."""

    def __init__(self, in_features: int, skip_features: int, expansion: int):
        super().__init__()
        self.project = ConvNormAct(in_features, skip_features, act=False)
        self.block = InvertedResidual(skip_features, expansion)

    def forward(self, x, skip):
        return self.block(upsample2x(self.project(x)) + skip)


class LiteUNet(nn.Module):
    """binjax's LiteUNet (binjax/models/lite.py) with norm='batch', no dropout, reflect padding."""

    def __init__(self, in_channels: int = 1, widths=(16, 24, 32, 64), blocks=(1, 2, 2, 3),
                 expansion: int = 4, decoder_expansion: int = 2, head_width: int = 8):
        super().__init__()
        self.depth = len(widths)
        self.downs, self.stages = nn.ModuleList(), nn.ModuleList()
        features = in_channels
        for level, (width, count) in enumerate(zip(widths, blocks)):
            self.downs.append(ConvNormAct(features, width, kernel_size=3, stride=2))
            deepest = level == len(widths) - 1 and level > 0
            self.stages.append(nn.ModuleList(
                InvertedResidual(width, 1 if level == 0 else expansion, 2**i if deepest else 1)
                for i in range(count)))
            features = width
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(widths) - 1)):
            self.decoder.append(DecoderStage(features, widths[level], 1 if level == 0 else decoder_expansion))
            features = widths[level]
        self.squeeze = ConvNormAct(features, head_width)
        refine_in = head_width + in_channels
        self.refine_depthwise = depthwise3x3(refine_in, bias=True)
        self.refine = ConvNormAct(refine_in, head_width)
        self.head = nn.Conv2d(head_width, 1, 1)

    def forward(self, x):
        height, width = x.shape[2:]
        multiple = 2**self.depth
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:  # bottom and right, reflecting (a 1-pixel side can only repeat)
            mode = "reflect" if min(height, width) >= 2 else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        image = x
        features = []
        for down, stage in zip(self.downs, self.stages):
            x = down(x)
            for block in stage:
                x = block(x)
            features.append(x)
        for stage, skip in zip(self.decoder, reversed(features[:-1])):
            x = stage(x, skip)
        x = torch.cat([upsample2x(self.squeeze(x)), image], dim=1)
        logits = self.head(self.refine(self.refine_depthwise(x)))
        return logits[:, :, :height, :width]


def build(name: str, in_channels: int = 1) -> nn.Module:
    """'unet' or 'lite' with binjax's default sizes, its parameter count checked for grey input."""
    model = {"unet": UNet, "lite": LiteUNet}[name](in_channels)
    expected = {"unet": UNET_PARAMETERS, "lite": LITE_PARAMETERS}[name]
    count = sum(p.numel() for p in model.parameters())
    if in_channels == 1 and count != expected:
        raise SystemExit(f"PyTorch {name} has {count:,} parameters, binjax's has {expected:,}")
    return model


def _torch_name(key: str) -> tuple[str, bool]:
    """('decoder.0.project.conv.weight', is_kernel) for 'params/decoder/0/project/conv/kernel'."""
    part, *path, leaf = key.split("/")
    leaf = {"kernel": "weight", "scale": "weight", "bias": "bias",
            "mean": "running_mean", "var": "running_var"}[leaf]
    return ".".join([*path, leaf]), key.endswith("/kernel")


def load_binjax_weights(model: nn.Module, weights_npz) -> nn.Module:
    """Copies an export's weights.npz (binjax/export.py: 'params/<path>' and 'batch_stats/<path>',
    float32) into `model`, kernels HWIO -> OIHW; every tensor of the model must be given exactly
    once. Returns the model in eval mode."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    loaded = {}
    with np.load(weights_npz) as data:
        for key in data.files:
            if key.endswith("::bf16"):
                raise ValueError(f"{weights_npz}: {key} is bfloat16; export the model as float32")
            name, is_kernel = _torch_name(key)
            value = data[key].transpose(3, 2, 0, 1) if is_kernel else data[key]
            if name not in state or tuple(state[name].shape) != value.shape:
                raise ValueError(f"{weights_npz}: {key} ({value.shape}) has no place in the PyTorch model")
            loaded[name] = torch.from_numpy(np.ascontiguousarray(value, np.float32))
    missing = sorted(set(state) - set(loaded))
    if missing:
        raise ValueError(f"{weights_npz}: no weights for {missing}")
    model.load_state_dict(loaded, strict=False)
    return model.eval()
