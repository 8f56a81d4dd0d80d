"""Page context as an extra model input channel (issue #13).

A tile of 128-512 pixels does not show how dark the page's paper is. Synthetic pages with dark,
unevenly lit paper taught the light model to keep less of the dark paper of Bickley and MSI 2015
as ink, and cost the DIBCO years whose paper is light (docs/ablations/dibco/synthetic_mix: the
share of paper far from ink that is darker than mid-grey after the stretch follows that trade,
dark_paper.md). Dividing each page by its paper (binjax.contrast.flatten) takes the shading away
from the model altogether, and at inference it reads the paper texture it amplifies under dark
stains as ink. `paper` instead keeps the page as it is and adds what the model cannot see from a
tile: the page's own paper estimate there (binjax.contrast.paper: the grey closing over 81
pixels, wider than any stroke, smoothed), as one more channel after the image's. A pixel as dark
as the paper around it is paper, one darker than it may be ink, and the model learns how much
darker from the pages.

The channel is computed on the page as the model sees it (after config.data.contrast), on its
grey levels (ITU-R 601 luma of a colour page), over the whole page: at training once per page
(binjax.data.sources.ContextPages), at inference before the page is cut into tiles
(binjax.binarizers.ModelBinarizer), so both see the same values. Photometric augmentations map
the channel's levels like the image's: the closing commutes with any increasing map of the grey
levels, so the augmented tile's channel is (to the smoothing) the augmented page's paper.

`none` (the default) adds nothing: the model takes the image's channels only.
"""

from __future__ import annotations

import numpy as np

from binjax import contrast, imageio
from binjax.errors import ConfigError

MODES = ("none", "paper")


def parse_context(value: str) -> str:
    """'none' or 'paper' as given; anything else raises ConfigError naming config.data.context."""
    if value in MODES:
        return value
    raise ConfigError(f"config.data.context={value!r}: give one of {', '.join(MODES)}")


def extra_channels(mode: str) -> int:
    """How many channels `mode` adds after the image's."""
    return 0 if parse_context(mode) == "none" else 1


def model_channels(data_cfg) -> int:
    """The channels a model of this data config takes: the image's (data.channels) and its context's."""
    return int(data_cfg.channels) + extra_channels(data_cfg.get("context", "none"))


def paper_channel(page: np.ndarray) -> np.ndarray:
    """uint8 HxW estimate of the paper under a uint8 HxW(xC) page (contrast.paper of its grey levels)."""
    grey = imageio.to_channels(page, 1)[..., 0]
    estimate = contrast.paper(np.ascontiguousarray(grey))
    return np.clip(np.rint(estimate), 0, 255).astype(np.uint8)


def add_context(page: np.ndarray, mode: str) -> np.ndarray:
    """uint8 HxWxC page -> HxWx(C + extra_channels(mode)): the page, then its context channel."""
    if parse_context(mode) == "none":
        return page
    if page.ndim != 3 or page.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxWxC page, got {page.dtype} {page.shape}")
    return np.concatenate([page, paper_channel(page)[..., None]], axis=-1)
