"""The scale test: collections scored with their pages resized by a factor (issue #13, item 4).

A model that only binarizes text of its training scale is caught by scoring the same pages at
x0.5, x1 and x2. Each page is resized before binarization (area averaging down, bicubic up) and
its ground truth with it (area or bilinear, then re-thresholded at one half, so that a downscaled
stroke stays as thick as the ink it covers), and is scored at the resized size. Models are scored
once per ``--rescale`` mode (``none``: as they are; ``auto``: binjax.text_scale), beside the classic
methods.

  rows = score_scales(binarizers, ['dibco2013', 'bickley'], [0.5, 1, 2], root=..., out=...)
  report_markdown(rows)      # FM per collection and factor, one column per binarizer

Scores are kept per (factor, collection) in ``<out>/x<factor>/<collection>/pages.csv`` and a
(factor, collection) already scored is skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import math
import pathlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from binjax import protocol, text_scale
from binjax.errors import ConfigError

MEASURES = protocol.MEASURES
_COLUMNS = ("binarizer", "factor", "collection", "page", *MEASURES)
_PAGES_CSV = "pages.csv"


def parse_factors(values: Sequence[str | float]) -> list[float]:
    """['0.5', '1', '2'] -> [0.5, 1.0, 2.0]; ConfigError naming --factors for anything else."""
    factors = []
    for value in values:
        try:
            factor = float(value)
        except (TypeError, ValueError):
            factor = float("nan")
        if not (math.isfinite(factor) and 0.1 <= factor <= 8):
            raise ConfigError(f"--factors: {value!r} is not a resize factor in [0.1, 8] (e.g. --factors=0.5,1,2)")
        factors.append(factor)
    if not factors or len(set(factors)) != len(factors):
        raise ConfigError(f"--factors: give distinct factors, e.g. 0.5,1,2 (got {list(values)})")
    return factors


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 {0,1} HxW ground truth -> (height, width), re-thresholded at 1/2."""
    if mask.shape[:2] == tuple(size):
        return mask
    grey = text_scale.resize_image(np.asarray(mask, np.uint8) * np.uint8(255), size)
    return (grey >= 128).astype(np.uint8)


class ResizedPages:
    """A page source (``{'image', 'mask'}``, ``.names``, ``.collections``) with every page resized."""

    def __init__(self, pages, factor: float):
        self.pages, self.factor = pages, float(factor)
        self.names = list(pages.names)
        self.collections = list(getattr(pages, "collections", [""] * len(pages)))

    def __len__(self) -> int:
        return len(self.pages)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        page = self.pages[index]
        if self.factor == 1.0:
            return page
        size = text_scale.scaled_size(page["image"].shape, self.factor)
        return {"image": text_scale.resize_image(np.asarray(page["image"]), size),
                "mask": resize_mask(np.asarray(page["mask"]), size)}


def factor_label(factor: float) -> str:
    return f"x{factor:g}"


def score_scales(binarizers: Mapping[str, Any], collections: Sequence[str], factors: Sequence[float], *,
                 root: str | pathlib.Path, out: str | pathlib.Path, data_dir: str | None = None,
                 progress: bool = True) -> list[dict]:
    """Scores every binarizer on every collection at every factor; returns one row per page.

    A (factor, collection) whose pages.csv exists is read back, not scored again: give a new `out`
    when the binarizers change.
    """
    from binjax import evaluate  # noqa: PLC0415
    from binjax.data import collections as collections_lib  # noqa: PLC0415 -- loads tensorflow_datasets

    out = pathlib.Path(out)
    rows = []
    for factor in factors:
        for name in collections:
            folder = out / factor_label(factor) / name
            if not (folder / _PAGES_CSV).exists():
                pages = collections_lib.collection_pages([name], root=root, data_dir=data_dir or None,
                                                         channels=evaluate.pages_channels(binarizers))
                summary = evaluate.evaluate_pages(
                    binarizers, ResizedPages(pages, factor), folder, previews=False,
                    weights_cache=out / "weights_cache" / factor_label(factor),
                    dataset=f"{name} {factor_label(factor)}", progress=progress)
                found = [{"binarizer": b, "factor": factor, "collection": name,
                          "page": row["page"].split("/", 1)[-1], **{m: row[m] for m in MEASURES}}
                         for b, entry in summary["binarizers"].items() for row in entry["per_image"]]
                protocol._write_rows(folder / _PAGES_CSV, found, _COLUMNS)  # the protocol's CSV, a factor column
            rows += read_rows(folder / _PAGES_CSV)
    return rows


def read_rows(path: pathlib.Path) -> list[dict]:
    return [{**r, "factor": float(r["factor"])} for r in protocol._read_rows(path)]


def collection_means(rows: Sequence[Mapping[str, Any]], measure: str = "fm") -> dict[tuple[str, float], dict[str, float]]:
    """(collection, factor) -> binarizer -> mean of `measure` over the pages (finite values)."""
    values: dict = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if math.isfinite(row[measure]):
            values[(row["collection"], row["factor"])][row["binarizer"]].append(row[measure])
    return {key: {b: float(np.mean(v)) for b, v in by.items()} for key, by in values.items()}


def report_markdown(rows: Sequence[Mapping[str, Any]], measure: str = "fm") -> str:
    """FM per collection and factor (rows) and binarizer (columns), the mean of collections per
    factor, and each binarizer's worst (collection, factor)."""
    means = collection_means(rows, measure)
    binarizers = list(dict.fromkeys(r["binarizer"] for r in rows))
    binarizers.sort(key=lambda b: (not b.startswith("binjax"), b))
    collections = list(dict.fromkeys(r["collection"] for r in rows))
    factors = sorted({r["factor"] for r in rows})
    lines = [f"| collection | scale | " + " | ".join(binarizers) + " |", "|---|---:|" + "---:|" * len(binarizers)]
    for collection in collections:
        for factor in factors:
            if (collection, factor) not in means:
                continue
            cells = means[(collection, factor)]
            lines.append(f"| {collection} | {factor_label(factor)} | "
                         + " | ".join(f"{cells[b]:.2f}" if b in cells else "" for b in binarizers) + " |")
    for factor in factors:
        cells = [[means[(c, factor)][b] for c in collections if b in means.get((c, factor), {})] for b in binarizers]
        lines.append(f"| **mean** | {factor_label(factor)} | "
                     + " | ".join(f"**{np.mean(v):.2f}**" if v else "" for v in cells) + " |")
    worst = []
    for b in binarizers:
        scored = [(v[b], c, f) for (c, f), v in means.items() if b in v]
        value, c, f = min(scored)
        worst.append(f"{value:.2f} ({c} {factor_label(f)})")
    lines.append("| **worst** | | " + " | ".join(worst) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the estimator's error


def stroke_width_rows(root: str | pathlib.Path, collections: Sequence[str]) -> list[dict]:
    """Per page of each collection under root: the ground truth's stroke width (text_scale.
    stroke_width_of_mask), the estimate from the input page alone, their ratio and the estimate's
    CPU milliseconds. Reads the team's layout (dibco/<year>/, extra/<name>/: <page>_in.png + _gt.png)."""
    import time  # noqa: PLC0415

    from binjax import imageio  # noqa: PLC0415
    from binjax.data import collections as collections_lib  # noqa: PLC0415

    root = pathlib.Path(root)
    rows = []
    for name in collections:
        if name in collections_lib.DIBCO_COLLECTIONS:
            folder, excluded = root / "dibco" / str(collections_lib.DIBCO_COLLECTIONS[name]), {}
        else:
            folder, excluded = root / "extra" / name, collections_lib.EXTRA_COLLECTIONS[name].excluded
        for gt_path in sorted(folder.glob("*_gt.png")):
            page = gt_path.name[:-len("_gt.png")]
            if page in excluded:
                continue
            image = imageio.load_image(gt_path.with_name(f"{page}_in.png"), channels=1)[..., 0]
            truth = text_scale.stroke_width_of_mask(imageio.load_image(gt_path, channels=1)[..., 0] < 128)
            start = time.process_time()  # CPU time: the wall time on a loaded machine says little
            estimate = text_scale.estimate_stroke_width(image)
            rows.append({"collection": name, "page": page, "true": truth, "estimate": estimate,
                         "ratio": estimate / truth, "cpu_ms": 1000 * (time.process_time() - start)})
    return rows


def stroke_width_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per collection: pages, the true width's median (range), the estimate's median, and the
    ratio estimate / true: median, interquartile range, range; the estimate's median CPU time."""
    lines = ["| collection | pages | true width px, median (range) | estimate, median | estimate / true: "
             "median | IQR | range | CPU ms per page |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in dict.fromkeys(r["collection"] for r in rows):
        part = [r for r in rows if r["collection"] == name]
        true, est = np.array([r["true"] for r in part]), np.array([r["estimate"] for r in part])
        ratio = est / true
        q1, q3 = np.nanpercentile(ratio, (25, 75))
        lines.append(f"| {name} | {len(part)} | {np.median(true):.2f} ({true.min():.1f}-{true.max():.1f}) | "
                     f"{np.nanmedian(est):.2f} | {np.nanmedian(ratio):.2f} | {q1:.2f}-{q3:.2f} | "
                     f"{np.nanmin(ratio):.2f}-{np.nanmax(ratio):.2f} | {np.median([r["cpu_ms"] for r in part]):.0f} |")
    return "\n".join(lines) + "\n"
