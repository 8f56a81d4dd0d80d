"""How much of a page's paper is dark: the synthetic pages against each real collection.

The synthetic arm lifts Bickley and MSI 2015 and costs every DIBCO year. This measures one way
the pages differ: the share of the paper far from any ink (more than FAR px from the nearest ink
pixel of the ground truth) that is darker than mid-grey once the page is prepared as the model
sees it, contrast-stretched (the default recipe) or flattened (`--contrast=flatten`). Dark scan
borders, gutters, stains, blotchy paper and bleed-through all count; the thickened edges of
strokes do not. The synthetic pages are the arm's own (configs/ablations/synthetic_mix.py's
CLUTTER, colours of the DIBCO 2009/2011/2013 fold's training collections), page seeds 0..N-1,
512 x 512 like the training pages; the real pages are every page of each collection, in grey.

Writes dark_paper.md beside this file (also printed). Needs binjax's environment and
../shared/data. Measures only: it chose nothing.

  python docs/ablations/dibco/synthetic_mix/dark_paper.py [N=120]
"""

import dataclasses
import pathlib
import sys

import numpy as np
from scipy import ndimage

from binjax import contrast
from binjax.data import clutter, collections, dibco_files, synthetic
from configs.ablations import synthetic_mix

HERE = pathlib.Path(__file__).parent
SHARED = pathlib.Path(__file__).resolve().parents[4].parent / "shared" / "data"
FAR = 10         # px from the nearest ink pixel
SOME_DARK = 0.02  # a page 'has dark paper' when more than this share of its far paper is dark
MODES = ("stretch", "flatten")


def page_stats(image: np.ndarray, ink: np.ndarray) -> dict[str, tuple[int, int]]:
    """{mode: (dark far paper pixels, far paper pixels)} of one grey page."""
    far = ndimage.distance_transform_edt(~ink) > FAR
    return {mode: (int((contrast.normalize(image, mode)[..., 0][far] < 128).sum()), int(far.sum()))
            for mode in MODES}


def row(name: str, pages) -> str:
    dark, total, with_dark, n = dict.fromkeys(MODES, 0), dict.fromkeys(MODES, 0), 0, 0
    for image, ink in pages:
        stats = page_stats(image, ink)
        for mode, (d, t) in stats.items():
            dark[mode] += d
            total[mode] += t
        d, t = stats["stretch"]
        with_dark, n = with_dark + (d > SOME_DARK * t), n + 1
    shares = " | ".join(f"{100 * dark[m] / total[m]:.2f}" for m in MODES)
    return f"| {name} | {n} | {shares} | {100 * with_dark / n:.0f} |"


def synthetic_pages(settings, n: int):
    for i in range(n):
        page = synthetic.render_page(synthetic.page_seed(0, i), 512, 512, 1, clutter=settings)
        yield page["image"], page["mask"].astype(bool)


def real_pages(pages):
    for page in map(dibco_files.read_page, pages):
        image = page["image"]
        if image.shape[-1] == 3:
            image = image.mean(-1, keepdims=True).round().astype(np.uint8)
        yield image, page["mask"].astype(bool)


def main(n: str = "120") -> None:
    n = int(n)
    arm = clutter.Clutter.from_config(synthetic_mix.get_config("dibco_icdar").data.synthetic.clutter)
    lines = ["| pages | n | far paper darker than mid-grey, stretched (%) | flattened (%) "
             f"| pages with more than {100 * SOME_DARK:.0f} % dark (stretched) |",
             "|---|---:|---:|---:|---:|",
             row("synthetic, the arm's clutter", synthetic_pages(arm, n)),
             row("synthetic, no scan borders", synthetic_pages(dataclasses.replace(arm, scan_border=0.0), n)),
             row("synthetic, no measured colours", synthetic_pages(dataclasses.replace(arm, real_colours=0.0), n)),
             row("synthetic, plain generator", synthetic_pages(None, n))]
    folders = dibco_files.find_year_folders(SHARED / "dibco")
    for year in sorted(folders):
        lines.append(row(f"DIBCO {year}", real_pages(dibco_files.find_pages(year, folders[year]))))
    for name in collections.EXTRA_COLLECTIONS:
        lines.append(row(name, real_pages(collections.find_extra_pages(SHARED / "extra" / name, name))))
    text = "\n".join(lines) + "\n"
    (HERE / "dark_paper.md").write_text(
        f"Written by `dark_paper.py {n}` (far = more than {FAR} px from the nearest ink pixel of the "
        "ground truth; dark = below 128 once prepared).\n\n" + text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
