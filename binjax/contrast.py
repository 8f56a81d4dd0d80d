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

`none` leaves the page as it is, bit for bit. A model trained with `config.data.contrast='stretch'`
(every training and validation page stretched the same way) gets stretched pages at inference
unless --contrast says otherwise; the released models were trained on plain pages (`none`).
"""

from __future__ import annotations

import numpy as np

from binjax.errors import ConfigError

MODES = ("none", "stretch")
PERCENTILES = (1.0, 99.0)
CONTRAST_HELP = ("Model inference: contrast normalization of the page before the model sees it. none: as it is; "
                 "stretch: its 1st percentile of grey levels to black and its 99th to white (binjax/contrast.py); "
                 "empty (the default): as the model was trained (its config.data.contrast; none for the "
                 "released models).")


def parse_contrast(value: str | None) -> str | None:
    """'none' or 'stretch' as given; '' or None -> None (the model's own: its config.data.contrast).

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


def normalize(page: np.ndarray, mode: str | None) -> np.ndarray:
    """The page as the model should see it under `mode` (None or 'none': unchanged)."""
    return stretch(page) if parse_contrast(mode) == "stretch" else page
