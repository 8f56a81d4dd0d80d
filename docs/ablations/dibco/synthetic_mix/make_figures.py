"""The synthetic-page study's pictures.

bickley_H01.png, dibco2009_H02.png: Bickley's page H01 and DIBCO 2009's H02 (half size, 16
greys): the input, the ground truth, the stretch recipe's seed-0 fold model and the synthetic
arm's (fraction 0.5), each as launch.protocol binarized it
(<root>/<run>/protocol/model/binary/<collection>_<page>.png).
page_x1_x2.png: the left half of scikit-image's data.page() at x1 (top) and x2 (bottom, shown at
x1), where the page darkens towards the margin: the page, Sauvola, then the seed-0 fold models of
the Bickley and MSI 2015 folds, stretch recipe and synthetic arm in turn (run with binjax installed).
page_x1_x2_paper_channel.png: the same page and Sauvola, then the Bickley and MSI 2015 fold models
(seed 0) of the paper-channel arm (data.context=paper; the synthetic arm's are in page_x1_x2.png).

  python docs/ablations/dibco/synthetic_mix/make_figures.py /work/protocol/baseline /work/protocol/synthetic_stretch
  python docs/ablations/dibco/synthetic_mix/make_figures.py - /work/protocol/synthetic_stretch paper_channel   # that one only
"""

import pathlib
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).parent
FIGURES = (("bickley", "H01"), ("dibco2009", "H02"))  # (collection, page) of each comparison picture
RUNS = ("arg=bickley,data.contrast=stretch,seed=0", "arg=bickley,data.mix.synthetic_fraction=0.5,seed=0")
MSI_RUNS = ("arg=msi2015,data.contrast=stretch,seed=0", "arg=msi2015,data.mix.synthetic_fraction=0.5,seed=0")
PAPER_CHANNEL_RUNS = tuple(f"arg={fold},data.context=paper,data.mix.synthetic_fraction=0.5,seed=0"
                           for fold in ("bickley", "msi2015"))


def compare_figure(recipe_root: str, synthetic_root: str, collection: str, page: str) -> None:
    """<collection>_<page>.png: the input, the ground truth, the two arms' seed-0 fold models."""
    from false_ink import FOLD_OF, collection_folder, ground_truth  # noqa: PLC0415  (beside this file)

    fold = FOLD_OF[collection]
    grey = np.asarray(Image.open(next(collection_folder(collection).glob(f"{page}_in.*"))).convert("L"))
    truth = np.where(ground_truth(collection, page), 0, 255).astype(np.uint8)
    runs = (f"arg={fold},data.contrast=stretch,seed=0", f"arg={fold},data.mix.synthetic_fraction=0.5,seed=0")
    outputs = [np.asarray(Image.open(pathlib.Path(root) / run / "protocol" / "model" / "binary" /
                                     f"{collection}_{page}.png").convert("L"))
               for root, run in zip((recipe_root, synthetic_root), runs)]
    gap = np.full((grey.shape[0], 8), 128, np.uint8)
    panels = [grey, truth, *outputs]
    row = np.concatenate([x for panel in panels for x in (panel, gap)][:-1], 1)
    image = Image.fromarray(row)
    small = image.resize((row.shape[1] // 2, row.shape[0] // 2), Image.LANCZOS)
    small.quantize(16).save(HERE / f"{collection}_{page}.png", optimize=True)  # 16 greys keep the repository small


def page_figure(checkpoints: list[str], name: str) -> None:
    """<name>: data.page()'s left half, Sauvola, then each checkpoint (make_page_figure.draw)."""
    import importlib.util  # noqa: PLC0415

    from binjax import binarizers  # noqa: PLC0415  (binjax's environment; the Bickley figure needs none of it)

    spec = importlib.util.spec_from_file_location("make_page_figure", HERE.parents[2] / "models" / "make_page_figure.py")
    page_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page_figures)
    models = [binarizers.make_binarizers(methods=["sauvola"])["sauvola"],
              *binarizers.make_binarizers(checkpoints).values()]
    page_figures.draw(models, HERE / name, left_half=True)


if __name__ == "__main__":
    recipe_root, synthetic_root = sys.argv[1:3]
    if sys.argv[3:] != ["paper_channel"]:
        for collection, page in FIGURES:
            compare_figure(recipe_root, synthetic_root, collection, page)
        page_figure([str(pathlib.Path(root) / run) for runs in (RUNS, MSI_RUNS)
                     for root, run in zip((recipe_root, synthetic_root), runs)], "page_x1_x2.png")
    page_figure([str(pathlib.Path(synthetic_root) / run) for run in PAPER_CHANNEL_RUNS], "page_x1_x2_paper_channel.png")
