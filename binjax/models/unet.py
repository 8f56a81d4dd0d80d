"""Classic U-Net (Ronneberger et al. 2015) for binarization: logits out, any H x W.

At the defaults (depth 4, base_width 16, BatchNorm, transposed-conv upsampling) the layout is the
PyTorch reference the project compares against: two 3x3 conv+BN+ReLU per level with widths
16, 32, 64, 128, a 256-wide bottleneck, 2x2 transposed convs up, and a 1x1 head. Our convs drop
the bias when a norm follows (BatchNorm's shift makes it redundant), so the count is 1,942,289
parameters instead of the reference's 1,943,761 (the 1,472 conv biases); see tests/test_models.py
for the formula.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from binjax.models import layers


class DoubleConv(nnx.Module):
    """Two 3x3 conv-norm-ReLU layers: one U-Net level."""

    def __init__(self, in_features: int, out_features: int, *, norm: str, dtype, rngs: nnx.Rngs):
        self.conv1 = layers.ConvNormAct(in_features, out_features, norm=norm, dtype=dtype, rngs=rngs)
        self.conv2 = layers.ConvNormAct(out_features, out_features, norm=norm, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv2(self.conv1(x))


class UNet(nnx.Module):
    """U-Net with `depth` downsamplings; inputs of any size are padded to a multiple of 2**depth.

    Args:
      in_channels: 1 (grey) or 3 (RGB), one more with a page-context channel.
      depth: number of 2x downsamplings; the bottleneck runs at 1/2**depth resolution.
      base_width: width of the first level; level i has base_width * 2**i channels and the
        bottleneck base_width * 2**depth.
      widths: explicit widths, one per level plus the bottleneck (depth + 1 values); overrides
        base_width.
      norm: 'batch' | 'group' | 'none'.
      upsample: 'transpose' (2x2 transposed conv) | 'resize' (bilinear resize + 3x3 conv).
      dropout: dropout rate applied once, to the bottleneck output (as in the original U-Net,
        which dropped out at the end of the contracting path).
      skips: False removes the skip connections (ablation): the decoder sees only the upsampled
        features, and its first conv per level is narrower accordingly.
      pad_mode: how inputs are padded to a multiple of 2**depth: 'reflect' | 'edge'.
      remat: recompute each encoder/decoder block's activations in the backward pass instead
        of keeping them (less memory, ~1/3 more compute per step).
      dtype: compute dtype (e.g. jnp.bfloat16); parameters stay float32 and logits come back float32.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        depth: int = 4,
        base_width: int = 16,
        widths: Sequence[int] | None = None,
        norm: str = "batch",
        upsample: str = "transpose",
        dropout: float = 0.0,
        skips: bool = True,
        pad_mode: str = "reflect",
        remat: bool = False,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if depth < 1:
            raise ValueError(f"UNet: depth must be >= 1, got {depth}")
        if widths is None:
            widths = [base_width * 2**i for i in range(depth + 1)]
        widths = [int(w) for w in widths]
        if len(widths) != depth + 1:
            raise ValueError(
                f"UNet: widths needs depth + 1 = {depth + 1} values (levels + bottleneck), got {widths}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNet: dropout must be in [0, 1), got {dropout}")
        if pad_mode not in ("reflect", "edge"):
            raise ValueError(f"UNet: pad_mode must be 'reflect' or 'edge', got {pad_mode!r}")
        layers.check_norm(norm)
        self.in_channels = in_channels
        self.depth = depth
        self.widths = tuple(widths)
        self.skips = skips
        self.pad_mode = pad_mode
        self.remat = bool(remat)
        self.dtype = dtype

        encoder = []
        features = in_channels
        for width in widths[:-1]:
            encoder.append(DoubleConv(features, width, norm=norm, dtype=dtype, rngs=rngs))
            features = width
        self.encoder = nnx.List(encoder)
        self.bottleneck = DoubleConv(features, widths[-1], norm=norm, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

        ups, decoder = [], []
        features = widths[-1]
        for width in reversed(widths[:-1]):
            ups.append(layers.Upsample(features, width, mode=upsample, dtype=dtype, rngs=rngs))
            decoder.append(DoubleConv(
                2 * width if skips else width, width, norm=norm, dtype=dtype, rngs=rngs))
            features = width
        self.ups = nnx.List(ups)
        self.decoder = nnx.List(decoder)
        self.head = layers.Pointwise(features, 1, dtype=dtype,
                                     kernel_init=nnx.initializers.lecun_normal(), rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        layers.check_input(x, self.in_channels, "UNet")
        x, size = layers.pad_to_multiple(x.astype(self.dtype), 2**self.depth, self.pad_mode)
        features = []
        for block in self.encoder:
            x = layers.call_block(block, x, remat=self.remat)
            features.append(x)
            x = layers.max_pool_2x2(x)
        x = layers.call_block(self.bottleneck, x, remat=self.remat)
        x = layers.run_dropout(self.dropout, x, rngs, "UNet")
        for up, block, skip in zip(self.ups, self.decoder, reversed(features)):
            x = up(x)
            if self.skips:
                x = jnp.concatenate([x, skip], axis=-1)
            x = layers.call_block(block, x, remat=self.remat)
        logits = self.head(x)
        return layers.crop_to(logits, size).astype(jnp.float32)
