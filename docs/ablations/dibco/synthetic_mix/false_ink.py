"""Where a fold model's false ink lies: beside true strokes (thickening) or far from any (clutter).

The stretch recipe's worst collection, Bickley, loses FM to precision (0.52-0.85 on its pages)
more than to recall. This splits each page's false ink (model ink the ground truth calls paper)
by its distance to the nearest true ink pixel: within 3 px is a stroke drawn too thick; farther
than 10 px is ink where no text is (a dark scan border, a stain's rim, a ruled line). It also
gives the FM the page would have if the far false ink alone were removed, the bound on what
teaching 'what is not ink' can win there. On the DIBCO years, where the synthetic arm loses, it
also gives the share of the missed ink that lies on a stroke's edge (strokes drawn too thin), and
the share of the false ink that is faint: at least FAINT of its paper's grey in the input (the
paper as binjax.contrast.paper estimates it), such as show-through and paper texture.

Reads each run's binarized test pages (<root>/<run>/protocol/model/binary/<collection>_<page>.png,
as launch.protocol leaves them) and the ground truth in ../shared/data, and writes false_ink.md
beside this file (also printed). Needs binjax's environment (numpy, scipy, Pillow and binjax.contrast).

  python docs/ablations/dibco/synthetic_mix/false_ink.py /work/protocol/baseline /work/protocol/synthetic_stretch
"""

import functools
import pathlib
import re
import sys

import numpy as np
from PIL import Image
from scipy import ndimage

from binjax import contrast

HERE = pathlib.Path(__file__).parent
SHARED = pathlib.Path(__file__).resolve().parents[4].parent / "shared" / "data"
NEAR, FAR, EDGE = 3, 10, 1.5   # px
FAINT = 0.7   # false ink at least this fraction of its local paper's grey counts as faint
# Run folders, as binjax.sweep names them, of the arms compared; the label of each.
ARMS = {r"data\.contrast=stretch,seed=(\d)$": "stretch recipe",
        r"data\.mix\.synthetic_fraction=0\.5,seed=(\d)$": "synthetic 0.5",
        r"faintest_ink=0\.6,seed=(\d)$": "synthetic 0.5, no faint ink",
        r"synthetic_fraction=0\.5,num_steps=4000,seed=(\d)$": "synthetic 0.5, 4000 steps",
        r"faded_ink=0\.0,seed=(\d)$": "synthetic 0.5, no faded ink",
        r"darkest_bleed=0\.5,seed=(\d)$": "synthetic 0.5, bleed-through at most half",
        r"paper_shading=0\.0,seed=(\d)$": "synthetic 0.5, light paper"}
# Collection -> the fold that tests it: the two that decide the worst collection, then the DIBCO
# years, where the synthetic arm loses (the fold models' binaries are looked up per fold).
FOLD_OF = {"bickley": "bickley", "msi2015": "msi2015",
           **{f"dibco{y}": "dibco_icdar" for y in (2009, 2011, 2013)},
           **{f"dibco{y}": "dibco_icfhr" for y in (2010, 2012, 2014, 2016)}}


def collection_folder(collection: str) -> pathlib.Path:
    """../shared/data/dibco/<year> or ../shared/data/extra/<collection>: its <page>_in / _gt files."""
    return SHARED / "dibco" / collection[5:] if collection.startswith("dibco") else SHARED / "extra" / collection


def ground_truth(collection: str, page: str) -> np.ndarray:
    # DIBCO's ground truths are .png, .bmp or .tif; the extra collections' are .png.
    grey = np.asarray(Image.open(next(collection_folder(collection).glob(f"{page}_gt.*"))).convert("L"))
    # Bickley keeps the input's grey value on ink pixels, so every value below 255 is ink
    # (../shared/data/extra/README.md); the other sets are {0, 255}.
    return grey < 255 if collection == "bickley" else grey < 128


@functools.lru_cache(maxsize=64)   # a collection's pages, read once for all arms and seeds
def relative_grey(collection: str, page: str) -> np.ndarray:
    """The input page's grey over its paper's, as binjax.contrast estimates the paper for
    `--contrast=flatten` (a grey closing that fills every stroke narrower than its window)."""
    grey = np.asarray(Image.open(next(collection_folder(collection).glob(f"{page}_in.*"))).convert("L"))
    return grey.astype(np.float32) / np.maximum(contrast.paper(grey), 1)


def page_counts(binary: pathlib.Path, collection: str, page: str) -> dict:
    truth = ground_truth(collection, page)
    ink = np.asarray(Image.open(binary).convert("L")) < 128
    false = ink & ~truth
    distance = ndimage.distance_transform_edt(~truth)   # to the nearest true ink pixel
    tp, fn = int((ink & truth).sum()), int((truth & ~ink).sum())
    far = int((false & (distance > FAR)).sum())
    # Missed ink on a stroke's edge (within EDGE px of paper): strokes drawn thinner than the truth.
    edge = int((truth & ~ink & (ndimage.distance_transform_edt(truth) <= EDGE)).sum())
    faint = int((false & (relative_grey(collection, page) >= FAINT)).sum())
    return dict(tp=tp, fp=int(false.sum()), fn=fn, near=int((false & (distance <= NEAR)).sum()), far=far,
                edge=edge, faint=faint)


def fm(tp: int, fp: int, fn: int) -> float:
    return 200.0 * tp / (2 * tp + fp + fn) if tp else 0.0


def main(*roots: str) -> None:
    lines = ["False ink of the fold models on the deciding collections, by distance to the nearest "
             f"true ink pixel (pixels summed over each collection's pages): near = within {NEAR} px "
             f"(strokes drawn thick), far = more than {FAR} px (ink where there is no text). "
             "FM without far: the FM if only the far false ink were removed. Missed ink on edges: the share "
             f"of the missed ink within {EDGE} px of paper (strokes drawn thin). Faint: false ink at least "
             f"{FAINT:.0%} of its paper's grey in the input (binjax.contrast.paper). Pixel-count FM over the "
             "whole collection, so it differs a little from the protocol's mean of page FMs.", "",
             "| collection | arm | seed | precision | recall | FM | false ink near | false ink far | FM without far "
             "| missed ink on edges | faint false ink |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for collection, fold in FOLD_OF.items():
        for pattern, label in ARMS.items():
            runs = [(int(m.group(1)), run) for root in map(pathlib.Path, roots)
                    for run in sorted(root.glob(f"arg={fold},*"))
                    if (m := re.search(pattern, run.name)) and (run / "protocol" / "model" / "binary").is_dir()]
            for seed, run in sorted(runs):
                total = dict(tp=0, fp=0, fn=0, near=0, far=0, edge=0, faint=0)
                for binary in sorted((run / "protocol" / "model" / "binary").glob(f"{collection}_*.png")):
                    counts = page_counts(binary, collection, binary.stem.split("_", 1)[1])
                    total = {k: total[k] + counts[k] for k in total}
                tp, fp, fn = total["tp"], total["fp"], total["fn"]
                lines.append(f"| {collection} | {label} | {seed} | {100 * tp / (tp + fp):.1f} | "
                             f"{100 * tp / (tp + fn):.1f} | {fm(tp, fp, fn):.2f} | {100 * total['near'] / fp:.0f} % | "
                             f"{100 * total['far'] / fp:.0f} % | {fm(tp, fp - total['far'], fn):.2f} | "
                             f"{100 * total['edge'] / fn:.0f} % | {100 * total['faint'] / fp:.0f} % |")
    text = "\n".join(lines) + "\n"
    (HERE / "false_ink.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
