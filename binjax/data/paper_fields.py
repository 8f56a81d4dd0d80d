"""Smooth random fields a synthetic page is aged with: noise, uneven light, stains.

Shared by binjax/data/synthetic.py (the plain generator) and binjax/data/clutter.py (the dark
things that are not ink). Each draws from the generator it is given, so a page stays a pure
function of its seed. Worker-safe: numpy and Pillow only.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def smooth_noise(rng, height: int, width: int, cell: float) -> np.ndarray:
    """float32 HxW smooth noise, roughly unit variance, features about `cell` pixels wide."""
    gh = max(2, math.ceil(height / cell) + 1)
    gw = max(2, math.ceil(width / cell) + 1)
    low = rng.standard_normal((gh, gw), dtype=np.float32)
    up = np.asarray(Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC))
    return up * np.float32(1.23)  # interpolating between the grid points shrinks the spread


def normal_noise(rng, shape: tuple[int, ...]) -> np.ndarray:
    """Approximately standard-normal float32 noise: the Irwin-Hall sum of three uniform bytes.

    Several times cheaper than Generator.standard_normal, and pixel noise needs no exact tails.
    """
    n = math.prod(shape)
    b = np.frombuffer(rng.bytes(3 * n), np.uint8).reshape(3, n)
    s = b[0].astype(np.float32)
    s += b[1]
    s += b[2]
    s -= np.float32(382.5)
    s *= np.float32(1 / 128.0)   # each byte has standard deviation 73.9; three: 128.0
    return s.reshape(shape)


def upsample(low: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(low, np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR))


def stains(rng, h, w) -> tuple[np.ndarray, np.ndarray]:
    """Stain darkness in [0, 1] (float32 HxW, made at quarter size) and the stains' RGB tint."""
    lh, lw = max(2, h // 4), max(2, w // 4)
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    edge = smooth_noise(rng, lh, lw, rng.uniform(4, 12))
    clear = np.ones((lh, lw), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        cy, cx = rng.uniform(-0.1, 1.1) * lh, rng.uniform(-0.1, 1.1) * lw
        ry = math.exp(rng.uniform(math.log(0.03), math.log(0.3))) * max(lh, lw)
        rx = ry * rng.uniform(0.5, 2.0)
        t = rng.uniform(0, math.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * math.cos(t) + dy * math.sin(t)) / rx
        v = (-dx * math.sin(t) + dy * math.cos(t)) / ry
        d = np.sqrt(u * u + v * v) + 0.15 * edge
        sharp = rng.random() < 0.35      # water stains have crisp edges; grease and foxing don't
        soft = rng.uniform(0.08, 0.3) if sharp else rng.uniform(0.5, 1.0)
        blob = np.clip((1 - d) / soft, 0, 1)
        if sharp and rng.random() < 0.5:   # a coffee-ring tide mark: darker rim
            blob = np.clip(blob * 0.5 + np.exp(-((d - 1) / 0.05) ** 2), 0, 1)
        clear *= 1 - rng.uniform(0.2, 0.75) * blob
    tint = np.array([1.0, rng.uniform(0.75, 0.95), rng.uniform(0.45, 0.85)])  # brownish
    tint *= rng.uniform(0.45, 0.9)
    return upsample(1 - clear, h, w), tint


def illumination(rng, h, w) -> np.ndarray:
    """Multiplicative light field, float32 HxW in about [0.3, 1.05]."""
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    t = rng.uniform(0, 2 * math.pi)
    grad = math.cos(t) * x + math.sin(t) * y     # Python floats keep the arrays float32
    grad = (grad - grad.min()) / max(float(grad.max() - grad.min()), 1e-6)
    light = 1 - rng.uniform(0.0, 0.4) * grad
    if rng.random() < 0.5:   # vignetting around an off-centre point
        cy, cx = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        light = light - rng.uniform(0.1, 0.4) * ((y - cy) ** 2 + (x - cx) ** 2)
    if rng.random() < 0.3:   # a book gutter's shadow along one edge
        dist = [x, 1 - x, y, 1 - y][int(rng.integers(4))]
        light = light * (1 - rng.uniform(0.3, 0.7) * np.exp(-dist / rng.uniform(0.03, 0.15)))
    light = light + 0.06 * rng.uniform(0, 1) * smooth_noise(rng, h, w, max(h, w) / 3)
    return np.clip(light, 0.25, 1.05).astype(np.float32)
