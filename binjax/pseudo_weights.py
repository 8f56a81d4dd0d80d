"""Pseudo-recall / pseudo-precision weight maps for the DIBCO pseudo-F-measure (pFM).

One job: ``pseudo_weights(gt_ink)`` and the official ``.dat`` weight files.  The skeleton
step (Zhang-Suen + Lee-Chen thinning) lives in ``binjax.thinning``; ``thin`` is re-exported
here for existing imports. The nearest-feature ring searches live in ``binjax.ring_search``.

Ntirogiannis, Gatos & Pratikakis, "Performance Evaluation Methodology for Historical Document
Image Binarization", IEEE TIP 22(2), 2013.  The competitions never used the paper's formulas
directly: they used the closed ``BinEvalWeights.exe``, whose ``<gt>_RWeights.dat`` /
``<gt>_PWeights.dat`` files feed ``DIBCO_metrics.exe``.  The paper leaves much of that program
open, so this module follows the public reverse-engineering that reproduces those files bit
for bit (Doxa ``PseudoWeights.hpp``, CC0, shipped as ``doxapy.generate_pseudo_weights`` from
doxapy 0.9.9, which needs Python >= 3.12).  Written here as whole-array numpy/scipy
operations; where a result would depend on the C++'s exact visiting order (say, which pixel
writes a value last), we emulate that order. docs/metrics.md lists the points where we stop
short of bit-exactness and how far the results differ.

Outline (G = ground-truth ink, True = ink):
  recall    RW = D / NR on ink.  D = chessboard distance to the GT contour (contour pixels 0),
            NR = the largest D * factor on the nearest skeleton pixels (a stroke-width
            normaliser); so RW is ~1 on the stroke's medial line and falls towards its edges.
  precision PW = 1 + Dp / NP on background within two stroke widths of a component's box.
            Dp = distance to the GT contour, NP = the nearest component's stroke width, or the
            gap between two components where they nearly touch. Dp / NP is capped at 2.
            ``PseudoWeights.precision`` holds PW - 1, the value the .dat files store.
"""

from __future__ import annotations

import heapq
import os
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from binjax.ring_search import Rings, ring_groups
from binjax.thinning import thin


class PseudoWeights(NamedTuple):
    """The two weight maps of one ground-truth page (float64 H x W).

    recall:    ``<gt>_RWeights.dat``, GW: > 0 only on ink (0 on the ink contour).
    precision: ``<gt>_PWeights.dat``, PW - 1 in [0, 2]: > 0 only on background near the text.
    Note the order: doxapy >= 0.9.9 returns (precision, recall).
    """

    recall: np.ndarray
    precision: np.ndarray


_OUTSIDE_REGION = 250  # Dp beyond every component's stroke reach (the C++ uint8 sentinel)
_EIGHT = np.ones((3, 3), bool)


# ------------------------------------------------------------------------------------------
# Small raster helpers
# ------------------------------------------------------------------------------------------

def _label8(mask: np.ndarray) -> tuple[np.ndarray, int]:
    # scipy numbers components in raster order of their first pixel, as the C++ does.
    labels, n = ndimage.label(mask, structure=_EIGHT)
    return labels.astype(np.int32), n


def _chessboard_distance(feature: np.ndarray) -> np.ndarray:
    """Chessboard distance to the nearest True pixel; 65535 everywhere if there is none."""
    if not feature.any():
        return np.full(feature.shape, 65535, np.int32)
    return ndimage.distance_transform_cdt(~feature, metric="chessboard").astype(np.int32)


def _ensure_seeds(skeleton: np.ndarray, labels: np.ndarray, n: int) -> None:
    """Give each component the thinning erased completely one skeleton pixel.

    We use the rounded centroid when it lies on the component, else its first pixel in
    raster order.
    """
    if n == 0:
        return
    has = np.zeros(n + 1, bool)
    has[labels[skeleton]] = True
    missing = np.flatnonzero(~has[1:]) + 1
    if missing.size == 0:
        return
    flat = labels.ravel()
    w = labels.shape[1]
    pix = np.flatnonzero(flat)
    lab = flat[pix]
    count = np.bincount(lab, minlength=n + 1)[missing]
    sx = np.bincount(lab, weights=pix % w, minlength=n + 1)[missing]
    sy = np.bincount(lab, weights=pix // w, minlength=n + 1)[missing]
    cx = np.floor(sx / count + 0.5).astype(np.int64)  # llround of a positive number
    cy = np.floor(sy / count + 0.5).astype(np.int64)
    centre = cy * w + cx
    ok = flat[centre] == missing
    boxes = ndimage.find_objects(labels)
    first = []
    for lab_id in missing.tolist():  # first pixel in raster order: top row of the box
        sl = boxes[lab_id - 1]
        row = labels[sl[0].start, sl[1]]
        first.append(sl[0].start * w + sl[1].start + int(np.argmax(row == lab_id)))
    first_of_missing = np.array(first, np.int64)
    skeleton.ravel()[np.where(ok, centre, first_of_missing)] = True


def _clamped_shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Neighbour at (y+dy, x+dx) for one unit step, the pixel itself where that falls off the image."""
    if dy:
        parts = (a[:1], a[:-1]) if dy < 0 else (a[1:], a[-1:])
        return np.concatenate(parts, axis=0)
    parts = (a[:, :1], a[:, :-1]) if dx < 0 else (a[:, 1:], a[:, -1:])
    return np.concatenate(parts, axis=1)


def _has_distance(d: np.ndarray) -> np.ndarray:
    return (d >= 1) & (d < _OUTSIDE_REGION)


def _medial_ridge_adjust(d: np.ndarray, skeleton: np.ndarray) -> None:
    """Add 1 to D on skeleton pixels whose four clamped neighbours carry the same D.

    The C++ updates in place in raster order, so a pixel whose upper or left neighbour has
    just been raised no longer sees a flat ridge.  The recurrence runs over the few candidates.
    """
    base = skeleton & _has_distance(d)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        base &= _clamped_shift(d, dy, dx) == d
    cand = np.flatnonzero(base)
    if cand.size == 0:
        return
    w = d.shape[1]
    raised: set[int] = set()
    for p in cand.tolist():
        up = p - w if p >= w else p
        left = p - 1 if p % w else p
        if up not in raised and left not in raised:
            raised.add(p)
    d.ravel()[np.fromiter(raised, np.int64)] += 1


# ------------------------------------------------------------------------------------------
# The stroke-width normalisation shared by recall (ink) and precision (background)
# ------------------------------------------------------------------------------------------

def _medial_normalization(d: np.ndarray, skeleton: np.ndarray, contour: np.ndarray,
                          labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (factor, norm): the per-skeleton medial factor and NR (or NP before its sqrt).

    Approximation: the C++ clips each ring to the pixel's own component bounding box, but we
    search the whole image.  The two agree unless another component's skeleton lies closer
    than the pixel's own, outside its box.
    """
    h, w = d.shape
    has = _has_distance(d)
    skel_dist = _chessboard_distance(skeleton)
    reach = np.where(skeleton & ~contour, 1, skel_dist)  # the C++ "skeletonDistance"

    # Cross-section pass.  Each pixel i writes factor[q] = D[q] + (reach_i >= D[q]) to the
    # skeleton pixels q on its nearest ring.  The last writer in raster order wins, so for
    # each q we find the largest index i that writes to it.
    groups = list(ring_groups(skel_dist, has))
    if not groups:
        return skeleton.astype(np.int64), np.zeros((h, w), np.int64)
    rings = Rings((h, w), groups[-1][0])
    skeleton_idx = np.flatnonzero(skeleton)
    factor = skeleton.astype(np.int64)
    last = np.full(h * w, -1, np.int64)
    for r, idx in groups:
        rings.scatter_last(skeleton, skeleton_idx, idx, r, last)
    written = np.flatnonzero(last >= 0)
    dq = d.ravel()[written]
    factor.ravel()[written] = dq + (reach.ravel()[last[written]] >= dq)

    # End-point pass: a skeleton pixel with exactly one skeleton neighbour takes that
    # neighbour's factor + 1.  The C++ clamps neighbours at the border, so a border pixel can
    # count itself, and it reads the lower-right neighbour at column 0/1 of the next row.
    # Both quirks are kept because the official files carry them.
    ys, xs = np.nonzero(skeleton)
    if ys.size:
        a = np.where(xs > 0, -1, 0)
        b = np.where(xs < w - 1, 1, 0)
        c = np.where(ys > 0, -1, 0)
        e = np.where(ys < h - 1, 1, 0)
        checks = [  # (row, col, flat index read)
            (ys + c, xs, (ys + c) * w + xs), (ys + e, xs, (ys + e) * w + xs),
            (ys, xs + a, ys * w + xs + a), (ys, xs + b, ys * w + xs + b),
            (ys + c, xs + a, (ys + c) * w + xs + a), (ys + e, xs + b, (ys + e) * w + b),
            (ys + e, xs + a, (ys + e) * w + xs + a), (ys + c, xs + b, (ys + c) * w + xs + b),
        ]
        count = np.zeros(ys.size, np.int64)
        read = np.zeros(ys.size, np.int64)
        for row, col, nidx in checks:
            on = skeleton[row, col]
            count += on
            read = np.where(on, nidx, read)
        end = count == 1
        if end.any():
            own = (ys * w + xs)[end]
            order = np.lexsort((own, labels.ravel()[own]))  # component, then raster order
            f = factor.ravel()
            for i, j in zip(own[order].tolist(), read[end][order].tolist()):
                v = int(f[j])
                if v > 0:
                    f[i] = (v + 1) & 0xFF

    # NR: the largest D * factor over the same ring.
    value = np.where(skeleton, d * factor, -1).astype(np.int32)
    norm = np.zeros((h, w), np.int64)
    flat_norm = norm.ravel()
    for r, idx in groups:
        flat_norm[idx] = np.maximum(rings.max([value], [-1], idx, r)[0], 0)
    _propagate_along_stroke(norm, has)
    return factor, norm


def _propagate_along_stroke(norm: np.ndarray, has: np.ndarray) -> None:
    """The C++ pass in raster order: a pixel that differs from all four (nonzero) clamped
    neighbours copies its left neighbour's current value.  It changes few pixels, so we test
    the candidates in order with a heap, and re-test right and lower neighbours after each
    change.
    """
    h, w = norm.shape
    n = [_clamped_shift(norm, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    cond = has.copy()
    for nb in n:
        cond &= (nb != 0) & (nb != norm)
    heap = np.flatnonzero(cond).tolist()
    if not heap:
        return
    f = norm.ravel()
    hasf = has.ravel()
    done: set[int] = set()
    while heap:
        p = heapq.heappop(heap)
        if p in done:
            continue
        done.add(p)
        if not hasf[p]:
            continue
        y, x = divmod(p, w)
        centre = f[p]
        nbs = (f[p - w] if y > 0 else centre, f[p + w] if y < h - 1 else centre,
               f[p - 1] if x > 0 else centre, f[p + 1] if x < w - 1 else centre)
        if all(v != 0 and v != centre for v in nbs):
            new = f[p - 1]
            if new != centre:
                f[p] = new
                for q in (p + 1, p + w):
                    if q < f.size and q not in done:
                        heapq.heappush(heap, q)


# ------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------

def pseudo_weights(gt_ink: np.ndarray) -> PseudoWeights:
    """Return ``PseudoWeights(recall, precision)``, float64 H x W, from a GT ink mask (ink True).

    ``recall`` is what ``<gt>_RWeights.dat`` holds: nonzero only on ink, and 0 on the
    contour.  ``precision`` is what ``<gt>_PWeights.dat`` holds: the stored PW - 1 in
    [0, 2], nonzero only on background near the text.  Pseudo-precision sums
    (1 + precision) over the predicted ink.  Depends only on the ground truth: compute it
    once per page and reuse it.
    """
    gt = np.asarray(gt_ink, dtype=bool)
    if gt.ndim != 2:
        raise ValueError(f"pseudo_weights needs a 2-D ink mask, got shape {gt.shape}")
    h, w = gt.shape
    if not gt.any():
        return PseudoWeights(np.zeros((h, w)), np.zeros((h, w)))

    # ---- recall --------------------------------------------------------------------------
    labels, n = _label8(gt)
    pad = np.pad(gt, 1, constant_values=False)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    contour = gt & ~interior
    skeleton = thin(gt)
    _ensure_seeds(skeleton, labels, n)
    contour_dist = _chessboard_distance(contour)

    d = np.where(gt, contour_dist % 256, 0).astype(np.int64)
    d[contour & skeleton] = 1
    _medial_ridge_adjust(d, skeleton)
    factor, nr = _medial_normalization(d, skeleton, contour, labels)
    recall = np.zeros((h, w))
    ok = (d != 0) & (nr != 0)
    recall[ok] = d[ok] / nr[ok]

    # Stroke width per component: 2 * floor(mean factor over its skeleton pixels).
    lab_sk = labels[skeleton]
    sums = np.bincount(lab_sk, weights=factor[skeleton], minlength=n + 1).astype(np.int64)
    cnts = np.bincount(lab_sk, minlength=n + 1)
    stroke = np.where(cnts > 0, (sums // np.maximum(cnts, 1)) * 2, 0)

    # ---- precision -----------------------------------------------------------------------
    precision = _precision_weights(gt, labels, n, contour, contour_dist, stroke)
    return PseudoWeights(recall, precision)


def _precision_weights(gt, labels, n, contour, contour_dist, stroke) -> np.ndarray:
    h, w = gt.shape
    bg = ~gt
    # The Gsw_bg region: background inside some component's box grown by 2 x its stroke width.
    boxes = ndimage.find_objects(labels)
    cover = np.zeros((h + 1, w + 1), np.int64)
    for lab, sl in enumerate(boxes, start=1):
        m = 2 * int(stroke[lab])
        y0, y1 = max(sl[0].start - m, 0), min(sl[0].stop + m, h)
        x0, x1 = max(sl[1].start - m, 0), min(sl[1].stop + m, w)
        cover[y0, x0] += 1
        cover[y0, x1] -= 1
        cover[y1, x0] -= 1
        cover[y1, x1] += 1
    region = (cover.cumsum(0).cumsum(1)[:h, :w] > 0) & bg

    inv_labels, n_inv = _label8(bg)
    seed = bg.copy()
    seed[0, :] = seed[-1, :] = seed[:, 0] = seed[:, -1] = False
    bg_skeleton = thin(seed)
    _ensure_seeds(bg_skeleton, inv_labels, n_inv)

    dp = np.where(region, contour_dist % 256, _OUTSIDE_REGION).astype(np.int64)
    dp[gt] = 0
    _medial_ridge_adjust(dp, bg_skeleton)
    _, np_raw = _medial_normalization(dp, bg_skeleton, np.zeros_like(gt), inv_labels)
    has = _has_distance(dp)
    np_map = np.where(has, np.floor(np.sqrt(np_raw) + 0.5), 0).astype(np.int64)

    # Ring over the GT contour: reach = the largest stroke width there, adjacent = two
    # components meet there.  The ring is clipped to the background component's box.  For
    # the page background the box is the whole image, so one pass over the page is exact.
    # Holes (say the inside of an 'o') get their own crop.
    stroke_map = np.where(contour, stroke[labels] & 0xFF, -1).astype(np.int32)
    lab_hi = np.where(contour, labels, -1).astype(np.int32)
    lab_lo = np.where(contour, -labels, -(n + 1)).astype(np.int32)  # max of -label = min label
    reach = np.full((h, w), -1, np.int64)
    adjacent = np.zeros((h, w), bool)
    inv_boxes = ndimage.find_objects(inv_labels)
    whole = [i + 1 for i, sl in enumerate(inv_boxes)
             if sl[0].start == 0 and sl[1].start == 0 and sl[0].stop == h and sl[1].stop == w]
    # reach <= the largest stroke width, so a pixel with a larger Dp gets weight 0 anyway.
    max_reach = int(stroke.max(initial=0)) & 0xFF
    has_near = has & (dp <= max_reach)
    sources = has_near & np.isin(inv_labels, whole)
    _contour_ring(sources, contour_dist, max_reach, stroke_map, lab_hi, lab_lo, reach, adjacent)
    if len(whole) < n_inv:
        integral = np.pad(contour, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        for lab in range(1, n_inv + 1):
            if lab in whole:
                continue
            sl = inv_boxes[lab - 1]
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            if integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0] == 0:
                continue  # no contour inside the box: the C++ ring finds nothing, weight 0
            src = has_near[sl] & (inv_labels[sl] == lab)
            if not src.any():
                continue
            sub_reach = np.full(src.shape, -1, np.int64)
            sub_adj = np.zeros(src.shape, bool)
            _contour_ring(src, _chessboard_distance(contour[sl]), max_reach, stroke_map[sl],
                          lab_hi[sl], lab_lo[sl], sub_reach, sub_adj)
            reach[sl][src] = sub_reach[src]
            adjacent[sl][src] = sub_adj[src]

    found = reach >= 0
    valid = has & found & (dp <= reach)
    merge = np.where(valid & adjacent, np_map & 0xFF, 0)
    # Normalise: a merge marked within Chebyshev radius (reach - dp) switches NP to the gap.
    diff = reach - dp
    merging = valid & (diff > 0) & (_chessboard_distance(merge != 0) <= diff)
    np_final = np.where(valid, np.where(merging & (np_map < reach), np_map, reach) & 0xFF, 0)
    out = np.zeros((h, w))
    nz = np_final > 0
    out[nz] = np.minimum(dp[nz] / np_final[nz], 2.0)
    return out


def _contour_ring(sources, ring_radius, max_reach, stroke_map, lab_hi, lab_lo, reach, adjacent):
    """Fill reach / adjacent at ``sources`` from the contour pixels on their nearest ring."""
    flat_reach, flat_adj = reach.ravel(), adjacent.ravel()
    near = sources & (ring_radius < 65535)
    if not near.any():
        return
    rings = Rings(ring_radius.shape, int(ring_radius[near].max()))
    values = [np.ascontiguousarray(v) for v in (stroke_map, lab_hi, lab_lo)]
    for r, idx in ring_groups(ring_radius, near):
        top, hi, neg_lo = rings.max(values, [-1, -1, -(2**31)], idx, r)
        flat_reach[idx] = top
        flat_adj[idx] = (hi >= 0) & (hi != -neg_lo)


# ------------------------------------------------------------------------------------------
# The official .dat files
# ------------------------------------------------------------------------------------------

def load_official_weights(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Read a ``*_RWeights.dat`` / ``*_PWeights.dat`` file into an H x W float64 array.

    The files hold whitespace-separated decimal floats, one per pixel, in row-major order
    (BinEvalWeights writes ``"%f "`` per pixel).  A comma decimal separator (some locales)
    is accepted.
    """
    with open(path, "r", encoding="ascii") as f:
        text = f.read()
    if "," in text:
        text = text.replace(",", ".")
    values = np.array(text.split(), dtype=np.float64)
    h, w = shape
    if values.size != h * w:
        raise ValueError(f"{os.fspath(path)}: holds {values.size} weights, expected {h}x{w} = {h * w}")
    return values.reshape(h, w)


def save_official_weights(path: str | os.PathLike, weights: np.ndarray) -> None:
    """Write weights in the official text format (``"%f "`` per pixel, row-major)."""
    flat = np.asarray(weights, dtype=np.float64).ravel()
    with open(path, "w", encoding="ascii") as f:
        f.write(" ".join(f"{v:f}" for v in flat))
        f.write(" ")
