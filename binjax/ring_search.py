"""Ring searches of the DIBCO weight program, as whole-array numpy (binjax.pseudo_weights).

BinEvalWeights finds, for each source pixel, the features on the ring of radius r around it
(r its distance to the nearest feature), one pixel at a time. Here sources are grouped by r
(``ring_groups``) and each group is reduced at once (``Rings``): same results, numpy speed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ring_groups(radius: np.ndarray, sources: np.ndarray):
    """Yield (r, flat indices in raster order) of the source pixels, grouped by ring radius."""
    idx = np.flatnonzero(sources)
    if idx.size == 0:
        return
    r = radius.ravel()[idx]
    order = np.argsort(r, kind="stable")
    idx, r = idx[order], r[order]
    cuts = np.flatnonzero(np.diff(r)) + 1
    for group in np.split(np.arange(idx.size), cuts):
        yield int(r[group[0]]), idx[group]


_SPARSE_CHUNK = 1 << 22  # ring cells gathered at once on the sparse path


class Rings:
    """Ring reductions over one image for sources grouped by radius (at most ``max_r``).

    The C++ searches rings one pixel at a time.  We reduce over the (2r+1)^2 window instead.
    That gives the same result because r is the distance to the nearest feature, so every
    feature in the window lies on its outer ring.  When sources are few, we gather their
    ring cells from copies padded by ``max_r`` with a neutral fill.  This padding stands in
    for the C++ clipping at the image edge.  Otherwise a max filter runs over the sources'
    bounding box.
    """

    def __init__(self, shape: tuple[int, int], max_r: int):
        self.h, self.w = shape
        self.pad = max(int(max_r), 0)
        self.wp = self.w + 2 * self.pad
        self._padded: dict[int, np.ndarray] = {}
        self._offsets: dict[int, np.ndarray] = {}

    def padded(self, a: np.ndarray, fill) -> np.ndarray:
        key = id(a)
        if key not in self._padded:
            self._padded[key] = np.pad(a, self.pad, constant_values=fill).ravel()
        return self._padded[key]

    def offsets(self, r: int) -> np.ndarray:
        if r not in self._offsets:
            span = np.arange(-r, r + 1)
            side = np.arange(-r + 1, r)
            dy = np.concatenate([np.full(span.size, -r), np.full(span.size, r), side, side])
            dx = np.concatenate([span, span, np.full(side.size, -r), np.full(side.size, r)])
            self._offsets[r] = dy * self.wp + dx
        return self._offsets[r]

    def _box(self, ys, xs, r):
        return (max(int(ys.min()) - r, 0), min(int(ys.max()) + r + 1, self.h),
                max(int(xs.min()) - r, 0), min(int(xs.max()) + r + 1, self.w))

    def _sparse(self, idx, r, box) -> bool:
        y0, y1, x0, x1 = box
        return idx.size * 8 * r < (y1 - y0) * (x1 - x0)

    def _cells(self, ys, xs, r):
        """Yield (slice of sources, padded flat cell indices [n, 8r]) in chunks."""
        base = (ys + self.pad) * self.wp + xs + self.pad
        off = self.offsets(r)
        step = max(1, _SPARSE_CHUNK // off.size)
        for s in range(0, base.size, step):
            yield slice(s, s + step), base[s:s + step, None] + off

    def max(self, values: list[np.ndarray], fills: list[int], idx: np.ndarray, r: int) -> list[np.ndarray]:
        """Max of each array in ``values`` over the ring of radius r at each source ``idx``."""
        if r == 0:
            return [v.ravel()[idx] for v in values]
        ys, xs = np.divmod(idx, self.w)
        box = self._box(ys, xs, r)
        if self._sparse(idx, r, box):
            flat = [self.padded(v, f) for v, f in zip(values, fills)]
            out = [np.empty(idx.size, v.dtype) for v in values]
            for sl, cells in self._cells(ys, xs, r):
                for o, v in zip(out, flat):
                    o[sl] = v[cells].max(axis=1)
            return out
        y0, y1, x0, x1 = box
        return [ndimage.maximum_filter(v[y0:y1, x0:x1], size=2 * r + 1, mode="constant",
                                       cval=f)[ys - y0, xs - x0] for v, f in zip(values, fills)]

    def scatter_last(self, feature: np.ndarray, feature_idx: np.ndarray, idx: np.ndarray, r: int,
                     last: np.ndarray) -> None:
        """last[q] = max(last[q], i) for every feature pixel q on the ring of radius r around a
        source i: for each q this keeps the C++'s last writer in raster order.
        ``feature_idx`` lists the feature pixels (flat, raster order)."""
        if r == 0:
            np.maximum.at(last, idx, idx)
            return
        ys, xs = np.divmod(idx, self.w)
        box = self._box(ys, xs, r)
        if self._sparse(idx, r, box):
            flat_feature = self.padded(feature, False)
            for sl, cells in self._cells(ys, xs, r):
                hit = flat_feature[cells]
                q = cells[hit]
                qy, qx = np.divmod(q, self.wp)
                src = np.broadcast_to(idx[sl, None], cells.shape)[hit]
                np.maximum.at(last, (qy - self.pad) * self.w + qx - self.pad, src)
            return
        y0, y1, x0, x1 = box
        marks = np.full((y1 - y0, x1 - x0), -1, np.int64)
        marks[ys - y0, xs - x0] = idx
        marks = ndimage.maximum_filter(marks, size=2 * r + 1, mode="constant", cval=-1)
        lo, hi = np.searchsorted(feature_idx, [y0 * self.w, y1 * self.w])
        q = feature_idx[lo:hi]
        qy, qx = np.divmod(q, self.w)
        inside = (qx >= x0) & (qx < x1)
        q, qy, qx = q[inside], qy[inside], qx[inside]
        last[q] = np.maximum(last[q], marks[qy - y0, qx - x0])
