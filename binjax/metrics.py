"""Segmentation and DIBCO binarization measures.  Pixel counts go in, figures come out.

Two layers:

* ``confusion_counts`` / ``segmentation_scores``: the training-loop pair.  They are written with
  array operators only, so they run on numpy arrays offline and on ``jax.numpy`` arrays,
  inside ``jax.jit`` too.  Sum the counts over a whole evaluation set, then compute the
  figures once (nnU-Net / big_vision practice).  Don't average per-batch scores.
* ``dibco_scores``: the DIBCO competition measures on one whole page (numpy, offline): F-measure,
  pseudo-F-measure, PSNR, DRD, NRM, MPM.  A set is scored DIBCO-style as the mean over its
  pages (``mean_scores``).

Masks are boolean with ink / foreground = True.  DIBCO files store ink as 0 (black); convert
at the file boundary with ``ink_from_dibco_png`` / ``dibco_png_from_ink``.  Definitions,
conventions and the cross-checks against doxapy are in docs/metrics.md.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import ndimage

from binjax.pseudo_weights import PseudoWeights, pseudo_weights

__all__ = [
    "confusion_counts", "segmentation_scores", "ink_from_dibco_png", "dibco_png_from_ink",
    "fmeasure", "pseudo_fmeasure", "psnr", "nrm", "drd", "mpm", "dibco_scores", "mean_scores",
    "PseudoWeights", "pseudo_weights",
]


# ------------------------------------------------------------------------------------------
# Counts and segmentation scores (numpy or jax.numpy, jit-safe)
# ------------------------------------------------------------------------------------------

def _array_module(*arrays):
    """jax.numpy if any input is a jax array or tracer, else numpy.

    We check instead of importing, so offline numpy use never pays for importing JAX.
    """
    for a in arrays:
        if type(a).__module__.split(".")[0] in ("jax", "jaxlib"):
            import jax.numpy as jnp
            return jnp
    return np


def confusion_counts(pred, target, axis=None):
    """Pixel counts ``[tp, fp, fn, tn]`` of a boolean prediction against a boolean target.

    Inputs of any (equal) shape; nonzero counts as foreground.  With ``axis=None`` the result
    has shape ``[4]``.  With e.g. ``axis=(1, 2, 3)`` on N x H x W x 1 batches it has shape
    ``[N, 4]``: per-image counts.

    dtype: int64 for numpy inputs.  For jax inputs it is JAX's default integer: int32
    unless ``jax_enable_x64``.  An int32 count wraps past 2**31 - 1 (~2.1e9 pixels), so
    accumulate a long evaluation on the host (``np.asarray(counts, np.int64)`` per batch,
    then sum).
    """
    xp = _array_module(pred, target)
    p = xp.asarray(pred).astype(bool)
    t = xp.asarray(target).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"confusion_counts: prediction shape {p.shape} != target shape {t.shape}")
    dtype = np.int64 if xp is np else None
    tp = (p & t).sum(axis=axis, dtype=dtype)
    fp = (p & ~t).sum(axis=axis, dtype=dtype)
    fn = (~p & t).sum(axis=axis, dtype=dtype)
    tn = (~p & ~t).sum(axis=axis, dtype=dtype)
    return xp.stack([tp, fp, fn, tn], axis=-1)


def _ratio(xp, num, den, empty):
    """num / den, and ``empty`` where den == 0 (no division by zero, so no nan even under jit)."""
    safe = xp.where(den == 0, 1, den)
    return xp.where(den == 0, empty, num / safe)


def segmentation_scores(counts) -> dict:
    """iou, dice, f1 (= dice), precision, recall, accuracy from ``[..., 4]`` counts, as fractions.

    Zero denominators mean there was nothing to find or nothing was predicted:
      * prediction and target both empty: every score is 1.0 (a perfect answer);
      * precision with nothing predicted: 1.0 if the target is empty too, else 0.0;
      * recall with an empty target: 1.0 if nothing was predicted, else 0.0;
      * accuracy of zero pixels: 1.0.
    Works on numpy and jax arrays (float64 / float32), batched over leading axes.
    """
    xp = _array_module(counts)
    c = xp.asarray(counts)
    c = c.astype(np.float64 if xp is np else xp.float32)
    tp, fp, fn, tn = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    one, zero = 1.0, 0.0
    dice = _ratio(xp, 2 * tp, 2 * tp + fp + fn, one)
    return {
        "iou": _ratio(xp, tp, tp + fp + fn, one),
        "dice": dice,
        "f1": dice,
        "precision": _ratio(xp, tp, tp + fp, xp.where(fn == 0, one, zero)),
        "recall": _ratio(xp, tp, tp + fn, xp.where(fp == 0, one, zero)),
        "accuracy": _ratio(xp, tp + tn, tp + fp + fn + tn, one),
    }


# ------------------------------------------------------------------------------------------
# File polarity
# ------------------------------------------------------------------------------------------

def ink_from_dibco_png(image) -> np.ndarray:
    """Boolean ink mask (True = ink) from a DIBCO-polarity image: ink dark (0), paper 255.

    Takes uint8 H x W or H x W x 1 (a bool array is taken as already ink = True).  Values
    below 128 are ink, the threshold the shared data set was written with.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"ink_from_dibco_png: expected H x W (or H x W x 1), got shape {a.shape}")
    if a.dtype == bool:
        return a.copy()
    return a < 128


def dibco_png_from_ink(ink) -> np.ndarray:
    """uint8 C-contiguous H x W with ink = 0 and paper = 255: DIBCO files and doxapy take this."""
    return np.ascontiguousarray(np.where(np.asarray(ink, dtype=bool), 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------------------
# DIBCO measures (numpy, one page)
# ------------------------------------------------------------------------------------------

def _pair(pred_ink, gt_ink) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred_ink, dtype=bool)
    g = np.asarray(gt_ink, dtype=bool)
    if p.ndim != 2 or p.shape != g.shape:
        raise ValueError(f"DIBCO measures need two equal H x W masks, got {p.shape} and {g.shape}")
    return p, g


def _counts_np(p, g):
    tp, fp, fn, tn = (int(v) for v in confusion_counts(p, g))
    return tp, fp, fn, tn


def fmeasure(pred_ink, gt_ink) -> tuple[float, float, float]:
    """(FM, precision, recall) in percent.  Like the DIBCO evaluator, all three are 0 when TP = 0."""
    tp, fp, fn, _ = _counts_np(*_pair(pred_ink, gt_ink))
    if tp == 0:
        return 0.0, 0.0, 0.0
    p, r = tp / (tp + fp), tp / (tp + fn)
    return 200.0 * p * r / (p + r), 100.0 * p, 100.0 * r


def pseudo_fmeasure(pred_ink, gt_ink, weights: PseudoWeights | tuple | None = None) -> tuple[float, float, float]:
    """(pFM, pseudo-precision, pseudo-recall) in percent, as DIBCO_metrics computes them.

    pseudo-recall    = sum_TP Rw / (sum_TP Rw + sum_FN Rw)
    pseudo-precision = sum_TP (1 + Pw) / (sum_TP (1 + Pw) + sum_FP (1 + Pw))
    Rw / Pw are the ``*_RWeights.dat`` / ``*_PWeights.dat`` maps (``weights``, computed from
    the ground truth when None).  A figure whose numerator is 0 is 0.
    """
    p, g = _pair(pred_ink, gt_ink)
    if weights is None:
        weights = pseudo_weights(g)
    elif not isinstance(weights, PseudoWeights):
        weights = PseudoWeights(*weights)  # a plain (recall, precision) pair
    rw = np.asarray(weights.recall, dtype=np.float64)
    pw = np.asarray(weights.precision, dtype=np.float64)
    if rw.shape != g.shape or pw.shape != g.shape:
        raise ValueError(f"pseudo weights of shape {rw.shape} / {pw.shape} for a page of shape {g.shape}")
    tp, fp, fn = p & g, p & ~g, ~p & g
    ptp = tp.sum() + pw[tp].sum()
    pfp = fp.sum() + pw[fp].sum()
    rtp, rfn = rw[tp].sum(), rw[fn].sum()
    pp = ptp / (ptp + pfp) if ptp > 0 else 0.0
    pr = rtp / (rtp + rfn) if rtp > 0 else 0.0
    pfm = 200.0 * pp * pr / (pp + pr) if ptp > 0 and rtp > 0 else 0.0
    return float(pfm), float(100.0 * pp), float(100.0 * pr)


def psnr(pred_ink, gt_ink) -> float:
    """PSNR in dB with C = 1 (binary images): 10 log10(1 / MSE); +inf for a perfect page."""
    tp, fp, fn, tn = _counts_np(*_pair(pred_ink, gt_ink))
    mse = (fp + fn) / (tp + fp + fn + tn)
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def nrm(pred_ink, gt_ink) -> float:
    """Negative rate metric (FN/(FN+TP) + FP/(FP+TN)) / 2, a fraction (DIBCO tables print x100).

    nan when the page has no ink or no background (a rate is undefined).
    """
    tp, fp, fn, tn = _counts_np(*_pair(pred_ink, gt_ink))
    if tp + fn == 0 or fp + tn == 0:
        return float("nan")
    return 0.5 * (fn / (fn + tp) + fp / (fp + tn))


def _drd_weights(n: int = 5) -> np.ndarray:
    c = n // 2
    yy, xx = np.mgrid[-c:c + 1, -c:c + 1]
    dist = np.hypot(yy, xx)
    w = np.where(dist == 0, 0.0, 1.0 / np.where(dist == 0, 1.0, dist))
    return w / w.sum()


_DRD_W = _drd_weights()


def drd(pred_ink, gt_ink, block: int = 8) -> float:
    """Distance-reciprocal distortion as the DIBCO evaluator computes it (Lu et al. 2004).

    For each flipped pixel k, DRD_k = sum over the 5x5 ground-truth neighbourhood of
    W(i, j) |GT(i, j) - B(k)|, with W the inverse Euclidean distance to the centre (centre 0),
    normalised to sum 1.  Cells outside the image count 0.  DRD = sum_k DRD_k / NUBN, where
    NUBN = the number of non-overlapping 8x8 ground-truth blocks holding both ink and
    background.  Partial blocks at the right and bottom edges are ignored.  nan when
    NUBN = 0.

    Vectorised: for a false positive, |GT - B| = 1 exactly at the background cells, so
    DRD_k = (W * background)(k).  For a false negative it is (W * ink)(k).  Two correlations
    with zero padding replace the per-pixel loop.
    """
    p, g = _pair(pred_ink, gt_ink)
    h, w = g.shape
    hb, wb = h // block, w // block
    blocks = g[:hb * block, :wb * block].reshape(hb, block, wb, block)
    ink_per_block = blocks.sum(axis=(1, 3))
    nubn = int(((ink_per_block > 0) & (ink_per_block < block * block)).sum())
    if nubn == 0:
        return float("nan")
    fp, fn = p & ~g, ~p & g
    total = 0.0
    if fp.any():
        total += ndimage.correlate((~g).astype(np.float64), _DRD_W, mode="constant", cval=0.0)[fp].sum()
    if fn.any():
        total += ndimage.correlate(g.astype(np.float64), _DRD_W, mode="constant", cval=0.0)[fn].sum()
    return float(total / nubn)


def mpm(pred_ink, gt_ink) -> float:
    """Misclassification penalty metric (MP_FN + MP_FP) / 2, a fraction (DIBCO tables print x1000).

    MP_FN = sum over false negatives of their distance to the GT contour / D, MP_FP likewise
    for false positives, D = the sum of that distance over every pixel of the page.  The
    contour is the background pixels 8-adjacent to ink, as in the public port of the DIBCO
    evaluation code.  That port uses OpenCV's 3x3 chamfer approximation of the Euclidean
    distance; we use the exact one.  nan when the page has no ink or no background.
    """
    p, g = _pair(pred_ink, gt_ink)
    contour = ~g & ndimage.binary_dilation(g, structure=np.ones((3, 3), bool))
    if not contour.any():
        return float("nan")
    dist = ndimage.distance_transform_edt(~contour)
    norm = dist.sum()
    if norm == 0:
        return float("nan")
    mp_fn = dist[~p & g].sum() / norm
    mp_fp = dist[p & ~g].sum() / norm
    return float(0.5 * (mp_fn + mp_fp))


def dibco_scores(pred_ink, gt_ink, *, weights: PseudoWeights | tuple | None = None) -> dict:
    """All DIBCO measures of one page.  Both masks are bool H x W with ink = True.

    Returns fm, pfm, precision, recall, pseudo_precision, pseudo_recall (percent), psnr (dB),
    drd, nrm (fraction), mpm (fraction).  ``weights`` = (recall_weights, precision_weights),
    e.g. from ``pseudo_weights(gt)`` or the official .dat files
    (``load_official_weights``).  When None they are generated from the ground truth.  That
    step is the slow part, so cache the weights per ground-truth page when scoring many
    predictions.
    """
    p, g = _pair(pred_ink, gt_ink)
    fm, precision, recall = fmeasure(p, g)
    pfm, pseudo_p, pseudo_r = pseudo_fmeasure(p, g, weights)
    return {
        "fm": fm, "pfm": pfm, "psnr": psnr(p, g), "drd": drd(p, g), "nrm": nrm(p, g),
        "mpm": mpm(p, g), "precision": precision, "recall": recall,
        "pseudo_precision": pseudo_p, "pseudo_recall": pseudo_r,
    }


def mean_scores(per_image: Sequence[Mapping[str, float]]) -> dict:
    """DIBCO-style set figures: the mean of each measure over the pages.

    A page with PSNR = +inf (a perfect page) makes the mean PSNR +inf, which is an honest
    result.
    """
    if not per_image:
        raise ValueError("mean_scores: no pages to average")
    keys = per_image[0].keys()
    for i, s in enumerate(per_image):
        if s.keys() != keys:
            raise ValueError(f"mean_scores: page {i} has keys {sorted(s)}, page 0 has {sorted(keys)}")
    return {k: float(np.mean([s[k] for s in per_image])) for k in keys}
