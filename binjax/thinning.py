"""Skeletons as the DIBCO evaluator (BinEvalWeights) draws them, for the pseudo-F weights.

One job: ``thin(mask)``, Zhang & Suen (1984) thinning to a fixed point followed by Lee & Chen
(1992) Table 1 deletion passes in raster order, the skeleton step of
``binjax.pseudo_weights.pseudo_weights``.  Follows Doxa ``PseudoWeights.hpp`` (CC0), which
reproduces the official .dat files bit for bit; docs/metrics.md explains the choices.
"""

from __future__ import annotations

import heapq

import numpy as np

# Lee & Chen (1992) Table 1 as used by BinEvalWeights: 'x' deletes the centre pixel.  The
# index is the 8-neighbour code, bit 0 = N, then NE, E, SE, S, SW, W, bit 7 = NW; row r holds
# codes 16r .. 16r+15.
_LEE_CHEN_ROWS = (
    ".....x.......xx.", "....x.xx.....x..", "................", "....xxxx.....x..",
    ".x.x.x.x.....x.x", "x..xx.x.xx.xx.x.", ".x.x.x.x.....x.x", ".x.xx.x..x.x....",
    ".....x.......x..", ".....x.x.....x..", "................", ".....x.x.....x.x",
    ".....x.......x..", "xx.xx.x.xx.xx.x.", "x....x.......x.x", "....x.x....x..x.",
)
_LEE_CHEN_DELETE = np.array([c == "x" for row in _LEE_CHEN_ROWS for c in row])


def _zhang_suen_delete(sub_iteration: int) -> np.ndarray:
    """Zhang & Suen (1984) deletion table for one sub-iteration, indexed like _LEE_CHEN_DELETE."""
    codes = np.arange(256)
    p = [(codes >> k) & 1 for k in range(8)]  # p[0] = P2 (N) ... p[7] = P9 (NW)
    count = sum(p)
    transitions = sum((1 - p[k]) & p[(k + 1) % 8] for k in range(8))
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    if sub_iteration == 1:
        clear = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
    else:
        clear = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
    return (count >= 2) & (count <= 6) & (transitions == 1) & clear


_ZS_DELETE = (_zhang_suen_delete(1), _zhang_suen_delete(2))


def _neighbour_codes(raster: np.ndarray, idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    code = raster[idx + offsets[0]].copy()  # raster holds 0/1 uint8, so codes fit in uint8
    for bit, off in enumerate(offsets[1:], start=1):
        code |= raster[idx + off] << bit
    return code


def _dedupe(idx: np.ndarray, stamp: np.ndarray) -> np.ndarray:
    """Unique values of ``idx`` without sorting (``stamp`` is scratch space of raster size)."""
    stamp[idx] = np.arange(idx.size)
    return idx[stamp[idx] == np.arange(idx.size)]


def thin(mask: np.ndarray) -> np.ndarray:
    """Skeleton as BinEvalWeights draws it: Zhang-Suen to a fixed point, then Lee-Chen Table 1.

    Zhang-Suen sub-iterations delete in parallel, so they run on a frontier of boundary pixels.
    The Table-1 pass deletes in raster order, and a later pixel sees the earlier deletions.
    We emulate that with a heap of candidates in raster order.  Pixels outside the image
    count as background.
    """
    h, w = mask.shape
    wp = w + 2
    raster = np.zeros((h + 2) * wp, np.uint8)
    raster.reshape(h + 2, wp)[1:-1, 1:-1] = mask
    # N, NE, E, SE, S, SW, W, NW in the padded flat raster.
    offsets = np.array([-wp, -wp + 1, 1, wp + 1, wp, wp - 1, -1, -wp - 1])

    # Only a pixel whose neighbourhood changed since its last test under the same table can
    # change its answer, so each sub-pass tests the alive neighbours of the pixels deleted in
    # the previous two sub-passes (at the start: every boundary pixel).
    grid = raster.reshape(h + 2, wp)
    interior = np.ones((h, w), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            interior &= grid[dy:dy + h, dx:dx + w] == 1
    boundary = np.zeros((h + 2, wp), bool)
    boundary[1:-1, 1:-1] = mask & ~interior
    frontier = np.flatnonzero(boundary)
    fresh = [frontier, frontier]  # to test under table 1 / table 2
    stamp = np.empty(raster.size, np.int64)
    sub = 0
    idle = 0
    while idle < 2:
        test = _dedupe(fresh[sub], stamp) if fresh[sub].size else fresh[sub]
        test = test[raster[test] == 1]
        dead = test[_ZS_DELETE[sub][_neighbour_codes(raster, test, offsets)]] if test.size else test
        if dead.size:
            raster[dead] = 0
            touched = (dead[:, None] + offsets[None, :]).ravel()
            touched = touched[raster[touched] == 1]
            fresh[1 - sub] = np.concatenate([fresh[1 - sub], touched])
            fresh[sub] = touched
            idle = 0
        else:
            fresh[sub] = dead
            idle += 1
        sub = 1 - sub

    while True:  # Lee-Chen passes until one deletes nothing
        on = np.flatnonzero(raster)
        heap = on[_LEE_CHEN_DELETE[_neighbour_codes(raster, on, offsets)]].tolist()
        if not heap:
            break
        heapq.heapify(heap)
        done, removed = set(), False
        offs = offsets.tolist()
        while heap:
            p = heapq.heappop(heap)
            if p in done or not raster[p]:
                continue
            done.add(p)
            code = 0
            for bit, off in enumerate(offs):
                code |= int(raster[p + off]) << bit
            if _LEE_CHEN_DELETE[code]:
                raster[p] = 0
                removed = True
                heap_push = [p + off for off in offs if p + off > p and raster[p + off]]
                for q in heap_push:
                    heapq.heappush(heap, q)
        if not removed:
            break
    return raster.reshape(h + 2, wp)[1:-1, 1:-1].astype(bool)
