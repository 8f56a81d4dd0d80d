"""Handwriting for the synthetic generator: cursive-like lines of looped pen trajectories.

Moved out of binjax/data/synthetic.py unchanged (same random draws, same pixels), so that module
stays under the project's size limit. Numpy and Pillow's ImageDraw only: worker-safe.
"""

from __future__ import annotations

import math

import numpy as np


def handwritten_paragraph(rng, draw, x0, y0, col_w, y_end, density, scale, size_cap) -> int:
    """Cursive-like lines of looped pen trajectories drawn onto `draw`; returns the next y."""
    xh = max(3.0, min(size_cap / 3, rng.uniform(5, 20) * scale))   # x-height
    line_h = xh * rng.uniform(2.4, 3.2 + 2.0 * (1 - density))
    pen = max(1.0, xh * rng.uniform(0.1, 0.3))
    letter_w = xh * rng.uniform(0.55, 1.0)
    slant = rng.uniform(-0.15, 0.6)
    nib = rng.uniform(0, math.pi) if rng.random() < 0.5 else None
    n_lines = int(rng.integers(1, 4 + int(6 * density)))
    y = y0 + 2.0 * xh
    for _ in range(n_lines):
        if y > y_end + xh:
            break
        x_start = x0 + rng.uniform(0, 3 * letter_w)
        fill = 1.0 if rng.random() < 0.3 + 0.6 * density else rng.uniform(0.2, 1)
        _cursive_line(rng, draw, x_start, x0 + col_w * fill, y, xh, letter_w, slant, pen, nib)
        y += line_h
    return int(y - 1.2 * xh + line_h * rng.uniform(0.0, 0.8))


def _cursive_line(rng, draw, x_start, x_stop, base, xh, letter_w, slant, pen, nib) -> None:
    """A line of words, each a trochoid-like trajectory: the pen runs back on itself (a loop)
    where the loop factor exceeds 1; letter heights vary for ascenders and descenders."""
    per = 12                                                  # samples per letter
    if x_stop - x_start < letter_w:
        return
    n_max = int((x_stop - x_start) / letter_w) + 1
    lengths = rng.integers(1, 9, n_max)
    gaps = letter_w * rng.uniform(0.8, 2.2, n_max)
    starts = x_start + np.concatenate([[0.0], np.cumsum(lengths * letter_w + gaps)[:-1]])
    fits = starts + lengths * letter_w <= x_stop
    n_words = max(1, int(np.argmin(fits)) if not fits.all() else n_max)
    lengths, starts = lengths[:n_words], starts[:n_words]
    lengths[0] = max(1, min(lengths[0], int((x_stop - x_start) / letter_w)))
    n_letters = int(lengths.sum())
    # Letter kinds: n/m humps, u/w cups, e loops, l/h ascender loops, g/y descender loops.
    kind = rng.choice(5, n_letters, p=[0.33, 0.22, 0.2, 0.15, 0.1])
    amp = rng.uniform(0.8, 1.15, n_letters)
    amp = np.where(kind == 3, rng.uniform(1.9, 2.7, n_letters), amp)
    amp = np.where(kind == 4, -rng.uniform(1.1, 1.7, n_letters), amp)
    loop = np.where(kind >= 2, rng.uniform(1.1, 1.7, n_letters), rng.uniform(0.0, 0.6, n_letters))
    loop = np.where(kind >= 3, rng.uniform(1.6, 2.4, n_letters), loop)
    cup = (kind == 1).astype(float)
    counts = lengths * per + 1
    word = np.repeat(np.arange(n_words), counts)
    first_sample = np.cumsum(counts) - counts
    u = (np.arange(counts.sum()) - first_sample[word]) / per      # letters into the word
    g = (np.cumsum(lengths) - lengths)[word] + u                  # letters into the line
    mids = np.arange(n_letters) + 0.5
    amp_t, loop_t, cup_t = (np.interp(g, mids, v) for v in (amp, loop, cup))
    t = 2 * np.pi * u
    word_base = base + rng.normal(0, 0.02) * (starts - x_start) + rng.normal(0, 0.08 * xh, n_words)
    x = starts[word] + letter_w * (u - loop_t * np.sin(t) / (2 * np.pi))
    y = word_base[word] - xh * amp_t * (1 - (1 - 2 * cup_t) * np.cos(t)) / 2
    x += slant * (word_base[word] - y)
    knots = np.arange(0, n_letters + 4, 3.0)
    x += np.interp(g, knots, rng.normal(0, 0.05 * xh, len(knots)))
    y += np.interp(g, knots, rng.normal(0, 0.05 * xh, len(knots)))
    width = pen * (1 + 0.25 * np.sin(g * rng.uniform(0.5, 2) + rng.uniform(0, 6)))
    if nib is not None:  # a broad nib: thin along its angle, thick across it
        d = np.arctan2(np.gradient(y), np.gradient(x))
        width = width * (0.45 + 0.8 * np.abs(np.sin(d - nib)))
    w_int = np.maximum(1, np.rint(width)).astype(int)
    pts = np.stack([x, y], axis=1)
    change = np.flatnonzero((np.diff(w_int) != 0) | (np.diff(word) != 0)) + 1
    run_starts = np.concatenate([[0], change])
    run_ends = np.concatenate([change, [len(x)]])
    for s, e in zip(run_starts.tolist(), run_ends.tolist()):
        if e < len(x) and word[e] == word[s]:
            e += 1                                            # join onto the next run
        wv = int(w_int[s])
        draw.line(pts[s:e].ravel().tolist(), fill=255, width=wv, joint="curve")
        if wv > 2:   # round the joint between runs of different width
            r = (wv - 1) / 2
            draw.ellipse([pts[s, 0] - r, pts[s, 1] - r, pts[s, 0] + r, pts[s, 1] + r], fill=255)
    letter_word = np.repeat(np.arange(n_words), lengths)
    letter_in_word = np.arange(n_letters) - (np.cumsum(lengths) - lengths)[letter_word]
    letter_mid = first_sample[letter_word] + letter_in_word * per + per // 2
    for k in np.flatnonzero((kind == 0) & (rng.random(n_letters) < 0.2)).tolist():  # dots, bars
        cx = x[letter_mid[k]] + slant * 1.6 * xh
        cy = word_base[letter_word[k]] - 1.6 * xh
        r = max(1.0, pen * 0.7)
        if rng.random() < 0.5:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        else:
            draw.line([cx - letter_w * 0.6, cy + 0.3 * xh, cx + letter_w * 0.6, cy + 0.2 * xh],
                      fill=255, width=max(1, int(round(pen))))


def scribbles(rng, draw, width, height, scale) -> None:
    """A few smooth free curves: underlines, flourishes, signature-like strokes."""
    for _ in range(int(rng.integers(1, 4))):
        n = 80
        t = np.linspace(0, 1, n)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        span = rng.uniform(0.1, 0.5) * width
        x = cx + span * (t - 0.5)
        y = cy + np.zeros(n)
        for _k in range(3):
            f, p = rng.uniform(0.5, 6), rng.uniform(0, 2 * np.pi)
            x += rng.normal(0, 0.05) * span * np.sin(2 * np.pi * f * t + p)
            y += rng.normal(0, 0.08) * span * np.sin(2 * np.pi * f * t + p + 1)
        draw.line(np.stack([x, y], 1).ravel().tolist(), fill=255,
                  width=max(1, int(rng.uniform(1, 4) * scale)), joint="curve")
