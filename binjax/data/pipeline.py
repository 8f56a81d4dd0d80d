"""The grain input pipeline: pages -> random patches -> augmented batches (numpy only).

    source (len, __getitem__ -> {'image': uint8 HxWxC, 'mask': uint8 HxW {0,1}})
      -> EpochShuffle(seed)                  infinite repeat, a new order every epoch (as
                                             grain's shuffle().repeat(), but fast for few pages)
      -> random_map(RandomPatch)             crop (foreground-forced with some probability),
                                             scale, flips, rot90, photometric changes
      -> batch(batch_size, drop_remainder)   blocks of one process's share of a global batch
      -> [shard_index::shard_count]          this process's blocks (see process_shard)
      -> to_iter_dataset(ReadOptions)        threads + prefetch; checkpointable iterator

The page order comes from (seed, epoch), and every per-patch random choice from the
np.random.Generator grain passes to ``random_map``, which grain seeds from (seed, element
index). Batches therefore depend only on the seed and their position in the stream:
``iter(ds).get_state()`` / ``set_state()`` resume the exact same batches, with any number of
reader threads. There is one patch stream per run, whatever the number of processes: each
process reads only its slice of every global batch, so a global batch holds the same patches
on 1 host or on 16. Nothing here imports
JAX: this code runs in grain reader threads or worker processes.

The patch sampler is nnU-Net's: a fraction ``fg_patch_fraction`` of patches is centred on a
random foreground pixel, so pages with little ink (DIBCO pages are ~5 % ink) still give the
model enough positive pixels; the rest are uniform crops, which keep the model honest about
empty background (stains, bleed-through).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
from typing import Any

import grain
import ml_collections
import numpy as np
from PIL import Image, ImageFilter

from binjax import contrast

_MAX_SEED = 2**32


def default_data_config() -> ml_collections.ConfigDict:
    """Defaults for every input-pipeline field; experiment configs override what they need.

    Fields:
      patch_size: side P of the square training patches (pixels).
      fg_patch_fraction: probability that a patch is centred on a random foreground pixel
        (nnU-Net uses 1/3). Pages without foreground always give uniform crops.
      val_fg_patch_fraction: the same for the fixed validation patches; None = fg_patch_fraction.
        Set it when fg_patch_fraction is what is compared, so every run scores the same patches.
      contrast: 'none', 'stretch' or 'flatten': every training and validation page prepared as
        binjax.contrast.normalize does (stretch: its 1st-99th percentile grey levels to the full
        range; flatten: divided by its own paper, then stretched), and so, by default, every page
        the trained model binarizes (binjax.binarizers.ModelBinarizer).
      context: 'none' or 'paper': 'paper' gives the model the page's paper estimate as one more
        input channel after the image's, on training, validation and binarized pages alike
        (binjax.page_context; sources.ContextPages). Photometric augmentations map its levels
        as they map the image's.
      read_threads: grain reader threads (ReadOptions.num_threads).
      prefetch: batches buffered ahead (ReadOptions.prefetch_buffer_size).
      augment: ConfigDict of augmentations (geometric ones move image and mask together;
        photometric ones touch the image only). Ranges are (low, high) tuples; a range of
        (1.0, 1.0) (or (0.0, 0.0) for brightness) or None switches that augmentation off.
        enabled: master switch; False gives plain crops (scale 1, no flips, no colour changes).
        hflip, vflip: random left-right / up-down mirror, each with probability 1/2.
        rot90: random rotation by 0, 90, 180 or 270 degrees (patches are square).
        scale_range: a region of P*s pixels is cropped and resized to P, s log-uniform in the
          range (s > 1 zooms out). Image bilinear; mask bilinear then thresholded at 1/2, so
          thin strokes shrink with the image rather than vanishing as with nearest.
        contrast: factor in range, applied around the patch mean.
        brightness: additive shift in range, as a fraction of full scale (0.1 = 25.5 levels).
        gamma: exponent in range applied to intensities in [0, 1] (< 1 brightens).
        blur_prob, blur_sigma: with probability blur_prob, Gaussian blur with sigma (pixels)
          uniform in blur_sigma (out-of-focus scans, low-resolution pages).
        noise_prob, noise_std: with probability noise_prob, additive Gaussian noise with std
          uniform in [0, noise_std], as a fraction of full scale. (Drawing the noise is the
          most expensive augmentation, ~1 ms per 256x256 patch here; nnU-Net uses p = 0.1.)
    """
    cfg = ml_collections.ConfigDict()
    cfg.patch_size = 256
    cfg.fg_patch_fraction = 0.33
    cfg.val_fg_patch_fraction = None
    cfg.contrast = "none"
    cfg.context = "none"
    cfg.read_threads = 2
    cfg.prefetch = 4
    cfg.augment = ml_collections.ConfigDict(dataclasses.asdict(Augment()))
    return cfg


@dataclasses.dataclass(frozen=True)
class Augment:
    """Augmentation settings (see default_data_config for what each field means)."""

    enabled: bool = True
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    scale_range: tuple[float, float] | None = (0.75, 1.33)
    contrast: tuple[float, float] | None = (0.8, 1.25)
    brightness: tuple[float, float] | None = (-0.1, 0.1)
    gamma: tuple[float, float] | None = (0.8, 1.25)
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] | None = (0.3, 1.2)
    noise_prob: float = 0.2
    noise_std: float = 0.02

    @classmethod
    def from_config(cls, augment: Any) -> "Augment":
        """From a ConfigDict/dict; unknown keys are an error (a typo must not go unnoticed)."""
        values = dict(augment.to_dict() if hasattr(augment, "to_dict") else (augment or {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"data_cfg.augment has unknown field(s) {unknown}; known: {sorted(known)}")
        for key, value in values.items():
            if isinstance(value, list):
                values[key] = tuple(value)
        aug = cls(**values)
        aug._check()
        return aug

    def _check(self) -> None:
        for name in ("scale_range", "contrast", "brightness", "gamma", "blur_sigma"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"data_cfg.augment.{name} must be a (low, high) pair, got {value!r}")
        for name in ("scale_range", "contrast", "gamma"):
            value = getattr(self, name)
            if value is not None and value[0] <= 0:
                raise ValueError(f"data_cfg.augment.{name} must be positive, got {value!r}")
        for name in ("blur_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"data_cfg.augment.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.noise_std < 0:
            raise ValueError(f"data_cfg.augment.noise_std must be >= 0, got {self.noise_std}")
        if self.blur_prob > 0 and (self.blur_sigma is None or self.blur_sigma[0] < 0):
            raise ValueError(f"data_cfg.augment.blur_sigma must be a (low, high) pair >= 0 when "
                             f"blur_prob > 0, got {self.blur_sigma!r}")


# ----------------------------------------------------------------------------- patch sampling


def _background_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-channel median of the background pixels: the padding colour for small pages.

    White padding around a yellowed page would add a sharp paper edge that exists in no real
    page; the median paper colour continues the page instead. White if there is no background.
    """
    background = image[mask == 0]
    if background.size == 0:
        return np.full(image.shape[-1], 255, np.uint8)
    return np.median(background, axis=0).astype(np.uint8)


def sample_crop(
    image: np.ndarray, mask: np.ndarray, size: int, fg_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A size x size crop of (image HxWxC, mask HxW); pages smaller than size are padded.

    With probability fg_fraction (and when the page has foreground) the crop is centred on a
    uniformly chosen foreground pixel, then shifted to stay inside the page (the pixel stays
    inside the crop). Otherwise the crop position is uniform. A page smaller than the crop is
    placed at a random offset inside it; the padding gets the page's background colour and
    mask 0.
    """
    height, width = mask.shape
    # Valid top-left corners; negative when the page is smaller than the crop (padding).
    y_lo, y_hi = min(0, height - size), max(0, height - size)
    x_lo, x_hi = min(0, width - size), max(0, width - size)
    centre = None
    if fg_fraction > 0 and rng.random() < fg_fraction:
        flat = np.flatnonzero(mask)
        if flat.size:
            centre = divmod(int(flat[rng.integers(flat.size)]), width)
    if centre is None:
        top, left = int(rng.integers(y_lo, y_hi + 1)), int(rng.integers(x_lo, x_hi + 1))
    else:
        top = int(np.clip(centre[0] - size // 2, y_lo, y_hi))
        left = int(np.clip(centre[1] - size // 2, x_lo, x_hi))
    if height >= size and width >= size:
        return image[top:top + size, left:left + size], mask[top:top + size, left:left + size]
    out_image = np.empty((size, size, image.shape[-1]), np.uint8)
    out_image[...] = _background_fill(image, mask)
    out_mask = np.zeros((size, size), np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, height), min(left + size, width)
    out_image[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    out_mask[y0 - top:y1 - top, x0 - left:x1 - left] = mask[y0:y1, x0:x1]
    return out_image, out_mask


def _resize(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resizes a square crop to size x size: image bilinear, mask bilinear thresholded at 1/2."""
    out = _per_pil_image(image, lambda pil: pil.resize((size, size), Image.Resampling.BILINEAR))
    mask_pil = Image.fromarray(np.ascontiguousarray(mask) * np.uint8(255))
    out_mask = np.asarray(mask_pil.resize((size, size), Image.Resampling.BILINEAR)) >= 128
    return out, out_mask.astype(np.uint8)


def _per_pil_image(image: np.ndarray, op) -> np.ndarray:
    """op on a uint8 HxWxC image through Pillow: as one 'L' or 'RGB' image when C is 1 or 3, else
    channel by channel (a page-context channel after the image's: binjax.page_context), since
    Pillow resizes and blurs 2- and 4-channel images as colour with alpha, premultiplied."""
    channels = image.shape[-1]
    if channels in (1, 3):
        out = np.asarray(op(Image.fromarray(np.ascontiguousarray(image[..., 0] if channels == 1 else image))))
        return out[..., None] if channels == 1 else out
    return np.stack([np.asarray(op(Image.fromarray(np.ascontiguousarray(image[..., c]))))
                     for c in range(channels)], axis=-1)


def _photometric(image: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast, brightness, gamma and noise on a uint8 patch; returns uint8."""
    if aug.blur_prob > 0 and rng.random() < aug.blur_prob:
        sigma = rng.uniform(*aug.blur_sigma)
        image = _per_pil_image(image, lambda pil: pil.filter(ImageFilter.GaussianBlur(radius=sigma)))  # radius = sigma
    # Contrast, brightness and gamma are pointwise maps of the 256 grey levels: build them as
    # one lookup table (3x faster than float arithmetic over the patch).
    levels = np.arange(256, dtype=np.float64) / 255.0
    if aug.contrast not in (None, (1.0, 1.0)):
        factor = rng.uniform(*aug.contrast)
        mean = image.mean() / 255.0
        levels = (levels - mean) * factor + mean
    if aug.brightness not in (None, (0.0, 0.0)):
        levels = levels + rng.uniform(*aug.brightness)
    if aug.gamma not in (None, (1.0, 1.0)):
        levels = np.clip(levels, 0.0, 1.0) ** rng.uniform(*aug.gamma)
    if aug.noise_std > 0 and aug.noise_prob > 0 and rng.random() < aug.noise_prob:
        std = np.float32(rng.uniform(0.0, aug.noise_std) * 255.0)
        lut = (np.clip(levels, 0.0, 1.0) * 255.0).astype(np.float32)
        x = lut[image]
        x += rng.standard_normal(x.shape, dtype=np.float32) * std
        np.clip(x + 0.5, 0.0, 255.0, out=x)
        return x.astype(np.uint8)
    lut = np.floor(np.clip(levels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return lut[image]


def _log_uniform(low: float, high: float, rng: np.random.Generator) -> float:
    # Log-uniform so that zooming in by 4/3 is as likely as zooming out by 4/3.
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


class RandomPatch(grain.transforms.RandomMap):
    """Page -> one augmented training patch {'image': uint8 PxPxC, 'mask': uint8 PxPx1}."""

    def __init__(self, patch_size: int, fg_patch_fraction: float, augment: Augment):
        self.patch_size = int(patch_size)
        self.fg_patch_fraction = float(fg_patch_fraction)
        self.augment = augment

    def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        image, mask = _check_example(element)
        aug, size = self.augment, self.patch_size
        crop = size
        if aug.enabled and aug.scale_range is not None and aug.scale_range != (1.0, 1.0):
            crop = max(1, round(size * _log_uniform(*aug.scale_range, rng)))
        image, mask = sample_crop(image, mask, crop, self.fg_patch_fraction, rng)
        image = _stretched(image, element)
        if mask.max(initial=0) > 1:  # checked on the crop: cheap, and catches 0/255 masks
            raise ValueError(f"source masks must hold values {{0, 1}} (1 = foreground), found {mask.max()}")
        if crop != size:
            image, mask = _resize(image, mask, size)
        if aug.enabled:
            if aug.hflip and rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            if aug.vflip and rng.random() < 0.5:
                image, mask = image[::-1], mask[::-1]
            if aug.rot90:
                k = int(rng.integers(4))
                image, mask = np.rot90(image, k), np.rot90(mask, k)
            image = _photometric(image, aug, rng)
        # Copies: a crop may be a view into a source's read-only page cache.
        return {"image": np.array(image, order="C"), "mask": np.array(mask[..., None], order="C")}


def _stretched(crop: np.ndarray, element: Any) -> np.ndarray:
    """The crop as binjax.contrast.stretch would show it on its whole page, when the source says
    so (sources.ContrastPages: config.data.contrast='stretch'); else the crop itself."""
    levels = element.get("contrast_levels") if isinstance(element, dict) else None
    table = None if levels is None else contrast.stretch_table(*levels)
    return crop if table is None else table[crop]


def _check_example(element: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        image, mask = element["image"], element["mask"]
    except (TypeError, KeyError):
        raise ValueError(f"a source example must be a dict with 'image' and 'mask', got {type(element)}") from None
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim == 2:
        image = image[..., None]
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if image.dtype != np.uint8 or mask.dtype != np.uint8:
        raise ValueError(f"image and mask must be uint8, got {image.dtype} and {mask.dtype}")
    # C = 1 or 3, one more with a page-context channel (binjax.page_context)
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or image.shape[:2] != mask.shape:
        raise ValueError(f"expected image HxWxC (C = 1 to 4) and mask HxW of the same size, got "
                         f"{image.shape} and {mask.shape}")
    return image, mask


# ----------------------------------------------------------------------------- sharding


def process_shard(blocks: grain.MapDataset, shard_index: int, shard_count: int) -> grain.MapDataset:
    """One process's part of every global batch: blocks shard_index, shard_index + shard_count, ...

    `blocks` are consecutive runs of batch_size patches of the run's one patch stream, so
    global batch b (batch_size * shard_count patches) is blocks b * shard_count ... b *
    shard_count + shard_count - 1: patches b * B ... (b + 1) * B - 1 of the stream, as one
    process reading batches of B would see them. Process p contributes block p, which is where
    jax.make_array_from_process_local_data puts it when each process's devices are one
    contiguous run of the batch axis (CPU and GPU meshes); other layouts permute rows within
    the global batch, never which patches it holds.

    Every process reads as many blocks as the others, so their iterators' states are equal
    after each step (``{"next_index": steps}``): the one state a checkpoint keeps (written by
    process 0) resumes every process.
    """
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index=}, {shard_count=}")
    return blocks[shard_index::shard_count]


class EpochShuffle(grain.MapDataset):
    """Infinite dataset: epoch e is the parent in the order of a permutation drawn from (seed, e).

    This replaces ``parent.shuffle(seed).repeat()``: grain 0.2.18's shuffle computes each index
    with ``index_shuffle``, which costs ~4 ms per element for a 16-page source and ~30 ms for a
    2-page one (it is fast only for large datasets). Page folders are small, so we draw a numpy
    permutation once per epoch instead and keep the last few.
    """

    def __init__(self, parent: grain.MapDataset, *, seed: int):
        super().__init__(parent)
        if len(parent) < 1:
            raise ValueError("cannot shuffle an empty dataset")
        self._source_ds = parent
        self._seed = int(seed)
        self._size = len(parent)
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sys.maxsize

    def __str__(self) -> str:
        return f"EpochShuffle(seed={self._seed})"

    def _permutation(self, epoch: int) -> np.ndarray:
        with self._lock:  # reader threads may straddle an epoch boundary
            perm = self._perms.get(epoch)
            if perm is None:
                perm = np.random.default_rng([self._seed, epoch]).permutation(self._size)
                if len(self._perms) >= 4:
                    del self._perms[min(self._perms)]
                self._perms[epoch] = perm
            return perm

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        epoch, position = divmod(int(index), self._size)
        return self._source_ds[int(self._permutation(epoch)[position])]

    def __getstate__(self):  # picklable for grain worker processes: no lock, no cache
        state = self.__dict__.copy()
        state["_perms"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


# ----------------------------------------------------------------------------- datasets


def _seeds(seed: int) -> tuple[int, int]:
    """Independent 32-bit seeds for the shuffle and the patch sampler of the run's patch stream."""
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    # [seed, 0] (not [seed]): the seeds single-process runs have always used, so they resume.
    shuffle_seed, map_seed = np.random.SeedSequence([seed, 0]).generate_state(2)
    return int(shuffle_seed), int(map_seed)


def _fraction(data_cfg: Any, name: str) -> float:
    value = float(data_cfg[name])
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"data_cfg.{name} must be in [0, 1], got {value}")
    return value


def _patch_settings(data_cfg: Any) -> tuple[int, float, Augment]:
    patch_size = int(data_cfg.patch_size)
    if patch_size < 1:
        raise ValueError(f"data_cfg.patch_size must be positive, got {patch_size}")
    return patch_size, _fraction(data_cfg, "fg_patch_fraction"), Augment.from_config(data_cfg.get("augment"))


def train_dataset(
    source: Any,
    data_cfg: Any,
    *,
    seed: int,
    batch_size: int,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.IterDataset:
    """Infinite grain IterDataset of {'image': uint8 [B,P,P,C], 'mask': uint8 [B,P,P,1]}.

    B = batch_size is the per-process batch. For multi-host training pass
    shard_index=jax.process_index(), shard_count=jax.process_count() (this module stays
    JAX-free): the processes' batches together are the global batches of one process reading
    batch_size * shard_count at a time (see process_shard). The iterator of the result is
    checkpointable: ``it.get_state()`` after n batches and ``set_state`` on a fresh iterator
    give the same following batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    patch_size, fg_fraction, augment = _patch_settings(data_cfg)
    shuffle_seed, map_seed = _seeds(seed)
    ds = EpochShuffle(grain.MapDataset.source(source), seed=shuffle_seed)  # infinite; reshuffled every epoch
    ds = ds.random_map(RandomPatch(patch_size, fg_fraction, augment), seed=map_seed)
    ds = process_shard(ds.batch(batch_size, drop_remainder=True), shard_index, shard_count)
    return ds.to_iter_dataset(grain.ReadOptions(
        num_threads=int(data_cfg.read_threads), prefetch_buffer_size=int(data_cfg.prefetch)))


def validation_patches(source: Any, data_cfg: Any, *, seed: int, num_patches: int) -> dict[str, np.ndarray]:
    """A fixed set of crops for periodic validation: {'image': [N,P,P,C], 'mask': [N,P,P,1]}.

    Patch i comes from page i mod len(source) (every page is represented), cropped with the
    training sampler (same padding; val_fg_patch_fraction if set, else fg_patch_fraction) but
    without scaling or any other augmentation. Deterministic in (seed, source, patch_size, that
    fraction).
    """
    if num_patches < 1:
        raise ValueError(f"num_patches must be positive, got {num_patches}")
    if len(source) < 1:
        raise ValueError("the source is empty")
    patch_size, fg_fraction, _ = _patch_settings(data_cfg)
    if data_cfg.get("val_fg_patch_fraction") is not None:
        fg_fraction = _fraction(data_cfg, "val_fg_patch_fraction")
    images, masks = [], []
    for i in range(num_patches):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        element = source[i % len(source)]
        image, mask = _check_example(element)
        image, mask = sample_crop(image, mask, patch_size, fg_fraction, rng)
        images.append(_stretched(image, element))
        masks.append(mask[..., None])
    return {"image": np.stack(images), "mask": np.stack(masks)}
