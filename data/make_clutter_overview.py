"""Renders docs/synthetic/clutter_overview.png: each kind of clutter on a few synthetic pages.

    python data/make_clutter_overview.py
    python data/make_clutter_overview.py --pages 6 --size 256 --out /tmp/clutter.png

One row per kind of binjax.data.clutter (and a last row with every kind at once); each page is
shown as its input beside its ground truth (ink black), which leaves the clutter out. Even
columns are grey pages, odd ones RGB. Pages are deterministic in --seed.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw

from binjax.data.clutter import KINDS, Clutter
from binjax.data.synthetic import page_seed, render_page

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "docs" / "synthetic" / "clutter_overview.png"


def overview(pages: int, size: int, seed: int) -> Image.Image:
    rows = [(kind, Clutter(**{kind: 1.0})) for kind in KINDS]
    rows.append(("all kinds", Clutter(**{kind: 1.0 for kind in KINDS})))
    label_w, pad = 96, 4
    sheet = Image.new("RGB", (label_w + pages * (2 * size + pad), len(rows) * (size + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, clutter) in enumerate(rows):
        y = r * (size + pad)
        draw.text((4, y + size // 2 - 6), name, fill="black")
        for c in range(pages):
            channels = 3 if c % 2 else 1
            page = render_page(page_seed(seed, r * pages + c), size, size, channels, clutter=clutter)
            image = Image.fromarray(page["image"][..., 0] if channels == 1 else page["image"]).convert("RGB")
            gt = Image.fromarray(np.where(page["mask"] == 1, 0, 255).astype(np.uint8)).convert("RGB")
            x = label_w + c * (2 * size + pad)
            sheet.paste(image, (x, y))
            sheet.paste(gt, (x + size, y))
    return sheet


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Renders a contact sheet of synthetic pages with each kind of clutter "
                    "(binjax.data.clutter), every page beside its ground truth.",
        epilog="examples:\n  python data/make_clutter_overview.py\n"
               "  python data/make_clutter_overview.py --pages 6 --size 256 --out /tmp/clutter.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=3, help="pages per kind (default 3)")
    parser.add_argument("--size", type=int, default=160, help="page side in pixels (default 160)")
    parser.add_argument("--seed", type=int, default=0, help="page seed stream (default 0)")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="PNG to write")
    args = parser.parse_args(argv)
    if args.pages < 1 or args.size < 32:
        parser.exit(2, f"--pages must be >= 1 and --size >= 32, got {args.pages} and {args.size}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet = overview(args.pages, args.size, args.seed)
    # 32 colours keep the sheet small enough to sit in the repository (< 300 KB).
    sheet.quantize(32, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
