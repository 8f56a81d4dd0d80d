"""The synthetic-page study's picture: bickley_H01.png, Bickley's page H01 (half size, 16 greys): the input,
the ground truth, the stretch recipe's seed-0 fold model and the synthetic arm's (fraction 0.5), each
as launch.protocol binarized it (<root>/<run>/protocol/model/binary/bickley_H01.png).

  python docs/ablations/dibco/synthetic_mix/make_figures.py /work/protocol/baseline /work/protocol/synthetic_stretch
"""

import pathlib
import sys

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).parent
SHARED = pathlib.Path(__file__).resolve().parents[4].parent / "shared" / "data"
RUNS = ("arg=bickley,data.contrast=stretch,seed=0", "arg=bickley,data.mix.synthetic_fraction=0.5,seed=0")


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


if __name__ == "__main__":
    main(*sys.argv[1:])
