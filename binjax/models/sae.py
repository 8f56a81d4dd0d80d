"""Selectional auto-encoder (Calvo-Zaragoza & Gallego, Pattern Recognition 2019).

"A selectional auto-encoder approach for document image binarization": a plain convolutional
encoder-decoder, with no skip connections, that maps a window to a per-pixel selection value
(the likelihood that the pixel is ink). The paper's setting, also our default: 5 encoder layers
of 64 filters 5x5 with stride 2, each Conv -> BatchNorm -> ReLU (-> Dropout), mirrored by 5
transposed convs with stride 2, and a final 5x5 conv to one channel. The paper ends in a sigmoid;
binjax models return logits, so the sigmoid lives in the loss / inference instead.

The authors' later code adds residual links between mirrored layers (RED-Net style); this module
keeps the skip-free SAE of the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from binjax.models import layers


class TransposeNormAct(nnx.Module):
    """Stride-2 transposed conv -> norm -> ReLU (one decoder layer)."""

    def __init__(self, features: int, *, kernel_size: int, norm: str, dtype, rngs: nnx.Rngs):
        self.conv = nnx.ConvTranspose(
            features, features, (kernel_size, kernel_size), strides=(2, 2), padding="SAME",
            use_bias=(norm == "none"), kernel_init=layers.he_normal, dtype=dtype,
            param_dtype=jnp.float32, rngs=rngs)
        self.norm = layers.make_norm(norm, features, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.norm(self.conv(x)))


class SelectionalAutoEncoder(nnx.Module):
    """SAE: `depth` stride-2 conv layers down, `depth` stride-2 transposed convs up, no skips.

    Args:
      in_channels: 1 or 3 (the paper used grey).
      depth: layers per side; inputs are padded to a multiple of 2**depth.
      width: filters per layer (paper: 64).
      kernel_size: square kernel size (paper: 5).
      norm: 'batch' | 'group' | 'none'.
      dropout: rate after every conv layer (encoder and decoder), as in the paper's code.
      pad_mode: 'reflect' | 'edge' padding to a multiple of 2**depth.
      dtype: compute dtype; parameters stay float32, logits come back float32.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        depth: int = 5,
        width: int = 64,
        kernel_size: int = 5,
        norm: str = "batch",
        dropout: float = 0.0,
        pad_mode: str = "reflect",
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if depth < 1:
            raise ValueError(f"SelectionalAutoEncoder: depth must be >= 1, got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SelectionalAutoEncoder: dropout must be in [0, 1), got {dropout}")
        if pad_mode not in ("reflect", "edge"):
            raise ValueError(
                f"SelectionalAutoEncoder: pad_mode must be 'reflect' or 'edge', got {pad_mode!r}")
        layers.check_norm(norm)
        self.in_channels = in_channels
        self.depth = depth
        self.pad_mode = pad_mode
        self.dtype = dtype
        self.encoder = nnx.List([
            layers.ConvNormAct(in_channels if i == 0 else width, width, kernel_size=kernel_size,
                               strides=2, norm=norm, dtype=dtype, rngs=rngs)
            for i in range(depth)])
        self.decoder = nnx.List([
            TransposeNormAct(width, kernel_size=kernel_size, norm=norm, dtype=dtype, rngs=rngs)
            for _ in range(depth)])
        self.dropout = nnx.Dropout(dropout)
        self.head = nnx.Conv(width, 1, (kernel_size, kernel_size), padding="SAME", dtype=dtype,
                             param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        layers.check_input(x, self.in_channels, "SelectionalAutoEncoder")
        x, size = layers.pad_to_multiple(x.astype(self.dtype), 2**self.depth, self.pad_mode)
        for layer in (*self.encoder, *self.decoder):
            x = layers.run_dropout(self.dropout, layer(x), rngs, "SelectionalAutoEncoder")
        logits = self.head(x)
        return layers.crop_to(logits, size).astype(jnp.float32)
