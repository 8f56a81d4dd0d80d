"""What a run tells people and programs: JSON lines, TensorBoard events, PNG sample grids.

Only process 0 writes (the caller checks); every writer is append-only so a resumed run keeps
extending the same files.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
from PIL import Image


class MetricWriter:
    """Writes scalars to `metrics.jsonl` (one JSON object per line) and TensorBoard events."""

    def __init__(self, workdir: str | pathlib.Path):
        from tensorboardX import SummaryWriter  # imported here: only process 0 needs it

        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.workdir / "metrics.jsonl", "a", buffering=1)
        self._tb = SummaryWriter(str(self.workdir / "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        scalars = {k: float(v) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), **scalars}) + "\n")
        for name, value in scalars.items():
            self._tb.add_scalar(name, value, int(step))

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """All records of a run's metrics.jsonl, in order ([] before the first one is written).

    A run killed mid-write can leave its last line cut short; that line is skipped.
    """
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _to_rgb_u8(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def sample_grid(images, probabilities, masks, *, gap: int = 4) -> np.ndarray:
    """Rows of input | predicted probability | ground truth (ink shown dark, as on paper)."""
    rows = []
    for image, prob, mask in zip(images, probabilities, masks):
        prob = 1.0 - np.asarray(prob, np.float32).squeeze()
        truth = 1.0 - np.asarray(mask, np.float32).squeeze()
        tiles = [_to_rgb_u8(image), _to_rgb_u8(prob), _to_rgb_u8(truth)]
        spacer = np.full((tiles[0].shape[0], gap, 3), 128, np.uint8)
        rows.append(np.concatenate([tiles[0], spacer, tiles[1], spacer, tiles[2]], axis=1))
    spacer = np.full((gap, rows[0].shape[1], 3), 128, np.uint8)
    grid = [part for row in rows for part in (row, spacer)][:-1]
    return np.concatenate(grid, axis=0)


def save_png(path: str | pathlib.Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)
