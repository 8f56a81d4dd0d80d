"""Decoding every page of a folder source once before training, and judging its masks.

FolderPairs checks names and headers when it is built; a truncated scan still passed that and
killed a grain reader at its first read, an hour into a run. `check_pages` decodes every image
and mask up front: a file that does not decode fails the run before it starts, in one line
naming it. The decoded pages land in the source's cache, which the reader threads use, so
the check costs no more than the first epoch would.

It also warns, one line per kind naming the files, about masks that train a model to do
nothing useful: no ink at all, nothing but ink, or ink over most of the page (almost always a
mask of the other polarity: `config.data.folder.mask_foreground`).
"""

from __future__ import annotations

import numpy as np
from absl import logging

from binjax import imageio
from binjax.data.folder import FolderPairs
from binjax.errors import DataError

# Ink covers ~2-20 % of a document page; beyond half, the mask almost surely has ink and paper
# swapped. Pages that really are mostly ink (a black border scan) are rare enough to name.
INVERTED_INK_FRACTION = 0.5
_NAMED = 5  # files named per message; the rest are counted


def _names(paths: list) -> str:
    shown = ", ".join(str(p) for p in paths[:_NAMED])
    return shown + (f" and {len(paths) - _NAMED} more" if len(paths) > _NAMED else "")


def check_pages(source: FolderPairs, where: str) -> None:
    """Decodes every pair of `source` (through its cache); DataError names the files that fail.

    where: the config key the folder came from, for the messages.
    """
    broken: list[str] = []
    no_ink, all_ink, inverted = [], [], []
    for index, (_, mask_path) in enumerate(source.pairs):
        try:
            mask = source[index]["mask"]
        except imageio.ImageError as e:
            broken.append(str(e))
            continue
        ink = float(np.mean(mask))
        if ink == 0.0:
            no_ink.append(mask_path)
        elif ink == 1.0:
            all_ink.append(mask_path)
        elif ink > INVERTED_INK_FRACTION:
            inverted.append(mask_path)
    if broken:
        more = f" (and {len(broken) - _NAMED} more)" if len(broken) > _NAMED else ""
        raise DataError(f"{where}: {len(broken)} file(s) do not decode: " + "; ".join(broken[:_NAMED]) + more)
    polarity = f"mask_foreground={source.mask_foreground!r}"
    if no_ink:
        logging.warning("%s: %d mask(s) have no ink (they teach the model to erase everything): %s",
                        where, len(no_ink), _names(no_ink))
    if all_ink:
        logging.warning("%s: %d mask(s) are all ink (inverted? %s): %s", where, len(all_ink), polarity, _names(all_ink))
    if inverted:
        logging.warning("%s: %d mask(s) have ink on more than %d%% of the page, likely inverted (check %s): %s",
                        where, len(inverted), round(100 * INVERTED_INK_FRACTION), polarity, _names(inverted))
