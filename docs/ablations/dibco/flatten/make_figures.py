"""The flatten study's two pictures (run from the repository root with binjax installed).

page_x1_x2.png: scikit-image's data.page() at x1 (top) and x2 (bottom, shown at x1): the
page, Sauvola, collections_lite as trained (stretched pages), collections_lite --contrast=flatten.
msi2015_H25.png: MSI 2015's H25 stretched, flattened, the stretch-arm seed-0 fold model's output on
each, and the ground truth.

  python docs/ablations/dibco/flatten/make_figures.py /work/protocol/baseline
"""

import importlib.util
import pathlib
import sys

import numpy as np
from PIL import Image

from binjax import binarizers, contrast, imageio

HERE = pathlib.Path(__file__).parent
SHARED = pathlib.Path(__file__).resolve().parents[4].parent / "shared" / "data"


def _ink_white(ink: np.ndarray) -> np.ndarray:
    return np.where(ink, 0, 255).astype(np.uint8)


def page_figure() -> None:
    spec = importlib.util.spec_from_file_location("make_page_figure", HERE.parents[2] / "models" / "make_page_figure.py")
    page_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page_figures)
    page_figures.draw([binarizers.make_binarizers(methods=["sauvola"])["sauvola"],
                       *binarizers.make_binarizers(["collections_lite"]).values(),
                       *binarizers.make_binarizers(["collections_lite"], contrast="flatten").values()],
                      HERE / "page_x1_x2.png")


def msi_figure(protocol_root: pathlib.Path) -> None:
    run = protocol_root / "arg=msi2015,data.contrast=stretch,seed=0"
    page_path = SHARED / "extra" / "msi2015" / "H25_in.png"
    page = imageio.load_image(page_path, 1)
    gt = imageio.load_mask(page_path.with_name("H25_gt.png"), "black") > 0
    (as_trained,) = binarizers.make_binarizers([run], overlap=0.5).values()
    (flattened,) = binarizers.make_binarizers([run], overlap=0.5, contrast="flatten").values()
    grey = page[..., 0]
    panels = [contrast.stretch(grey), contrast.flatten(grey), _ink_white(as_trained(page)),
              _ink_white(flattened(page)), _ink_white(gt)]
    picture = Image.fromarray(np.concatenate(panels, 1))
    picture.thumbnail((1600, 800))
    picture.save(HERE / "msi2015_H25.png", optimize=True)


if __name__ == "__main__":
    page_figure()
    msi_figure(pathlib.Path(sys.argv[1]))
