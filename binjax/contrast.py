"""Page contrast normalization before a model sees the page (issue #13).

A model trained on pages whose ink is 60-200 grey levels darker than the paper learns that
difference as part of what ink is. On pages where it is 6-16 levels (some spectral bands of the
MSI 2015 letters: the ink barely shows, yet Su's contrast-normalized method finds it), the
protocol's fold model marked almost nothing as ink: FM 0-6 on 7 of its 29 pages.

`stretch` maps the page's 1st percentile of grey levels to 0 and its 99th to 255, one linear map
for every channel, so the faintest page spans the range a model was trained on while a page that
already spans it changes little. The percentiles are 1 and 99 because that is the usual robust
choice (a few dust specks or clipped highlights do not set the range), fixed before any page
was scored with it, and not tuned since. They come from the page's histogram of 256 levels:
exact, and ~100x cheaper than sorting an A4 page's 8.7 million values.

`flatten` first divides each channel by an estimate of the page's own paper (its background:
the grey closing of the page, wider than any stroke, smoothed), then stretches. Ink is dark on
light paper, so a closing removes it and keeps the paper, shading included. A page lit
unevenly, darkened toward its binding or shaded by a fold keeps its ink but loses the gradient:
scikit-image's `data.page()` has a dark left margin (median grey 98 against 190 on the right)
where a model trained on stretched pages drops letters; flattened, it keeps them. Dark regions
wider than the window (a scan's black border, a binding strip) become paper, which is also what
the DIBCO ground truth says they are. At inference alone (--contrast=flatten) a model trained
on stretched pages reads the paper texture it amplifies under dark stains as ink (MSI 2015);
`config.data.contrast='flatten'` trains on flattened pages.

`none` leaves the page as it is, bit for bit. A model trained with `config.data.contrast='stretch'`
(every training and validation page stretched the same way) gets stretched pages at inference
unless --contrast says otherwise; `dibco_lite` and `dibco_unet` were trained on plain pages
(`none`), `collections_lite` on stretched ones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from binjax.errors import ConfigError

MODES = ("none", "stretch", "flatten")
PERCENTILES = (1.0, 99.0)
# The closing's width in pixels: wider than any pen or print stroke at 300 dpi (3-20 px), narrow
# enough to follow shading across a page. Set on data.page() and data/samples (81 kept both pages'
# letters; 41 and 161 were tried) before any protocol page was scored with it.
FLATTEN_WINDOW = 81
_FLATTEN_STEP = 4  # the background is estimated on a 4x coarser grid: smooth anyway, 16x cheaper
CONTRAST_HELP = ("Model inference: contrast normalization of the page before the model sees it. none: as it is; "
                 "stretch: its 1st percentile of grey levels to black and its 99th to white; flatten: each "
                 "channel divided by the page's own paper (uneven light, dark margins and borders evened out), "
                 "then stretched (binjax/contrast.py); empty (the default): as the model was trained (its "
                 "config.data.contrast: none for dibco_lite and dibco_unet, stretch for collections_lite).")


def parse_contrast(value: str | None) -> str | None:
    """'none', 'stretch' or 'flatten' as given; '' or None -> None (the model's own contrast:
    its config.data.contrast).

    Anything else raises ConfigError naming --contrast.
    """
    if value is None or value == "":
        return None
    if value in MODES:
        return value
    raise ConfigError(f"--contrast={value}: give one of {', '.join(MODES)}, or leave it empty for the model's own")


def percentile_levels(page: np.ndarray, low: float = PERCENTILES[0], high: float = PERCENTILES[1]) -> tuple[int, int]:
    """The grey levels below which `low` and `high` percent of a uint8 page's values lie (all channels)."""
    if page.dtype != np.uint8:
        raise ValueError(f"expected a uint8 page, got {page.dtype}")
    counts = np.cumsum(np.bincount(page.ravel(), minlength=256))
    total = counts[-1]
    lo = int(np.searchsorted(counts, total * low / 100.0, side="left"))
    hi = int(np.searchsorted(counts, total * high / 100.0, side="left"))
    return lo, hi


def stretch_table(lo: int, hi: int) -> np.ndarray | None:
    """The 256-entry uint8 table mapping grey level lo to 0 and hi to 255; None when hi <= lo."""
    if hi <= lo:
        return None
    levels = (np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)


def stretch(page: np.ndarray, low: float = PERCENTILES[0], high: float = PERCENTILES[1]) -> np.ndarray:
    """uint8 page (HxW or HxWxC) with its `low` percentile mapped to 0 and its `high` one to 255.

    A page whose percentiles are equal (a blank page) is returned as it is.
    """
    table = stretch_table(*percentile_levels(page, low, high))
    return page if table is None else table[page]


def _coarse_paper(channel: np.ndarray, window: int) -> np.ndarray:
    """float32 paper estimate on the grid _FLATTEN_STEP times coarser than the uint8 HxW channel
    (its size rounded up)."""
    if channel.ndim != 2 or channel.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxW channel, got {channel.dtype} {channel.shape}")
    step = _FLATTEN_STEP
    height, width = channel.shape
    padded = np.pad(channel, ((0, -height % step), (0, -width % step)), mode="edge")
    # The brightest pixel of each step x step block: ink never brightens the paper estimate.
    coarse = np.maximum.reduce([padded[i::step, j::step] for i in range(step) for j in range(step)])
    size = max(3, window // step)
    closed = ndimage.minimum_filter(ndimage.maximum_filter(coarse, size, mode="nearest"), size, mode="nearest")
    return ndimage.uniform_filter(closed.astype(np.float32), size, mode="nearest")


def _full_size(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    # Each coarse cell repeated over its block: the estimate is smoothed over `window` pixels, so
    # neighbouring cells differ by a fraction of a grey level and a bilinear resize (5x slower on
    # an A4 page) would change nothing a model sees.
    step = _FLATTEN_STEP
    return np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[:shape[0], :shape[1]]


def paper(channel: np.ndarray, window: int = FLATTEN_WINDOW) -> np.ndarray:
    """float32 estimate of the paper under a uint8 HxW channel: its grey closing over a `window`
    square (what remains once every dark stroke narrower than the window is filled in), smoothed
    over the same square; computed on a grid _FLATTEN_STEP times coarser."""
    return _full_size(_coarse_paper(channel, window), channel.shape)


def flatten(page: np.ndarray, window: int = FLATTEN_WINDOW) -> np.ndarray:
    """uint8 page (HxW or HxWxC) with each channel divided by its paper (`paper`), then stretched."""
    if page.dtype != np.uint8:
        raise ValueError(f"expected a uint8 page, got {page.dtype}")
    channels = page[..., None] if page.ndim == 2 else page
    flat = np.empty_like(channels)
    for c in range(channels.shape[-1]):
        channel = channels[..., c]
        gain = _full_size(255.0 / np.maximum(_coarse_paper(channel, window), 1.0), channel.shape)
        ratio = channel * gain
        ratio += 0.5  # the cast to uint8 below truncates: + 0.5 makes it round to the nearest level
        np.minimum(ratio, 255.0, out=ratio)
        flat[..., c] = ratio
    return stretch(flat[..., 0] if page.ndim == 2 else flat)


def normalize(page: np.ndarray, mode: str | None) -> np.ndarray:
    """The page as the model should see it under `mode` (None or 'none': unchanged)."""
    mode = parse_contrast(mode)
    if mode == "stretch":
        return stretch(page)
    if mode == "flatten":
        return flatten(page)
    return page
