"""Page-level evaluation: evaluation sets, scoring binarizers on them, and the report.

Binarizers (binjax.binarizers) map an uint8 HxWxC page to a bool HxW ink mask; this module
scores them against ground truth. Two parts:

* **Evaluation sets** (``open_pages``): a folder of pairs (a DIBCO year folder by default:
  ``<name>_in.png`` + ``<name>_gt.png``, ink black) or a prepared TFDS dataset
  (``tfds:dibco/2013``). Both give ``{'image', 'mask'}`` pages and ``.names``.
* **evaluate_pages** runs every binarizer on every page, scores it with the DIBCO measures
  and the set-level counts, and writes under ``out_dir``::

      summary.md                  binarizers side by side (per-page means + set IoU/F1)
      summary.json                the same figures as data (also returned)
      <binarizer>/per_image.csv   every measure of every page
      <binarizer>/binary/<page>.png    the output, 1-bit, ink black
      <binarizer>/compare/<page>.png   input, output, ground truth, error map

Pseudo-F weights depend on the ground truth only, so they are computed once per page and
shared by all binarizers (optionally cached on disk across runs).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from absl import logging
from PIL import Image, ImageDraw, ImageFont

from binjax import imageio, metrics, temp_files
from binjax import ocr as ocr_lib
from binjax import quality as quality_lib
from binjax.binarizers import Binarizer, safe_name
from binjax.errors import DataError
from binjax.pseudo_weights import PseudoWeights

PathLike = str | os.PathLike

# Error-map colours (RGB): chosen to stay distinct under red-green colour blindness.
CORRECT_INK = (0, 0, 0)
CORRECT_PAPER = (255, 255, 255)
FALSE_POSITIVE = (230, 30, 30)  # red: ink predicted on background
FALSE_NEGATIVE = (30, 100, 235)  # blue: ground-truth ink missed
ERROR_LEGEND = ("error map: black = ink found, white = background kept, red = false positive "
                "(ink predicted on background), blue = false negative (ink missed)")

# Per-image CSV columns, in order. DIBCO measures are as metrics.dibco_scores returns them
# (fm, pfm, precision, recall in percent; psnr in dB; nrm, mpm fractions); iou, dice, f1 are
# fractions from the page's pixel counts.
DIBCO_KEYS = ("fm", "pfm", "psnr", "drd", "nrm", "mpm", "precision", "recall",
              "pseudo_precision", "pseudo_recall")
COUNT_KEYS = ("iou", "dice", "f1")
CSV_COLUMNS = ("page", "height", "width", *DIBCO_KEYS, *COUNT_KEYS, "tp", "fp", "fn", "tn", "seconds")


# ------------------------------------------------------------------------------- evaluation sets


def open_pages(data: str, *, channels: int = 1, masks_dir: PathLike | None = None, image_suffix: str = "_in",
               mask_suffix: str = "_gt", mask_foreground: Literal["white", "black"] = "black",
               data_dir: PathLike | None = None, manual_dir: PathLike | None = None):
    """An evaluation set: a source of {'image': uint8 HxWxC, 'mask': uint8 HxW} with ``.names``.

    data:
      - a folder: pairs ``<name><image_suffix>.<ext>`` + ``<name><mask_suffix>.<ext>`` (DIBCO
        layout by default), or with ``masks_dir`` images and masks under the same stems;
        mask polarity by ``mask_foreground`` ('black' = dark is ink, as DIBCO);
      - ``tfds:dibco/<config>[:<split>]`` (split 'test' by default; the ``tfds:`` prefix may be
        left out): a prepared DIBCO TFDS dataset in ``data_dir``, built first from
        ``manual_dir`` when given and not prepared yet.
    channels: what every image is converted to (see ``pages_channels``).
    """
    spec = str(data)
    if spec.startswith("tfds:") or (not os.path.exists(spec) and spec.startswith("dibco/")):
        from binjax.data import dibco  # noqa: PLC0415 -- tensorflow_datasets loads only when used

        name, _, split = spec.removeprefix("tfds:").partition(":")
        config_name = dibco.config_from_name(name)
        if manual_dir and not dibco.is_prepared(config_name, data_dir):
            dibco.prepare(manual_dir, data_dir, config_name)
        return dibco.DibcoPages(data_dir, config_name, split or "test", channels=channels, cache=False)
    from binjax.data.folder import FolderPairs  # noqa: PLC0415

    if not os.path.isdir(spec):
        raise FileNotFoundError(f"{spec}: evaluation data is neither a folder nor 'tfds:dibco/<config>'")
    return FolderPairs(spec, masks_dir, image_suffix=image_suffix, mask_suffix=mask_suffix,
                       mask_foreground=mask_foreground, channels=channels, cache=False)


def pages_channels(binarizers: Mapping[str, Binarizer]) -> int:
    """3 if any binarizer reads colour, else 1: pages are read once and converted per binarizer."""
    return 3 if any(b.channels == 3 for b in binarizers.values()) else 1


# ------------------------------------------------------------------------------- pseudo weights


def page_weights(gt_ink: np.ndarray, cache_dir: PathLike | None = None) -> PseudoWeights:
    """Pseudo-F weights of a ground-truth page, read from / written to cache_dir when given.

    The cache key is a hash of the ground truth itself, so renamed or re-cropped pages never
    pick up stale weights.
    """
    gt_ink = np.asarray(gt_ink, dtype=bool)
    if cache_dir is None:
        return metrics.pseudo_weights(gt_ink)
    key = hashlib.sha256(np.packbits(gt_ink).tobytes() + str(gt_ink.shape).encode()).hexdigest()[:32]
    path = pathlib.Path(cache_dir) / f"{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            return PseudoWeights(stored["recall"], stored["precision"])
    weights = metrics.pseudo_weights(gt_ink)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, recall=weights.recall, precision=weights.precision)
    os.replace(tmp, path)
    return weights


# ------------------------------------------------------------------------------- scoring


def score_page(pred_ink: np.ndarray, gt_ink: np.ndarray, weights: PseudoWeights | None = None) -> dict[str, float]:
    """Every per-page figure of the CSV: DIBCO measures, iou/dice/f1 and the pixel counts."""
    pred_ink, gt_ink = np.asarray(pred_ink, bool), np.asarray(gt_ink, bool)
    scores = metrics.dibco_scores(pred_ink, gt_ink, weights=weights)
    counts = np.asarray(metrics.confusion_counts(pred_ink, gt_ink), np.int64)
    seg = metrics.segmentation_scores(counts)
    scores.update({k: float(seg[k]) for k in COUNT_KEYS})
    scores.update(dict(zip(("tp", "fp", "fn", "tn"), (int(c) for c in counts))))
    return scores


# Measures the DIBCO evaluator leaves undefined on some pages: NRM and MPM on a ground truth
# with no ink (or no paper), DRD when no 8x8 block holds both (docs/metrics.md). Such a page is
# left out of that measure's mean, and named, rather than turning the set's mean into NaN.
UNDEFINED_ON_SOME_PAGES = ("drd", "nrm", "mpm")


def summarize(per_image: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """DIBCO set figures (mean over pages) and set-level iou/dice/f1/precision/recall (summed counts).

    'excluded': {measure: [pages]} for the pages on which DRD, NRM or MPM is undefined (NaN);
    the measure's mean is over the other pages (NaN only when it is undefined on all of them).
    """
    rows = [{k: row[k] for k in DIBCO_KEYS} for row in per_image]
    mean = metrics.mean_scores(rows)
    excluded: dict[str, list[str]] = {}
    for key in UNDEFINED_ON_SOME_PAGES:
        undefined = [i for i, row in enumerate(rows) if math.isnan(row[key])]
        if undefined:
            excluded[key] = [str(per_image[i].get("page", i)) for i in undefined]
            defined = [row[key] for row in rows if not math.isnan(row[key])]
            mean[key] = float(np.mean(defined)) if defined else float("nan")
    counts = np.sum([[row[k] for k in ("tp", "fp", "fn", "tn")] for row in per_image], axis=0, dtype=np.int64)
    seg = metrics.segmentation_scores(counts)
    return {"mean": mean, "set": {k: float(v) for k, v in seg.items()}, "excluded": excluded,
            "counts": dict(zip(("tp", "fp", "fn", "tn"), (int(c) for c in counts)))}


# A ground truth that calls most of its page ink is almost always inverted (white ink): document
# pages are mostly paper. FM then reads 0 without a hint of why.
INVERTED_INK_FRACTION = 0.5


def polarity_warning(gt_ink: np.ndarray, page: str, path: PathLike | None = None,
                     mask_foreground: str | None = None) -> str | None:
    """A warning naming the page (and its file) when its ground truth is probably inverted, or None."""
    fraction = float(np.mean(gt_ink)) if gt_ink.size else 0.0
    if fraction <= INVERTED_INK_FRACTION:
        return None
    flag = (f"--mask_foreground={'white' if mask_foreground == 'black' else 'black'}" if mask_foreground
            else "--mask_foreground")
    return (f"{path or page}: the ground truth marks {fraction:.0%} of the page as ink; its polarity is probably "
            f"inverted (try {flag})")


# ------------------------------------------------------------------------------- pictures


def error_map(pred_ink: np.ndarray, gt_ink: np.ndarray) -> np.ndarray:
    """uint8 HxWx3: correct ink black, correct paper white, false positives red, false negatives blue."""
    out = np.empty((*gt_ink.shape, 3), np.uint8)
    out[...] = CORRECT_PAPER
    out[pred_ink & gt_ink] = CORRECT_INK
    out[pred_ink & ~gt_ink] = FALSE_POSITIVE
    out[~pred_ink & gt_ink] = FALSE_NEGATIVE
    return out


def _panel(array: np.ndarray, caption: str, scale: float, font, bar: int = 16) -> Image.Image:
    if array.dtype == bool:  # an ink mask: ink black, paper white
        array = np.where(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    image = Image.fromarray(array).convert("RGB")
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)  # area average: thin strokes stay visible
    framed = Image.new("RGB", (image.width, image.height + bar), (255, 255, 255))
    framed.paste(image, (0, bar))
    ImageDraw.Draw(framed).text((2, 1), caption, fill=(0, 0, 0), font=font)
    return framed


def comparison_image(image: np.ndarray, pred_ink: np.ndarray, gt_ink: np.ndarray, *, label: str = "output",
                     max_side: int = 1024) -> Image.Image:
    """Input, output, ground truth and error map, captioned, in a grid no longer than max_side.

    The grid is 2x2 (input | output over ground truth | error map), or one column for wide
    pages and one row for tall ones, whichever shows the panels largest. Panels are shrunk by
    area averaging when needed: the picture is a preview, the exact output is the binary PNG.
    """
    h, w = gt_ink.shape
    bar, gap = 16, 4

    def fit(layout: tuple[int, int]) -> float:  # the panels' scale in a (rows, columns) layout
        r, c = layout
        return min(1.0, (max_side - (c - 1) * gap) / (c * w), (max_side - (r - 1) * gap - r * bar) / (r * h))

    rows, cols = max(((2, 2), (4, 1), (1, 4)), key=fit)  # max() keeps the first of equals: 2x2
    scale = fit((rows, cols))
    font = ImageFont.load_default(size=12)
    panels = [_panel(image, "input", scale, font), _panel(pred_ink, label, scale, font),
              _panel(gt_ink, "ground truth", scale, font),
              _panel(error_map(pred_ink, gt_ink), "errors: red = false pos., blue = false neg.", scale, font)]
    pw, ph = panels[0].size
    grid = Image.new("RGB", (cols * pw + (cols - 1) * gap, rows * ph + (rows - 1) * gap), (128, 128, 128))
    for i, panel in enumerate(panels):
        grid.paste(panel, ((i % cols) * (pw + gap), (i // cols) * (ph + gap)))
    return grid


def _save_preview(path: pathlib.Path, picture: Image.Image) -> None:
    # An adaptive 256-colour palette keeps previews a few times smaller than RGB PNGs.
    picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


# ------------------------------------------------------------------------------- the evaluation


def _write_csv(path: pathlib.Path, rows: Sequence[Mapping[str, Any]]) -> None:
    # Optional columns (quality estimates, OCR error rates) follow the fixed ones.
    extra = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in CSV_COLUMNS]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*CSV_COLUMNS, *extra])
        writer.writeheader()
        for row in rows:
            # repr() round-trips floats exactly (nan and inf too), so the CSV is the data.
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})


def read_csv(path: PathLike) -> list[dict[str, Any]]:
    """Rows of a per_image.csv with numbers parsed back (exactly as written)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ints = {"height", "width", "tp", "fp", "fn", "tn"}
    return [{k: (v if k == "page" else int(v) if k in ints else float(v)) for k, v in row.items()} for row in rows]


def evaluate_pages(
    binarizers: Mapping[str, Binarizer],
    pages,
    out_dir: PathLike,
    *,
    names: Sequence[str] | None = None,
    limit: int | None = None,
    previews: bool = True,
    preview_size: int = 1024,
    weights_cache: PathLike | None = None,
    dataset: str = "",
    progress: bool = True,
    quality: bool = False,
    ocr: ocr_lib.OcrScorer | None = None,
) -> dict[str, Any]:
    """Runs every binarizer on every page, writes the outputs, returns the summary as data.

    binarizers: name -> callable(uint8 HxWxC) -> bool HxW ink (a binjax.binarizers ClassicBinarizer
      or ModelBinarizer, or any callable with ``channels``); names become folder names.
    pages: a source of {'image', 'mask'} (mask 1 = ink), e.g. from ``open_pages``; read at
      ``pages_channels(binarizers)`` channels so that a colour model sees colour.
    names: page names (default ``pages.names``); limit: only the first N pages.
    quality: add the models' ground-truth-free quality estimates (binjax.quality) to their CSV.
    ocr: an ocr.OcrScorer: Tesseract's error rates on the input, each output and the ground
      truth (CSV columns ocr_cer, ocr_wer; summary 'ocr').
    Returns {'dataset', 'pages', 'seconds', 'error_legend', 'files', 'binarizers': {name:
    {'description', 'mean' (DIBCO means), 'set' (iou, dice, f1, precision, recall, accuracy of
    the summed counts), 'counts', 'seconds_per_page', 'files', 'per_image_fm', 'per_image' (the
    CSV rows)}}}; summary.json holds the same, summary.md the tables.
    """
    import tqdm  # noqa: PLC0415

    if not binarizers:
        raise ValueError("evaluate_pages: no binarizers")
    out_dir = pathlib.Path(out_dir)
    n = len(pages) if limit is None else min(int(limit), len(pages))
    if n == 0:
        raise ValueError("evaluate_pages: no pages to evaluate")
    names = list(names if names is not None else getattr(pages, "names", [f"page{i:04d}" for i in range(len(pages))]))
    files = [safe_name(name) for name in names[:n]]
    if len(set(files)) != n:
        raise ValueError(f"evaluate_pages: page names are not unique as file names: {names[:n]}")
    dirs = {}
    for name in binarizers:
        if safe_name(name) != name:
            raise ValueError(f"binarizer name {name!r} is not usable as a folder name; try {safe_name(name)!r}")
        dirs[name] = out_dir / name
        (dirs[name] / "binary").mkdir(parents=True, exist_ok=True)
        temp_files.remove_stale_temp_files(dirs[name] / "binary")  # left by a killed run
        if previews:
            (dirs[name] / "compare").mkdir(parents=True, exist_ok=True)

    rows: dict[str, list[dict]] = {name: [] for name in binarizers}
    skipped: list[dict[str, str]] = []  # pages that could not be read or binarized
    warned: list[str] = []
    mask_paths = [pair[1] for pair in getattr(pages, "pairs", [])]
    start = time.perf_counter()
    bar = tqdm.tqdm(total=n, unit="page", desc="evaluate", disable=not progress, dynamic_ncols=True)
    for i in range(n):
        # One bad page (truncated file, a method refusing it) is reported and skipped; the others
        # are scored, and every binarizer is scored on the same pages.
        try:
            page = pages[i]
            image, gt = np.asarray(page["image"]), np.asarray(page["mask"]).astype(bool)
            outputs = {}
            for name, binarizer in binarizers.items():
                t0 = time.perf_counter()
                if quality:
                    pred, extra = quality_lib.binarize_with_estimates(binarizer, image)
                else:
                    pred, extra = np.asarray(binarizer(image), dtype=bool), {}
                outputs[name] = (pred, time.perf_counter() - t0, extra)
                if pred.shape != gt.shape:
                    raise ValueError(f"binarizer {name!r} returned shape {pred.shape} for a page of shape {gt.shape}")
        except (ValueError, OSError) as e:  # ImageError and ConfigError are ValueErrors
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            skipped.append({"page": names[i], "error": str(e)})
            tqdm.tqdm.write(f"skipped page {names[i]}: {e}", file=sys.stderr)
            bar.update(1)
            continue
        warning = polarity_warning(gt, names[i], mask_paths[i] if i < len(mask_paths) else None,
                                   getattr(pages, "mask_foreground", None))
        if warning:
            warned.append(warning)
            tqdm.tqdm.write(f"warning: {warning}", file=sys.stderr)
        weights = page_weights(gt, weights_cache)
        if ocr is not None:
            pairs = getattr(pages, "pairs", None)
            ocr.start_page(names[i], image, gt, pairs[i][0] if pairs is not None else None)
        for name, (pred, seconds, extra) in outputs.items():
            imageio.save_mask(dirs[name] / "binary" / f"{files[i]}.png", pred, foreground="black", bits=1)
            if ocr is not None:
                extra.update(ocr.score_output(name, names[i], pred))
            row = {"page": names[i], "height": gt.shape[0], "width": gt.shape[1], **score_page(pred, gt, weights),
                   "seconds": seconds, **extra}
            rows[name].append(row)
            if previews:
                picture = comparison_image(image, pred, gt, label=f"output ({name})", max_side=preview_size)
                _save_preview(dirs[name] / "compare" / f"{files[i]}.png", picture)
        bar.update(1)
        bar.set_postfix(pages_s=f"{(i + 1) / (time.perf_counter() - start):.2f}",
                        **{name: f"FM {r[-1]['fm']:.1f}" for name, r in list(rows.items())[:3]})
    bar.close()
    if skipped and len(skipped) == n:
        raise DataError(f"no page could be scored; the first: {skipped[0]['page']}: {skipped[0]['error']}")
    scored = [row["page"] for row in next(iter(rows.values()))]

    summary: dict[str, Any] = {"dataset": str(dataset), "pages": scored, "binarizers": {},
                               "skipped_pages": skipped, "warnings": warned,
                               "seconds": time.perf_counter() - start, "error_legend": ERROR_LEGEND}
    for name, binarizer in binarizers.items():
        _write_csv(dirs[name] / "per_image.csv", rows[name])
        entry = summarize(rows[name])
        entry["description"] = getattr(binarizer, "description", name)
        # The first page includes JIT compilation for models; the median is the steady rate.
        entry["seconds_per_page"] = float(np.median([r["seconds"] for r in rows[name]]))
        entry["files"] = {"csv": str(dirs[name] / "per_image.csv"), "binary": str(dirs[name] / "binary"),
                          "compare": str(dirs[name] / "compare") if previews else None}
        entry["per_image_fm"] = {r["page"]: r["fm"] for r in rows[name]}
        entry["per_image"] = rows[name]
        summary["binarizers"][name] = entry
        for key, excluded in entry["excluded"].items():
            logging.warning("%s: %s is undefined on %d page(s) (%s) and left out of its mean",
                            name, key.upper(), len(excluded), ", ".join(excluded[:5]))
    if ocr is not None:
        summary["ocr"] = ocr.summary()
    summary["files"] = {"summary_md": str(out_dir / "summary.md"), "summary_json": str(out_dir / "summary.json")}
    (out_dir / "summary.md").write_text(summary_markdown(summary))
    (out_dir / "summary.json").write_text(json.dumps(_json_safe(summary), indent=1))
    logging.info("evaluated %d pages with %s in %.1f s (%d skipped)", len(scored), list(binarizers),
                 summary["seconds"], len(skipped))
    return summary


def _json_safe(value):
    """JSON has no nan / inf: they become the strings 'nan', 'inf', '-inf'."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------------------- the report

# (header, where, key, factor): DIBCO papers print NRM x 100 and MPM x 1000.
_TABLE = (
    ("FM %", "mean", "fm", 1), ("pFM %", "mean", "pfm", 1), ("PSNR dB", "mean", "psnr", 1),
    ("DRD", "mean", "drd", 1), ("NRM x100", "mean", "nrm", 100), ("MPM x1000", "mean", "mpm", 1000),
    ("P %", "mean", "precision", 1), ("R %", "mean", "recall", 1),
    ("set IoU %", "set", "iou", 100), ("set F1 %", "set", "f1", 100),
)
_MAX_PAGE_ROWS = 200


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def _notes(summary: Mapping[str, Any]) -> list[str]:
    """Pages skipped, measures left undefined, ground truths that look inverted: said under the table."""
    lines = []
    skipped = summary.get("skipped_pages", [])
    if skipped:
        lines += ["", f"**{len(skipped)} page(s) skipped** (not read or not binarized; not in any figure):"]
        lines += [f"- {s['page']}: {s['error']}" for s in skipped]
    excluded = {}
    for entry in summary["binarizers"].values():
        for key, pages in entry.get("excluded", {}).items():
            excluded.setdefault(key, set()).update(pages)
    for key, pages in excluded.items():
        lines += ["", f"{key.upper()} is undefined on {len(pages)} page(s) whose ground truth has no ink, no paper "
                  f"or no mixed 8x8 block; it is left out of that mean: {', '.join(sorted(pages))}."]
    warnings = summary.get("warnings", [])
    if warnings:
        lines += ["", "Warnings:"] + [f"- {w}" for w in warnings]
    return lines


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: binarizers side by side, per-page FM, and how to read the files."""
    entries = summary["binarizers"]
    pages = summary["pages"]
    lines = [f"# Evaluation: {summary['dataset'] or 'pages'} ({len(pages)} pages)", ""]
    lines.append("| binarizer | " + " | ".join(h for h, *_ in _TABLE) + " | s/page |")
    lines.append("|---|" + "---:|" * (len(_TABLE) + 1))
    for name, e in entries.items():
        cells = [_fmt(e[where][key] * factor) for _, where, key, factor in _TABLE]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {e['seconds_per_page']:.3f} |")
    lines += [
        "",
        "FM, pFM, PSNR, DRD, NRM, MPM, P (precision), R (recall): DIBCO measures, the mean over "
        "pages. Set IoU / F1: from pixel counts summed over all pages. s/page: median "
        "binarization time (a model's first page also compiles it).",
        "",
    ]
    for name, e in entries.items():
        lines.append(f"- **{name}**: {e['description']}")
    lines += _notes(summary)
    if "ocr" in summary:
        lines += ["", *ocr_lib.summary_markdown(summary["ocr"])]
    lines += ["", "## F-measure per page", ""]
    lines.append("| page | " + " | ".join(entries) + " |")
    lines.append("|---|" + "---:|" * len(entries))
    for page in pages[:_MAX_PAGE_ROWS]:
        lines.append(f"| {page} | " + " | ".join(_fmt(e["per_image_fm"][page]) for e in entries.values()) + " |")
    if len(pages) > _MAX_PAGE_ROWS:
        lines.append(f"| ... {len(pages) - _MAX_PAGE_ROWS} more pages in the CSV files | " + " | " * len(entries))
    lines += [
        "",
        "## Files",
        "",
        "- `<binarizer>/per_image.csv`: every measure of every page (fm, pfm, precision, recall, "
        "pseudo_precision, pseudo_recall in percent; psnr in dB; drd; nrm and mpm as fractions; "
        "iou, dice, f1 as fractions from the page's pixel counts; tp, fp, fn, tn; seconds).",
        "- `<binarizer>/binary/<page>.png`: the binarized page, 1-bit, ink black.",
        "- `<binarizer>/compare/<page>.png`: input, output, ground truth and error map (a 2x2 "
        "grid, or one column / row for wide / tall pages), shrunk if large. In the " + ERROR_LEGEND + ".",
        "",
    ]
    return "\n".join(lines)
