"""The synthetic-page study's pictures.

bickley_H01.png: Bickley's page H01 (half size, 16 greys): the input, the ground truth, the
stretch recipe's seed-0 fold model and the synthetic arm's (fraction 0.5), each as
launch.protocol binarized it (<root>/<run>/protocol/model/binary/bickley_H01.png).
page_x1_x2.png: the left half of scikit-image's data.page() at x1 (top) and x2 (bottom, shown at
x1), where the page darkens towards the margin: the page, Sauvola, then the seed-0 fold models of
the Bickley and MSI 2015 folds, stretch recipe and synthetic arm in turn (run with binjax installed).

  python docs/ablations/dibco/synthetic_mix/make_figures.py /work/protocol/baseline /work/protocol/synthetic_stretch
"""

import pathlib
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).parent
SHARED = pathlib.Path(__file__).resolve().parents[4].parent / "shared" / "data"
RUNS = ("arg=bickley,data.contrast=stretch,seed=0", "arg=bickley,data.mix.synthetic_fraction=0.5,seed=0")
MSI_RUNS = ("arg=msi2015,data.contrast=stretch,seed=0", "arg=msi2015,data.mix.synthetic_fraction=0.5,seed=0")


def main(recipe_root: str, synthetic_root: str, page: str = "H01") -> None:
    grey = np.asarray(Image.open(SHARED / "extra" / "bickley" / f"{page}_in.png").convert("L"))
    truth = np.where(np.asarray(Image.open(SHARED / "extra" / "bickley" / f"{page}_gt.png")) < 255, 0, 255)
    outputs = [np.asarray(Image.open(pathlib.Path(root) / run / "protocol" / "model" / "binary" /
                                     f"bickley_{page}.png").convert("L"))
               for root, run in zip((recipe_root, synthetic_root), RUNS)]
    gap = np.full((grey.shape[0], 8), 128, np.uint8)
    panels = [grey, truth.astype(np.uint8), *outputs]
    row = np.concatenate([x for panel in panels for x in (panel, gap)][:-1], 1)
    image = Image.fromarray(row)
    small = image.resize((row.shape[1] // 2, row.shape[0] // 2), Image.LANCZOS)
    small.quantize(16).save(HERE / f"bickley_{page}.png", optimize=True)  # 16 greys keep the repository small


def page_figure(recipe_root: str, synthetic_root: str) -> None:
    from skimage import data  # noqa: PLC0415 (binjax's environment; the Bickley figure needs none of it)

    from binjax import binarizers  # noqa: PLC0415

    roots = (recipe_root, synthetic_root)
    checkpoints = [str(pathlib.Path(root) / run) for runs in (RUNS, MSI_RUNS) for root, run in zip(roots, runs)]
    models = [binarizers.make_binarizers(methods=["sauvola"])["sauvola"],
              *binarizers.make_binarizers(checkpoints).values()]
    page = data.page()
    height, width = page.shape
    rows = []
    for scale in (1, 2):
        p = page if scale == 1 else np.asarray(Image.fromarray(page).resize((width * 2, height * 2), Image.BICUBIC))
        panels = [p] + [np.where(m(p[..., None]), 0, 255).astype(np.uint8) for m in models]
        panels = [np.asarray(Image.fromarray(x).resize((width, height), Image.LANCZOS)) for x in panels]
        gap = np.full((height, 6), 128, np.uint8)
        rows.append(np.concatenate([x for panel in panels for x in (panel[:, :width // 2], gap)][:-1], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(HERE / "page_x1_x2.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
    page_figure(*sys.argv[1:3])
