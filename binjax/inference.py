"""Full-page inference: tiles with overlap, batched through one jitted call, Gaussian blending.

A page never has to fit through the network in one piece: it is cut into `tile` x `tile` windows
(12.5 % overlap by default, steps spread evenly as in nnU-Net), the windows go through the model
`batch_size` at a time (the last batch padded, so exactly one compilation happens per tile and
batch size), and the probabilities are blended with a Gaussian importance map (sigma = tile / 8)
into float32 accumulators. Memory is the two H x W float32 accumulators plus one batch of tiles,
whatever the page size: a 6000 x 8000 page needs ~0.4 GB for the accumulators.

    predict = make_predict_fn(model)                       # once per model
    prob = sliding_window_predict(predict, page_uint8)     # float32 H x W in [0, 1]
    ink = binarize_page(predict, page_uint8)               # bool H x W, True = ink
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# Weights at the tile corners fall to exp(-16) ~ 1e-7 of the centre; clipping keeps every pixel's
# weight sum well away from zero (nnU-Net clips the same way) while leaving the profile alone.
_MIN_IMPORTANCE = 1e-4

# Tiles share an eighth of their side (a 64-pixel blend between neighbours). nnU-Net's 0.5 costs
# 2.4x the tiles (117 against 48 on an A4 page at 300 dpi) for no measurable gain: on the
# validation pages of the released models and of protocol fold models, and on all 12 test
# collections of the protocol's default-recipe fold models, mean FM moved by 0.08 or less per
# model and collection between overlap 0.5 and 0.125, and no page by more than 0.83
# (docs/benchmarks/overlap.md).
DEFAULT_OVERLAP = 0.125


@dataclasses.dataclass(frozen=True)
class PredictFn:
    """A jitted batch predictor: float32 [B,t,t,C] in [0,1] -> float32 [B,t,t].

    Built by make_predict_fn; holds the model state as a jit argument (not a baked-in constant,
    which would bloat the compiled program with every weight).
    """

    fn: Callable[[Any, jax.Array], jax.Array]
    state: Any
    in_channels: int | None
    num_devices: int
    logits: bool
    batch_sharding: Any = None

    def __call__(self, batch: np.ndarray | jax.Array) -> jax.Array:
        if self.batch_sharding is not None:
            batch = jax.device_put(batch, self.batch_sharding)
        return self.fn(self.state, batch)


def make_predict_fn(model: nnx.Module, *, logits: bool = False,
                    devices: Sequence[jax.Device] | None = None) -> PredictFn:
    """Splits the NNX graph once and returns a plain-jax.jit predictor in eval mode.

    The caller's model is left in whatever mode it is in: an eval-mode view shares its arrays.
    Later updates to the model's weights are NOT seen (the state is captured now).

    Args:
      model: a binjax model (logits [N,H,W,1] out).
      logits: return logits instead of sigmoid probabilities.
      devices: shard each batch over these devices along a 1-D 'data' mesh (e.g.
        jax.local_devices() with XLA_FLAGS=--xla_force_host_platform_device_count=2 to keep both
        CPU cores busy); the batch size must then be a multiple of len(devices), which
        sliding_window_predict takes care of. None: the default device.
    """
    eval_model = nnx.view(model, deterministic=True, use_running_average=True,
                          raise_if_not_found=False)
    graphdef, state = nnx.split(eval_model)

    def predict(state, batch):
        out = nnx.merge(graphdef, state)(batch)[..., 0]
        return out if logits else jax.nn.sigmoid(out)

    in_channels = getattr(model, "in_channels", None)
    if devices is None or len(devices) <= 1:
        return PredictFn(jax.jit(predict), state, in_channels, 1, logits)
    mesh = Mesh(np.asarray(devices), ("data",))
    batch_sharding = NamedSharding(mesh, P("data"))
    state = jax.device_put(state, NamedSharding(mesh, P()))
    fn = jax.jit(predict, out_shardings=batch_sharding)
    return PredictFn(fn, state, in_channels, len(devices), logits, batch_sharding)


def gaussian_importance_map(tile: int, sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """float32 [tile, tile] Gaussian centred on the tile, max 1, clipped below at 1e-4.

    Predictions near a tile's border see less context than at its centre; weighting them down
    is what removes the seams.
    """
    sigma = tile * sigma_scale
    centre = (tile - 1) / 2.0
    axis = np.exp(-0.5 * ((np.arange(tile) - centre) / sigma) ** 2)
    weights = np.outer(axis, axis)
    weights /= weights.max()
    return np.maximum(weights, _MIN_IMPORTANCE).astype(np.float32)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles covering [0, length) (length >= tile), spread evenly (nnU-Net):
    the step is at most tile * (1 - overlap), and the last tile ends exactly at `length`."""
    if length < tile:
        raise ValueError(f"length {length} < tile {tile}: pad first")
    max_step = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / max_step) + 1
    if count == 1:
        return [0]
    step = (length - tile) / (count - 1)
    return [int(round(i * step)) for i in range(count)]


def _as_hwc_uint8(image: np.ndarray, in_channels: int | None) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"sliding_window_predict: expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):  # one more with page context
        raise ValueError(
            f"sliding_window_predict: expected an image H x W x C with C = 1 to 4, got {image.shape}")
    if in_channels is not None and image.shape[2] != in_channels:
        raise ValueError(
            f"sliding_window_predict: the model takes {in_channels} channel(s), the image has "
            f"{image.shape[2]} (convert it with imageio.load_image(path, channels={in_channels}))")
    return image


def _flips(batch: np.ndarray) -> list[tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]:
    """The four mirrorings of a [B,t,t,C] batch with the inverse for [B,t,t] outputs."""
    return [
        (batch, lambda p: p),
        (batch[:, :, ::-1], lambda p: p[:, :, ::-1]),
        (batch[:, ::-1, :], lambda p: p[:, ::-1, :]),
        (batch[:, ::-1, ::-1], lambda p: p[:, ::-1, ::-1]),
    ]


def sliding_window_predict(
    predict_fn: Callable[[np.ndarray], jax.Array],
    image: np.ndarray,
    *,
    tile: int = 512,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = 4,
    flip_tta: bool = False,
) -> np.ndarray:
    """Foreground probabilities (float32 H x W) of a whole page, tile by tile.

    Args:
      predict_fn: from make_predict_fn (or any callable float32 [B,t,t,C] -> [B,t,t]).
      image: uint8 H x W x C (or H x W), any size; pages smaller than a tile are reflect-padded.
      tile: window side. A multiple of the model's 2**depth avoids padding inside the model.
      overlap: fraction of a tile shared by neighbours, in [0, 1); 0.5 (nnU-Net) means each pixel
        is seen by ~4 tiles, i.e. ~4x the compute of one pass over the page; DEFAULT_OVERLAP
        (0.125) ~1.45x on an A4 page at 300 dpi (48 tiles of 512^2 for 8.7 MP).
      batch_size: tiles per jitted call (rounded up to a multiple of the predictor's devices);
        the last batch is padded so the call shape never changes.
      flip_tta: also predict the horizontally, vertically and doubly mirrored tiles and average
        the four (4x the compute).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if tile < 1 or batch_size < 1:
        raise ValueError(f"tile and batch_size must be >= 1, got tile={tile}, batch_size={batch_size}")
    image = _as_hwc_uint8(image, getattr(predict_fn, "in_channels", None))
    height, width, channels = image.shape
    num_devices = getattr(predict_fn, "num_devices", 1)
    batch_size = -(-batch_size // num_devices) * num_devices

    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    padded_h, padded_w = image.shape[:2]

    weights = gaussian_importance_map(tile)
    accumulated = np.zeros((padded_h, padded_w), np.float32)
    weight_sum = np.zeros((padded_h, padded_w), np.float32)
    # Row-major order: consecutive batches touch the same band of rows of the accumulators.
    positions = [(y, x) for y in tile_starts(padded_h, tile, overlap)
                 for x in tile_starts(padded_w, tile, overlap)]
    scale = np.float32(255.0)  # the same x / 255 as a direct forward pass, bit for bit

    def dispatch(chunk):
        # A fresh buffer per batch: on CPU, jax may alias the numpy memory while computing.
        batch = np.zeros((batch_size, tile, tile, channels), np.float32)
        for i, (y, x) in enumerate(chunk):
            np.divide(image[y:y + tile, x:x + tile], scale, out=batch[i], dtype=np.float32)
        if not flip_tta:
            return [(predict_fn(batch), lambda p: p)]
        return [(predict_fn(np.ascontiguousarray(flipped)), unflip)
                for flipped, unflip in _flips(batch)]

    def accumulate(chunk, outputs):
        probs = None
        for out, unflip in outputs:
            p = unflip(np.asarray(out, np.float32).reshape(batch_size, tile, tile))
            probs = p if probs is None else probs + p
        if len(outputs) > 1:
            probs /= len(outputs)
        for i, (y, x) in enumerate(chunk):
            accumulated[y:y + tile, x:x + tile] += weights * probs[i]
            weight_sum[y:y + tile, x:x + tile] += weights

    # One batch in flight while the previous one is blended on the host.
    pending = None
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        outputs = dispatch(chunk)
        if pending is not None:
            accumulate(*pending)
        pending = (chunk, outputs)
    accumulate(*pending)

    np.divide(accumulated, weight_sum, out=accumulated)
    return accumulated[:height, :width]


def binarize_page(predict_fn: Callable[[np.ndarray], jax.Array], image: np.ndarray, *,
                  threshold: float = 0.5, **kwargs) -> np.ndarray:
    """Boolean ink mask (True = foreground) of a page: probability > threshold.

    kwargs go to sliding_window_predict (tile, overlap, batch_size, flip_tta). The project's
    uint8 {0,1} mask is `binarize_page(...).astype(np.uint8)`.
    """
    if getattr(predict_fn, "logits", False):
        raise ValueError("binarize_page needs probabilities: build the predictor with logits=False")
    return sliding_window_predict(predict_fn, image, **kwargs) > threshold
