"""Checks, on real pages, that the ground truth leaves out what binjax.data.clutter draws.

    python data/check_non_ink.py                  # prints the markdown table of docs/synthetic/README.md
    python data/check_non_ink.py --root ../shared/data

A pixel is a visible mark when it is darker than the page's paper by at least a quarter of the
page's paper-to-ink contrast (medians over the ground truth's background and ink, the paper
taken at least 5 px from any ink). For each region below, picked by looking at the page and
holding no front text, the table gives its visible marks and the share of them the ground truth
calls ink.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageFilter

HERE = pathlib.Path(__file__).resolve().parent

# (page under root, what the region holds, box x0, y0, x1, y1 in page pixels), picked by eye.
REGIONS = (
    ("extra/bickley/H01", "dark scan border, left edge", (0, 0, 20, 1350)),
    ("extra/bickley/H01", "dark scan border, bottom edge", (0, 1320, 1050, 1350)),
    ("dibco/2013/HW03", "page edge and its shadow, left", (0, 0, 25, 504)),
    ("extra/msi2015/H03", "archive stamp (oval, with text)", (60, 130, 420, 270)),
    ("dibco/2016/6", "bleed-through, top left", (0, 0, 450, 170)),
    ("dibco/2016/6", "bleed-through, top right", (800, 0, 1364, 170)),
    ("dibco/2016/3", "bleed-through, above the text", (0, 0, 2417, 280)),
)


def _page(root: pathlib.Path, name: str):
    grey = np.asarray(Image.open(root / f"{name}_in.png").convert("L"), np.float32)
    gt_img = Image.open(root / f"{name}_gt.png").convert("L")
    ink = np.asarray(gt_img) < 128
    near = np.asarray(gt_img.filter(ImageFilter.MinFilter(11))) < 128   # within 5 px of ink
    paper, ink_level = np.median(grey[~near]), np.median(grey[ink])
    marks = grey < paper - 0.25 * (paper - ink_level)
    return ink, near, marks


def region_rows(root: pathlib.Path) -> list[str]:
    rows = []
    for name, what, (x0, y0, x1, y1) in REGIONS:
        ink, _, marks = _page(root, name)
        box = (slice(y0, y1), slice(x0, x1))
        n = int(marks[box].sum())
        share = 100 * float((marks[box] & ink[box]).sum()) / max(n, 1)
        rows.append(f"| {name} | {what} | ({x0}, {y0})-({x1}, {y1}) | {n} | {share:.1f} % |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Measures, on real pages with scan borders, stamps and bleed-through, how much of "
                    "what is visible there the ground truth marks as ink (it should be ~none).",
        epilog="examples:\n  python data/check_non_ink.py\n  python data/check_non_ink.py --root ../shared/data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent / "shared" / "data",
                        help="folder holding dibco/<year>/ and extra/<set>/ (default: ../shared/data)")
    args = parser.parse_args(argv)
    missing = [n for n in {r[0] for r in REGIONS} if not (args.root / f"{n}_in.png").is_file()]
    if missing:
        parser.exit(2, f"--root {args.root}: pages missing: {', '.join(sorted(missing))}\n")
    print("| page | region | box | visible marks | of them ink in the GT |\n|---|---|---|---:|---:|")
    print("\n".join(region_rows(args.root)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
