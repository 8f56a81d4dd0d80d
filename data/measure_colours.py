"""Measures the paper and ink colours of the real collections, for the synthetic generator.

    python data/measure_colours.py                       # rewrites binjax/data/real_colours.json
    python data/measure_colours.py --root ../shared/data --out /tmp/colours.json

For every page of ../shared/data (dibco/<year>/ and extra/<set>/: <page>_in.png beside its
<page>_gt.png, ink = 0), the median input colour under the ground truth's ink and the median over
its background, RGB in 0..255 (a grey page gives three equal values). The background is taken
only where it is at least 3 px from any ink (anti-aliased stroke edges are neither) and, to keep
dark scan borders out, inside the central 80 % of the page. The table, per collection and page,
is what binjax.data.clutter samples paper and ink from (`real_colours` in the clutter config).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib

import numpy as np
from PIL import Image, ImageFilter

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "binjax" / "data" / "real_colours.json"


def page_colours(image_path: pathlib.Path, gt_path: pathlib.Path) -> tuple[list[int], list[int]]:
    """(paper RGB, ink RGB): medians over the page's clear background and its ground-truth ink."""
    image = np.asarray(Image.open(image_path).convert("RGB"))
    gt = Image.open(gt_path).convert("L")
    ink = np.asarray(gt) < 128
    near_ink = np.asarray(gt.filter(ImageFilter.MinFilter(7))) < 128   # ink dilated by 3 px
    h, w = ink.shape
    central = np.zeros_like(ink)
    central[h // 10:h - h // 10, w // 10:w - w // 10] = True
    paper = ~near_ink & central
    return ([int(v) for v in np.median(image[paper], axis=0)],
            [int(v) for v in np.median(image[ink], axis=0)])


def collection_dirs(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """{'dibco2009': root/dibco/2009, ..., 'bickley': root/extra/bickley, ...}: the folders present."""
    dirs = {f"dibco{d.name}": d for d in sorted((root / "dibco").glob("[0-9]" * 4)) if d.is_dir()}
    dirs.update({d.name: d for d in sorted((root / "extra").iterdir()) if d.is_dir()}
                if (root / "extra").is_dir() else {})
    return dirs


def measure(root: pathlib.Path) -> dict:
    table = {}
    for name, folder in collection_dirs(root).items():
        pages = {}
        for image_path in sorted(folder.glob("*_in.png")):
            gt_path = image_path.with_name(image_path.name[:-len("_in.png")] + "_gt.png")
            if gt_path.is_file():
                paper, ink = page_colours(image_path, gt_path)
                pages[image_path.name[:-len("_in.png")]] = {"paper": paper, "ink": ink}
        if pages:
            table[name] = pages
    return {
        "source": "data/measure_colours.py over ../shared/data (dibco/<year>, extra/<set>): per page, "
                  "median RGB under ground-truth ink and over background >= 3 px from ink in the "
                  "central 80 % of the page",
        "measured": datetime.date.today().isoformat(),
        "collections": table,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Measures per-page paper and ink colours (medians over the ground truth's "
                    "background and ink) of every collection under --root and writes them as JSON, "
                    "the table the synthetic generator's `real_colours` option samples from.",
        epilog="examples:\n  python data/measure_colours.py\n"
               "  python data/measure_colours.py --root ../shared/data --out /tmp/colours.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=pathlib.Path, default=HERE.parent.parent / "shared" / "data",
                        help="folder holding dibco/<year>/ and extra/<set>/ (default: ../shared/data)")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if not collection_dirs(args.root) if args.root.is_dir() else True:
        parser.exit(2, f"--root {args.root}: no dibco/<year>/ or extra/<set>/ folders there\n")
    table = measure(args.root)
    lines = [f'    "{name}": {json.dumps(pages, separators=(",", ":"))}' for name, pages in table["collections"].items()]
    body = ",\n".join(lines)
    args.out.write_text(f'{{"source": {json.dumps(table["source"])},\n "measured": "{table["measured"]}",\n'
                        f' "collections": {{\n{body}\n }}\n}}\n')
    print(f"wrote {args.out}: {sum(len(p) for p in table['collections'].values())} pages "
          f"in {len(table['collections'])} collections")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
