"""How good is a binarized page, without ground truth: estimates from the model's own probabilities.

A model binarizer (binarizers.ModelBinarizer) gives each pixel an ink probability p before it
thresholds it. Read as independent Bernoulli variables, the probabilities give the counts a
ground truth would give, in expectation, for the mask we actually output (ink = p > t):

    E[TP] = sum of p over output ink        E[FP] = sum of (1 - p) over output ink
    E[FN] = sum of p over output paper      expected FM = 2 E[TP] / (2 E[TP] + E[FP] + E[FN])

``expected_fm`` is that ratio in percent, on the scale of the DIBCO F-measure it predicts. Two
simpler signals are kept beside it because they rank pages too and cost nothing: the share of
"unsure" pixels (0.1 < p < 0.9) per output ink pixel (boundary uncertainty), and the ink
fraction. Which one to trust was measured (launch/validate_quality.py, docs/quality/): the
score named ``quality`` in the CSV files is the one that ranked real pages best.

Everything here reads the page-sized float32 probability map the tiled inference already holds
(binjax.inference): no second page-sized float array is made; temporaries are boolean, or come
in strips of rows.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from binjax import temp_files

PathLike = str | os.PathLike

# The score reported as `quality`: chosen on real pages with ground truth (docs/quality/).
QUALITY_KEY = "expected_fm"
ESTIMATE_KEYS = ("expected_fm", "unsure_per_ink", "ink_fraction")
# quality.csv's columns, and "probability" after them when maps are written.
QUALITY_CSV_FIELDS = ("input", "output", "quality", *ESTIMATE_KEYS)
_UNSURE = (0.1, 0.9)
_STRIP_ROWS = 256


def page_estimates(prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The ground-truth-free estimates of one page's output (prob > threshold) from its probabilities."""
    prob = np.asarray(prob, np.float32)
    ink = prob > threshold
    n_ink = int(np.count_nonzero(ink))
    total = float(np.sum(prob, dtype=np.float64))
    tp = float(np.sum(prob, where=ink, dtype=np.float64))
    fp, fn = n_ink - tp, total - tp
    denominator = 2 * tp + fp + fn
    # A page with neither predicted nor expected ink is perfect by the DIBCO convention.
    expected_fm = 100.0 if denominator <= 0 else 100.0 * 2 * tp / denominator
    unsure = int(np.count_nonzero((prob > _UNSURE[0]) & (prob < _UNSURE[1])))
    return {"expected_fm": expected_fm, "unsure_per_ink": unsure / max(n_ink, 1),
            "ink_fraction": n_ink / max(prob.size, 1)}


def quality_score(estimates: Mapping[str, float]) -> float:
    """The one number that ranks pages, higher = better (see QUALITY_KEY)."""
    return float(estimates[QUALITY_KEY])


def has_probability(binarizer: Any) -> bool:
    """True for binarizers that expose ink probabilities (models), False for classic methods."""
    return callable(getattr(binarizer, "probability", None))


def binarize_with_estimates(binarizer: Any, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """(ink mask, estimates): one pass of the model gives both; classic methods give no estimates."""
    if not has_probability(binarizer):
        return np.asarray(binarizer(image), dtype=bool), {}
    prob = binarizer.probability(image)
    threshold = binarizer.options["threshold"]
    estimates = page_estimates(prob, threshold)
    return prob > threshold, {"quality": quality_score(estimates), **estimates}


def probability_image(prob: np.ndarray, foreground: Literal["white", "black"] = "black") -> np.ndarray:
    """uint8 HxW map of the ink probability, shaded like the binary output: with ink black,
    certain ink is 0 and certain paper 255 (255 * (1 - p)); with ink white, 255 * p.

    Converted in strips of rows so that no second page-sized float array exists.
    """
    prob = np.asarray(prob, np.float32)
    out = np.empty(prob.shape, np.uint8)
    for y in range(0, prob.shape[0], _STRIP_ROWS):
        strip = np.clip(prob[y:y + _STRIP_ROWS], 0.0, 1.0)
        if foreground == "black":
            strip = 1.0 - strip
        out[y:y + _STRIP_ROWS] = np.rint(strip * 255.0)
    return out


class PageReport:
    """The per-page hook of binarize.binarize_files for a model: binarizes from the probability
    map, optionally writes the map beside the output (``<stem>_prob.png``), and keeps the
    page's quality estimates for ``write_csv``.
    """

    def __init__(self, binarizer: Any, *, probability_suffix: str | None = None,
                 foreground: Literal["white", "black"] = "black"):
        if not has_probability(binarizer):
            raise ValueError(f"{getattr(binarizer, 'name', binarizer)!r} gives no probabilities: "
                             "quality estimates and probability maps need a model")
        self.binarizer, self.probability_suffix, self.foreground = binarizer, probability_suffix, foreground
        self.rows: list[dict[str, Any]] = []

    def probability_path(self, dst: pathlib.Path) -> pathlib.Path:
        return dst.with_name(f"{dst.stem}{self.probability_suffix}.png")

    def __call__(self, src: pathlib.Path, dst: pathlib.Path, image: np.ndarray) -> np.ndarray:
        prob = self.binarizer.probability(image)
        threshold = self.binarizer.options["threshold"]
        estimates = page_estimates(prob, threshold)
        row = {"input": str(src), "output": str(dst), "quality": quality_score(estimates), **estimates}
        if self.probability_suffix is not None:
            path = self.probability_path(dst)
            path.parent.mkdir(parents=True, exist_ok=True)
            _save_grey(path, probability_image(prob, self.foreground))
            row["probability"] = str(path)
        self.rows.append(row)
        return prob > threshold

    def write_csv(self, path: PathLike) -> pathlib.Path:
        """quality.csv: one row per page, the least confident first (lowest ``quality``)."""
        return write_quality_csv(path, self.rows)


def _save_grey(path: pathlib.Path, array: np.ndarray) -> None:
    from PIL import Image  # noqa: PLC0415

    with temp_files.atomic_write(path) as tmp:  # as imageio.save_mask: no half-written maps
        Image.fromarray(array).save(tmp, format="PNG")


def write_quality_csv(path: PathLike, rows: Sequence[Mapping[str, Any]]) -> pathlib.Path:
    """Rows sorted by ``quality``, lowest (the pages to look at first) on top; the file is
    replaced whole (temp_files.atomic_write), so a reader never sees half of it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda r: r["quality"])
    fields = list(dict.fromkeys([*QUALITY_CSV_FIELDS, *(k for r in ordered for k in r)]))
    with temp_files.atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in ordered:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return path


def read_quality_csv(path: PathLike) -> list[dict[str, Any]]:
    """The rows of a quality.csv (write_quality_csv), the estimates as floats: a resumed run
    keeps the rows of the pages it does not redo."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("quality", *ESTIMATE_KEYS):
            if row.get(key) not in (None, ""):
                row[key] = float(row[key])
    return [row for row in rows if isinstance(row.get("quality"), float)]


# ------------------------------------------------------------------------------- validation


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties share their mean rank); nan for fewer than 3 pairs."""
    from scipy import stats  # noqa: PLC0415 -- scipy comes with scikit-image

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def flag_auc(quality: Sequence[float], flagged: Sequence[bool]) -> float:
    """Area under the ROC curve of 'low quality' as a detector of the flagged pages: the chance
    that a flagged page has a lower quality than an unflagged one (ties count half)."""
    from scipy import stats  # noqa: PLC0415

    quality, flagged = np.asarray(quality, float), np.asarray(flagged, bool)
    n_pos, n_neg = int(flagged.sum()), int((~flagged).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(-quality)  # the lowest quality has the highest rank
    return float((ranks[flagged].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def lowest_k_precision_recall(quality: Sequence[float], flagged: Sequence[bool], k: int) -> tuple[float, float]:
    """Precision and recall of 'the k pages of lowest quality' as the flagged pages."""
    quality, flagged = np.asarray(quality, float), np.asarray(flagged, bool)
    if k <= 0 or not flagged.any():
        return math.nan, math.nan
    picked = np.argsort(quality, kind="stable")[:k]
    hits = int(flagged[picked].sum())
    return hits / k, hits / int(flagged.sum())


def validation_rows(pages: Sequence[Mapping[str, Any]], group_key: str = "collection") -> list[dict[str, Any]]:
    """One row per group (and 'all'): pages, mean true FM, Spearman of each estimate with the true
    FM, and how well the lowest quality flags the pages where the model scores below Otsu.

    pages: dicts with group_key, 'fm' (the model's true FM), 'otsu_fm' and the ESTIMATE_KEYS.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {"all": list(pages)}
    for page in pages:
        groups.setdefault(str(page[group_key]), []).append(page)
    rows = []
    for group, members in groups.items():
        fm = [p["fm"] for p in members]
        below = [p["fm"] < p["otsu_fm"] for p in members]
        quality = [p["quality"] for p in members]
        k = int(sum(below))
        precision, recall = lowest_k_precision_recall(quality, below, k)
        row = {"group": group, "pages": len(members), "mean_fm": float(np.mean(fm)),
               "mean_quality": float(np.mean(quality)),
               **{f"spearman_{key}": spearman([p[key] for p in members], fm) for key in ESTIMATE_KEYS},
               "below_otsu": k, "flag_auc": flag_auc(quality, below),
               "lowest_k_precision": precision, "lowest_k_recall": recall}
        rows.append(row)
    return rows
