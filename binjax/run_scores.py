"""DIBCO measures and speed of a finished training run, for sweep reports.

Training validates with pixel counts only (F1, IoU, Dice). A report also wants the DIBCO
measures (FM, pFM, PSNR, DRD), which need the predicted masks, and each model's speed. This
module computes them after the fact from what a run leaves in its workdir:

  - the validation patches are rebuilt exactly as `train.train_and_evaluate` drew them
    (same source, seed and count), and laid out as one mosaic page (patches side by side),
    so each measure is computed once per checkpoint, on one page, as the DIBCO evaluator
    would score a page; the pseudo-F weights of the mosaic's ground truth are computed once
    per validation set;
  - the best and the latest checkpoint are both scored ('best' and 'final');
  - train images/s is the mean of the run's logged `train/images_per_s`; inference MP/s is
    measured on a synthetic page by binjax.benchmark (per model config, not per seed).
"""

from __future__ import annotations

import pathlib
from typing import Any

import ml_collections
import numpy as np

from binjax import page_context, reporting

MEASURES = ("fm", "pfm", "psnr", "drd")


def validation_patches(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The patches train_and_evaluate validated on (before the per-process split)."""
    from binjax import train  # noqa: PLC0415
    from binjax.data import sources  # noqa: PLC0415

    _, val_source = sources.make_sources(config.data, config.seed)
    return train.validation_patches(config, val_source)


def mosaic(patches: np.ndarray, columns: int = 8) -> np.ndarray:
    """[N, P, P, ...] -> one [rows * P, columns * P, ...] page.

    N must fill the grid (one row when `columns` does not divide it): padding cells would add
    pixels that change PSNR.
    """
    n, p = patches.shape[:2]
    columns = columns if n % columns == 0 else n
    rows = n // columns
    page = np.zeros((rows * p, columns * p, *patches.shape[3:]), patches.dtype)
    for i, patch in enumerate(patches):
        r, c = divmod(i, columns)
        page[r * p:(r + 1) * p, c * p:(c + 1) * p] = patch
    return page


def _predict_ink(model, images: np.ndarray, batch_size: int) -> np.ndarray:
    from binjax import inference  # noqa: PLC0415

    predict = inference.make_predict_fn(model, logits=True)
    out = [np.asarray(predict(images[i:i + batch_size].astype(np.float32) / 255.0))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) > 0.0


def checkpoint_measures(workdir: str | pathlib.Path, config: ml_collections.ConfigDict,
                        val: dict[str, np.ndarray] | None = None, weights=None) -> dict[str, float]:
    """{'best_fm', 'best_pfm', ..., 'final_drd'}: DIBCO measures of both checkpoints on the mosaic."""
    from binjax import evaluate, metrics, pretrained  # noqa: PLC0415

    val = validation_patches(config) if val is None else val
    gt = mosaic(val["mask"][..., 0] > 0)
    weights = evaluate.page_weights(gt) if weights is None else weights
    scores: dict[str, float] = {}
    by_checkpoint: dict[pathlib.Path, dict] = {}  # the best checkpoint is often the latest too
    for which, prefer_best in (("best", True), ("final", False)):
        try:
            source = pretrained.resolve(workdir, prefer_best=prefer_best)
        except FileNotFoundError:
            continue
        if source not in by_checkpoint:
            model, _ = pretrained.load_model(source)
            ink = mosaic(_predict_ink(model, val["image"], config.batch_size))
            by_checkpoint[source] = metrics.dibco_scores(ink, gt, weights=weights)
        scores.update({f"{which}_{m}": float(by_checkpoint[source][m]) for m in MEASURES})
    return scores


def train_images_per_s(workdir: str | pathlib.Path) -> float | None:
    """Mean logged training throughput of the run (compilation and validation excluded)."""
    rates = [r["train/images_per_s"] for r in reporting.read_metrics(workdir) if "train/images_per_s" in r]
    return float(np.mean(rates)) if rates else None


def inference_megapixels_per_s(config: ml_collections.ConfigDict, *, page: int = 1024) -> float:
    """Full-page tiled inference speed of the config's model (random weights: speed only)."""
    from binjax import benchmark  # noqa: PLC0415

    return float(benchmark.inference_throughput(config, height=page, width=page, tile=512, overlap=0.0)[
        "megapixels_per_s"])


def run_scores(workdir, config, *, cache: dict[str, Any]) -> dict[str, float | None]:
    """Everything this module adds to one run's report row; `cache` holds per-sweep shared work
    (validation sets and their pseudo-F weights by seed, inference speed by model config)."""
    val_key = ("val", config.seed, config.data.to_json_best_effort())
    if val_key not in cache:
        from binjax import evaluate  # noqa: PLC0415

        val = validation_patches(config)
        cache[val_key] = (val, evaluate.page_weights(mosaic(val["mask"][..., 0] > 0)))
    val, weights = cache[val_key]
    row: dict[str, float | None] = dict(checkpoint_measures(workdir, config, val, weights))
    row["train_images_per_s"] = train_images_per_s(workdir)
    speed_key = ("speed", config.model.to_json_best_effort(), page_context.model_channels(config.data),
                 config.compute_dtype)
    if speed_key not in cache:
        cache[speed_key] = inference_megapixels_per_s(config)
    row["inference_mp_per_s"] = cache[speed_key]
    return row
