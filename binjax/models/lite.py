"""LiteUNet: a small, fast encoder-decoder for full-page binarization on CPU.

Design goal: a 6-megapixel page in about a second on 2 CPU cores. On XLA:CPU these small nets
are bound by memory traffic (every full-resolution tensor of C float32 channels costs 4*C bytes
per pixel per pass), so the design minimises wide tensors at high resolution:
- A stride-2 stem: only the stem and a thin final refinement ever run at full resolution.
- MobileNetV2 inverted-residual blocks (1x1 expand -> 3x3 depthwise -> 1x1 linear project) with
  few channels (16 at 1/2, 24 at 1/4, 32 at 1/8, 64 at 1/16), the expanded tensors only at 1/4
  and below; dilated depthwise convs at 1/16 widen the receptive field (context against
  bleed-through and stains) for almost nothing.
- Downsampling by a plain 3x3 stride-2 conv-BN-ReLU6 (EfficientNetV2's "fused" block) instead of
  a stride-2 inverted residual: the latter would materialise a 4x-expanded tensor at the higher
  resolution, which measured as the slowest layer of the net on CPU.
- A U-Net-like decoder, FPN-style: a 1x1 projection of the coarse features to the skip width at
  low resolution, bilinear 2x upsampling, addition of the encoder features of that scale, one
  inverted-residual block.
- Thin strokes are decided with the input's own pixels. head='full': the 1/2-resolution decoder
  output is squeezed to `head_width` channels, upsampled, concatenated with the input image itself
  and refined by a depthwise-separable 3x3 conv before the 1x1 logit head, all at full resolution.
  head='space_to_depth': the same layers at 1/2 resolution, where the input image enters as its
  2x2 pixel blocks (space-to-depth, 4 x C channels) and the head predicts the 4 logits of each
  block (depth-to-space): no tensor wider than the image is ever made at full resolution, which
  was a third of a tile's time on CPU (docs/benchmarks/lite_profile.md).
Depthwise convs, 1x1 convs and upsampling use the CPU-friendly forms in layers.py.
Defaults: 182,107 parameters for grey input (182,431 for RGB); the widths, blocks, expansion and
head_width knobs trade accuracy for speed.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from binjax.models import layers


class InvertedResidual(nnx.Module):
    """MobileNetV2 block: [1x1 expand] -> 3x3 depthwise (dilated) -> 1x1 linear project (+ input).

    The projection has no activation (a ReLU on a narrow bottleneck destroys information).
    """

    def __init__(self, features: int, *, expansion: int, dilation: int = 1, norm: str, dtype,
                 rngs: nnx.Rngs):
        hidden = features * expansion
        self.expand = (
            layers.ConvNormAct(features, hidden, kernel_size=1, norm=norm,
                               activation=nnx.relu6, dtype=dtype, rngs=rngs)
            if expansion != 1 else None)
        self.depthwise = layers.Depthwise3x3(hidden, dilation=dilation, use_bias=(norm == "none"),
                                             dtype=dtype, rngs=rngs)
        self.depthwise_norm = layers.make_norm(norm, hidden, dtype=dtype, rngs=rngs)
        self.project = layers.ConvNormAct(hidden, features, kernel_size=1, norm=norm,
                                          activation=None, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x if self.expand is None else self.expand(x)
        affine = layers.eval_affine(self.depthwise_norm)  # an eval-mode BatchNorm folds into the conv
        y = self.depthwise(y, affine)
        y = nnx.relu6(self.depthwise_norm(y) if affine is None else y)
        return x + self.project(y)


class DecoderStage(nnx.Module):
    """Project coarse features to the skip width, upsample 2x, add the skip, one IR block."""

    def __init__(self, in_features: int, skip_features: int, *, expansion: int, norm: str, dtype,
                 rngs: nnx.Rngs):
        # Projecting before upsampling (both are linear) keeps the upsampled tensor narrow.
        self.project = layers.ConvNormAct(in_features, skip_features, kernel_size=1, norm=norm,
                                          activation=None, dtype=dtype, rngs=rngs)
        self.block = InvertedResidual(skip_features, expansion=expansion, norm=norm, dtype=dtype,
                                      rngs=rngs)

    def __call__(self, x: jax.Array, skip: jax.Array) -> jax.Array:
        return self.block(layers.upsample2x(self.project(x)) + skip)


class LiteUNet(nnx.Module):
    """Lightweight inverted-residual encoder-decoder with U-Net skips (see the module docstring).

    Args:
      in_channels: 1 or 3 (grey or RGB), one more with a page-context channel.
      widths: channels at 1/2, 1/4, 1/8, 1/16 ... resolution; one stride-2 step per entry, so
        inputs are padded to a multiple of 2**len(widths).
      blocks: inverted-residual blocks per encoder stage (same length as widths).
      expansion: expansion factor of the encoder blocks below 1/2 resolution (the 1/2-resolution
        blocks, encoder and decoder, use expansion 1 to stay cheap).
      decoder_expansion: expansion factor of the decoder blocks below 1/2 resolution.
      head_width: channels carried to the head.
      head: 'full' (refine and predict at full resolution) or 'space_to_depth' (at 1/2
        resolution, on the input's 2x2 pixel blocks; cheaper, see the module docstring).
      norm: 'batch' | 'group' | 'none'.
      dropout: rate applied once, to the deepest features.
      pad_mode: 'reflect' | 'edge' padding to a multiple of 2**len(widths).
      remat: recompute each encoder block's and decoder stage's activations in the backward
        pass instead of keeping them (less memory, more compute).
      dtype: compute dtype; parameters stay float32, logits come back float32.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        widths: Sequence[int] = (16, 24, 32, 64),
        blocks: Sequence[int] = (1, 2, 2, 3),
        expansion: int = 4,
        decoder_expansion: int = 2,
        head_width: int = 8,
        head: str = "full",
        norm: str = "batch",
        dropout: float = 0.0,
        pad_mode: str = "reflect",
        remat: bool = False,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        widths = [int(w) for w in widths]
        blocks = [int(b) for b in blocks]
        if len(widths) < 1 or len(widths) != len(blocks) or min(blocks) < 0:
            raise ValueError(
                f"LiteUNet: widths and blocks need the same length >= 1 and blocks >= 0, "
                f"got widths={widths}, blocks={blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LiteUNet: dropout must be in [0, 1), got {dropout}")
        if head not in HEADS:
            raise ValueError(f"LiteUNet: head must be one of {HEADS}, got {head!r}")
        if pad_mode not in ("reflect", "edge"):
            raise ValueError(f"LiteUNet: pad_mode must be 'reflect' or 'edge', got {pad_mode!r}")
        layers.check_norm(norm)
        self.in_channels = in_channels
        self.depth = len(widths)
        self.pad_mode = pad_mode
        self.head_kind = head
        self.remat = bool(remat)
        self.dtype = dtype

        downs, stages = [], []
        features = in_channels
        for level, (width, count) in enumerate(zip(widths, blocks)):
            # Level 0's downsampling conv is the stem.
            downs.append(layers.ConvNormAct(features, width, kernel_size=3, strides=2, norm=norm,
                                            activation=nnx.relu6, dtype=dtype, rngs=rngs))
            deepest = level == len(widths) - 1 and level > 0
            stages.append(nnx.List([
                InvertedResidual(
                    width, expansion=1 if level == 0 else expansion,
                    # Dilations 1, 2, 4 ... in the deepest stage grow the receptive field cheaply.
                    dilation=2**i if deepest else 1, norm=norm, dtype=dtype, rngs=rngs)
                for i in range(count)]))
            features = width
        self.downs = nnx.List(downs)
        self.stages = nnx.List(stages)
        self.dropout = nnx.Dropout(dropout)

        decoder = []
        for level in reversed(range(len(widths) - 1)):
            decoder.append(DecoderStage(
                features, widths[level], expansion=1 if level == 0 else decoder_expansion,
                norm=norm, dtype=dtype, rngs=rngs))
            features = widths[level]
        self.decoder = nnx.List(decoder)

        self.squeeze = layers.ConvNormAct(features, head_width, kernel_size=1, norm=norm,
                                          activation=nnx.relu6, dtype=dtype, rngs=rngs)
        pixels = 1 if head == "full" else 4  # image pixels per position where the head runs
        refine_in = head_width + pixels * in_channels
        self.refine_depthwise = layers.Depthwise3x3(refine_in, dtype=dtype, rngs=rngs)
        self.refine = layers.ConvNormAct(refine_in, head_width, kernel_size=1, norm=norm,
                                         activation=nnx.relu6, dtype=dtype, rngs=rngs)
        self.head = layers.Pointwise(head_width, pixels, dtype=dtype,
                                     kernel_init=nnx.initializers.lecun_normal(), rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        layers.check_input(x, self.in_channels, "LiteUNet")
        image, size = layers.pad_to_multiple(x.astype(self.dtype), 2**self.depth, self.pad_mode)
        x = image
        features = []
        for down, stage in zip(self.downs, self.stages):
            x = down(x)
            for block in stage:
                x = layers.call_block(block, x, remat=self.remat)
            features.append(x)
        x = layers.run_dropout(self.dropout, x, rngs, "LiteUNet")
        for stage, skip in zip(self.decoder, reversed(features[:-1])):
            x = layers.call_block(stage, x, skip, remat=self.remat)
        if self.head_kind == "full":
            x = jnp.concatenate([layers.upsample2x(self.squeeze(x)), image], axis=-1)
            logits = self.head(self.refine(self.refine_depthwise(x)))
        else:
            x = jnp.concatenate([self.squeeze(x), space_to_depth(image)], axis=-1)
            logits = depth_to_space(self.head(self.refine(self.refine_depthwise(x))))
        return layers.crop_to(logits, size).astype(jnp.float32)


HEADS = ("full", "space_to_depth")


def space_to_depth(x: jax.Array) -> jax.Array:
    """[N,H,W,C] -> [N,H/2,W/2,4C]: each 2x2 block's pixels as channels, (row, column, channel)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // 2, w // 2, 4 * c)


def depth_to_space(x: jax.Array) -> jax.Array:
    """[N,H,W,4C] -> [N,2H,2W,C], the inverse of space_to_depth."""
    n, h, w, c4 = x.shape
    x = x.reshape(n, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, 2 * h, 2 * w, c4 // 4)
