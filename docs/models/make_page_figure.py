"""page_x1_x2.png: the shipped models on scikit-image's data.page(), a real scan with no ground truth.

data.page() at x1 (top) and x2 (bottom, shown at x1), where the page darkens
towards its margin (paper grey 98 there, 190 on the right): the page, Sauvola, dibco_lite,
collections_lite (the default model), collections_lite with --contrast=flatten (each channel
divided by the page's own paper first) and with --rescale=auto (the page resized to the training's
stroke width: x1.98 at x1, left alone at x2). Judged by eye: which
letters of the margin each keeps. Run from the repository root with binjax installed:

  python docs/models/make_page_figure.py
"""

import pathlib

import numpy as np
from PIL import Image
from skimage import data

from binjax import binarizers

HERE = pathlib.Path(__file__).parent


def draw(models, path: pathlib.Path, left_half: bool = False) -> None:
    """data.page() at x1 (top row) and x2 (bottom, shown at x1): the page, then each binarizer's
    output; only the page's left half (its dark margin) when left_half. The studies' page
    pictures use it too."""
    page = data.page()
    height, width = page.shape
    shown = width // 2 if left_half else width
    rows = []
    for scale in (1, 2):
        p = page if scale == 1 else np.asarray(Image.fromarray(page).resize((width * 2, height * 2), Image.BICUBIC))
        panels = [p] + [np.where(m(p[..., None]), 0, 255).astype(np.uint8) for m in models]
        panels = [np.asarray(Image.fromarray(x).resize((width, height), Image.LANCZOS)) for x in panels]
        gap = np.full((height, 6), 128, np.uint8)
        rows.append(np.concatenate([x for panel in panels for x in (panel[:, :shown], gap)][:-1], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(path, optimize=True)


def main() -> None:
    draw([binarizers.make_binarizers(methods=["sauvola"])["sauvola"],
          binarizers.ModelBinarizer("dibco_lite"), binarizers.ModelBinarizer("collections_lite"),
          binarizers.ModelBinarizer("collections_lite", contrast="flatten"),
          binarizers.ModelBinarizer("collections_lite", rescale="auto")], HERE / "page_x1_x2.png")


if __name__ == "__main__":
    main()
