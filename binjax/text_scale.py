"""Text scale at inference: a page's stroke width, and running a model at the scale it trained on.

The released models learned DIBCO's text: strokes of a few pixels (``TRAINING_STROKE_WIDTH``).
On a page whose strokes are much thinner or thicker they lose letters (issue #13: scikit-image's
``data.page()`` loses its dark margin's letters at x1 and is fine upscaled 2-4x). So:

  width = estimate_stroke_width(page)          # no ground truth; 16-38 ms of CPU, an A4 page too
  factor = auto_factor(width)                  # TRAINING_STROKE_WIDTH / width, clipped to FACTOR_RANGE
  prob = rescaled_probability(predict, page, factor)   # page resized, predicted, resized back

Stroke width: ``2 * d`` where ``d`` is the distance to the paper on the ridge (skeleton) of the
ink, averaged over its interquartile range. On a page the
ink comes from a per-region Otsu threshold on a few high-contrast regions of the page at full
resolution (downsampling would change the very stroke width we measure), so a dark margin or a
shading gradient does not turn whole regions into ink, and the cost does not grow with the page.

Rescaling: downscaling makes the page smaller, so it is done on the whole page. Upscaling by up to
4x would make an A4 page at 300 dpi 130 MP (0.5 GB of uint8 and 1 GB of float32 accumulators), so
the page is upscaled in horizontal bands of at most ``max_pixels`` scaled pixels, each with a
margin of one tile of context above and below that is cut off after prediction: memory stays
bounded by the band, whatever the page, and the model sees the same context as on the whole page.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from binjax.errors import ConfigError

# Typical stroke width (pixels) of the pages the released models trained on: the median over the
# 50 pages of DIBCO 2009-2012 of their ground truth's stroke_width_of_mask is 5.08, and of
# estimate_stroke_width on their input pages 5.12 (docs/ablations/dibco/scale.md, every collection).
TRAINING_STROKE_WIDTH = 5.1
# Factors 'auto' may choose: below 0.5 the thinnest strokes of a large-print page vanish; above 4
# the page grows 16x in pixels for text that is then still only guessed at.
FACTOR_RANGE = (0.5, 4.0)
# Within this band around 1 the page is left as it is: the released recipe's scale augmentation
# (configs/dibco_recipe.py: data.augment.scale_range 0.67-1.5) showed the model those scales, and
# resizing costs and blurs. On the scale test (docs/ablations/dibco/scale.md) a narrower band,
# 0.8-1.25, lost 1.35 FM on DIBCO 2013 at x1: pages with 7-9 px strokes were shrunk for nothing.
DEAD_BAND = (0.67, 1.5)
# An explicit --rescale factor must lie here.
EXPLICIT_RANGE = (0.25, 8.0)
RESCALE_HELP = ("Model inference: resize the page before the model and the probabilities back after it. "
                "'none' (default): as it is; 'auto': to the training stroke width "
                f"({TRAINING_STROKE_WIDTH:g} px, estimated per page, factor clipped to "
                f"{FACTOR_RANGE[0]:g}-{FACTOR_RANGE[1]:g}); a number: that factor (2 = twice the size).")

_REGION = 256  # side of the regions the stroke width is measured on (full resolution)
_REGIONS = 8


def parse_rescale(value: str | float | None) -> str | float | None:
    """'none' -> None, 'auto' -> 'auto', '2' -> 2.0; ConfigError naming --rescale otherwise."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        factor = float(value)
    else:
        text = str(value).strip().lower()
        if text in ("none", ""):
            return None
        if text == "auto":
            return "auto"
        try:
            factor = float(text)
        except ValueError:
            raise ConfigError(f"--rescale={value}: give 'none', 'auto' or a factor such as 2 or 0.5") from None
    lo, hi = EXPLICIT_RANGE
    if not (math.isfinite(factor) and lo <= factor <= hi):
        raise ConfigError(f"--rescale={value}: a factor must be a number in [{lo:g}, {hi:g}]")
    return None if factor == 1.0 else factor


# ------------------------------------------------------------------------------ stroke width


def stroke_widths(ink: np.ndarray) -> np.ndarray:
    """Stroke widths (float32, 2 * distance) at the ridge pixels of a bool ink mask.

    Ridge pixels (a skeleton, near enough) are the local maxima of the distance to the paper in
    their 3x3 neighbourhood. The distance is the geometric mean of the chessboard and the taxicab
    distances, exact along the axes and the diagonals, and 8x faster than a Euclidean transform.
    """
    ink = np.asarray(ink, dtype=bool)
    if not ink.any():
        return np.zeros(0, np.float32)
    # A page border counts as paper: pad, so ink that touches it is not taken for a wide stroke.
    padded = np.pad(ink, 1)
    chessboard = ndimage.distance_transform_cdt(padded, metric="chessboard").astype(np.float32)
    taxicab = ndimage.distance_transform_cdt(padded, metric="taxicab").astype(np.float32)
    distance = np.sqrt(chessboard * taxicab)[1:-1, 1:-1]
    ridge = ink & (distance >= ndimage.maximum_filter(distance, size=3))
    # 2 d rather than 2 d - 1 (the width of an axis-aligned bar): strokes drawn at every angle
    # (tests/test_text_scale.py, 2 to 16 pixels wide) come out within 15 % with 2 d, 1 px thin with 2 d - 1.
    return 2.0 * distance[ridge]


def typical_width(widths: np.ndarray) -> float:
    """The interquartile mean of stroke widths: the median's robustness to specks and blobs,
    without its steps (widths take few distinct values); nan when empty."""
    if widths.size == 0:
        return float("nan")
    lo, hi = np.percentile(widths, (25, 75))
    middle = widths[(widths >= lo) & (widths <= hi)]
    return float(middle.mean())


def stroke_width_of_mask(ink: np.ndarray) -> float:
    """Typical stroke width (pixels) of a bool ink mask, e.g. a ground truth; nan without ink."""
    return typical_width(stroke_widths(ink))


def _grey_region(image: np.ndarray, y: int, x: int, size: int, step: int = 1) -> np.ndarray:
    """A uint8 grey crop (uint8 keeps median3 ~20x faster than on floats)."""
    region = np.asarray(image[y:y + size:step, x:x + size:step])
    if region.ndim == 3:
        region = region[..., 0] if region.shape[2] == 1 else region[..., :3].mean(axis=2)
    if region.dtype != np.uint8:
        region = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return region


def _region_starts(length: int, size: int) -> list[int]:
    count = max(1, length // size)
    return [round(i * (length - size) / (count - 1)) for i in range(count)] if count > 1 else [0]


# Devillard's opt_med9 network: 19 compare-exchanges leave the median of 9 values in slot 4.
_MEDIAN9_NETWORK = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8),
                    (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3(region: np.ndarray) -> np.ndarray:
    """3x3 median filter (edges repeated), as ndimage.median_filter(mode='nearest') but ~30x faster
    on uint8: a sorting network over the 9 shifted copies."""
    padded = np.pad(region, 1, mode="edge")
    h, w = region.shape
    values = [padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]
    for a, b in _MEDIAN9_NETWORK:
        values[a], values[b] = np.minimum(values[a], values[b]), np.maximum(values[a], values[b])
    return values[4]


def _otsu_ink(region: np.ndarray) -> np.ndarray:
    """Dark side of the region's Otsu threshold (region: uint8 grey)."""
    hist = np.bincount(region.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256)
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * levels)
    total, total_mean = weight[-1], mean[-1]
    background = total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight - mean * total) ** 2 / (weight * background)
    between[~np.isfinite(between)] = -1
    return region <= int(np.argmax(between))


def _edge_density(sample: np.ndarray) -> float:
    """Mean absolute difference between neighbouring samples: high where there are many edges
    (text), low on paper and on a single dark band's edge (a margin, a shadow), unlike the
    standard deviation, which a margin's one big step maximizes."""
    sample = sample.astype(np.int16)
    return float(np.abs(np.diff(sample, axis=0)).mean() + np.abs(np.diff(sample, axis=1)).mean())


def _without_blobs(ink: np.ndarray, max_share: float = 0.1) -> np.ndarray:
    """Ink less its connected pieces covering more than max_share of the region: a dark margin or
    a stain that Otsu took for ink, not a stroke (a letter is far smaller at any scale measured)."""
    labels, count = ndimage.label(ink)
    if count == 0:
        return ink
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    blob = sizes > max_share * ink.size
    blob[0] = False
    return ink & ~blob[labels] if blob.any() else ink


def estimate_stroke_width(image: np.ndarray, *, regions: int = _REGIONS, region_size: int = _REGION) -> float:
    """A page's typical stroke width in pixels, without ground truth; nan on a page with no text.

    The page is cut into region_size squares; the `regions` with most edges (_edge_density, read
    on every other pixel) are binarized with their own Otsu threshold after a 3x3 median, pieces of
    ink too big to be letters are dropped, regions with a plausible share of ink are kept, and
    typical_width of their ridge pixels is returned.
    Strokes wider than about region_size / 4 are not measured.
    """
    height, width = np.shape(image)[:2]
    size = min(region_size, height, width)
    candidates = sorted(((_edge_density(_grey_region(image, y, x, size, 2)), y, x)
                         for y in _region_starts(height, size) for x in _region_starts(width, size)), reverse=True)
    widths = []
    for edges, y, x in candidates[:regions]:
        if edges < 2.0:  # a flat region (blank paper): Otsu would split its noise
            continue
        # A 3x3 median first: scanner noise and paper grain otherwise give Otsu's mask specks and
        # ragged edges whose one-pixel ridges pull the estimate down (by 0.6x on Bickley and
        # MSI pages); strokes two pixels wide survive it.
        ink = _otsu_ink(median3(_grey_region(image, y, x, size)))
        ink = _without_blobs(ink)
        if 0.005 < ink.mean() < 0.6:  # not a solid dark band or a region of specks
            widths.append(stroke_widths(ink))
    values = np.concatenate(widths) if widths else np.zeros(0)
    return typical_width(values) if values.size >= 20 else float("nan")


def auto_factor(stroke_width: float, training_width: float = TRAINING_STROKE_WIDTH) -> float:
    """training_width / stroke_width, clipped to FACTOR_RANGE; 1.0 inside DEAD_BAND or for nan."""
    if not (math.isfinite(stroke_width) and stroke_width > 0):
        return 1.0
    factor = training_width / stroke_width
    if DEAD_BAND[0] <= factor <= DEAD_BAND[1]:
        return 1.0
    return float(np.clip(factor, *FACTOR_RANGE))


def page_factor(rescale: str | float | None, image: np.ndarray) -> float:
    """The factor a parsed --rescale value means for this page."""
    if rescale is None:
        return 1.0
    if rescale == "auto":
        return auto_factor(estimate_stroke_width(image))
    return float(rescale)


# ------------------------------------------------------------------------------ resizing


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 HxW or HxWxC -> (height, width): area averaging down, bicubic up."""
    height, width = size
    squeeze = image.ndim == 3 and image.shape[2] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    down = height * width < image.shape[0] * image.shape[1]
    out = np.asarray(pil.resize((width, height), Image.Resampling.BOX if down else Image.Resampling.BICUBIC))
    return out[..., None] if squeeze else out


def resize_probability(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 HxW -> (height, width): area averaging down, bilinear up; stays in [0, 1]."""
    height, width = size
    if prob.shape == (height, width):
        return prob
    down = height * width < prob.size
    pil = Image.fromarray(np.ascontiguousarray(prob, np.float32), mode="F")
    out = np.asarray(pil.resize((width, height), Image.Resampling.BOX if down else Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def scaled_size(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def rescaled_probability(probability_fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, factor: float, *,
                         tile: int = 512, max_pixels: int = 16_000_000) -> np.ndarray:
    """probability_fn run on the page resized by `factor`, its output resized back (HxW float32).

    probability_fn: uint8 page -> float32 probabilities of the same size (e.g. sliding window
    inference). With factor 1 this is probability_fn(image) itself. An upscaled page of more than
    max_pixels is done in bands (see the module docstring); `tile` sets their margin.
    """
    height, width = image.shape[:2]
    if factor == 1.0:
        return probability_fn(image)
    scaled_h, scaled_w = scaled_size(image.shape, factor)
    if scaled_h * scaled_w <= max_pixels:
        return resize_probability(probability_fn(resize_image(image, (scaled_h, scaled_w))), (height, width))
    margin = math.ceil(tile / factor)  # one tile of context (at the model's scale) each side
    # Source rows per band, so that a band and its margins stay under max_pixels once scaled; but at
    # least one margin of rows, or a wide page at a large factor would go one source row at a time
    # (each row re-running the model on 2 margins of context). A band then holds up to three tiles'
    # height at the model's scale, across the page's scaled width.
    band = max(margin, int(max_pixels / (scaled_w * factor)) - 2 * margin)
    prob = np.empty((height, width), np.float32)
    for top in range(0, height, band):
        bottom = min(height, top + band)
        lo, hi = max(0, top - margin), min(height, bottom + margin)
        piece = image[lo:hi]
        out = probability_fn(resize_image(piece, scaled_size(piece.shape, factor)))
        prob[top:bottom] = resize_probability(out, piece.shape[:2])[top - lo:bottom - lo]
    return prob
