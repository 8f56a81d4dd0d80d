r"""Binarize a page with an exported binjax model, without binjax: needs only jax, numpy, pillow
(and flatbuffers, which jax.export's deserializer imports).

`python -m launch.export --formats=stablehlo` writes model.stablehlo and a copy of this script
into the export folder; copy both anywhere jax runs (CPU, or a CUDA GPU with jax[cuda12/13]):

  python run_stablehlo.py scan.png scan_bw.png
  python run_stablehlo.py scan.png scan_bw.png --model=export/model.stablehlo --probabilities=ink.npy
  python run_stablehlo.py scan.tif scan_bw.png --overlap=0 --inference_batch=8

The artifact maps uint8 tiles [b, t, t, C] (NHWC, pixels as read) to float32 ink probabilities
[b, t, t]; its tile side t and channels C are read from the file. The page is cut as binjax does
(tiles spread evenly with --overlap, 0.125 by default as in binjax; pages smaller than a tile mirrored out to
one), the probabilities blended with a Gaussian weight per tile (sigma = t / 8) and thresholded
(> --threshold): the same probabilities as `binjax-binarize` gives with the same model, tile and
overlap, to float rounding (README "Export a model" has the measured difference). The output is
a 1-bit PNG, ink black, with the input's resolution (dpi) kept. A model trained on
contrast-stretched or flattened pages (binjax's config.data.contrast='stretch' or 'flatten',
recorded in card.json beside the artifact) gets its pages prepared the same way unless --contrast
says otherwise; one trained with the page's paper estimate as an extra input channel
(config.data.context='paper', also in card.json) gets that channel.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import jax
import numpy as np
from PIL import Image

_MIN_WEIGHT = 1e-4  # binjax.inference: keeps every pixel's weight sum away from zero


def read_page(path: pathlib.Path, channels: int) -> tuple[np.ndarray, tuple | None]:
    """uint8 H x W x channels (transparency composited over white paper) and the file's dpi."""
    with Image.open(path) as image:
        dpi = image.info.get("dpi")
        if image.mode.startswith("I;16") or image.mode == "I":  # 16-bit grey: v / 257, as binjax
            grey = np.clip(np.rint(np.asarray(image, np.float64) / 257.0), 0, 255).astype(np.uint8)
            image = Image.fromarray(grey, "L")
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        page = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    return (page[:, :, None] if page.ndim == 2 else page), dpi


def stretch(page: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """binjax.contrast.stretch, repeated here because this script must not import binjax: the
    page's `low` and `high` percentile grey levels (all channels, from its histogram) to 0 and 255."""
    counts = np.cumsum(np.bincount(page.ravel(), minlength=256))
    lo = int(np.searchsorted(counts, counts[-1] * low / 100.0, side="left"))
    hi = int(np.searchsorted(counts, counts[-1] * high / 100.0, side="left"))
    if hi <= lo:
        return page
    levels = (np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)[page]


def _window_1d(values: np.ndarray, size: int, axis: int, reduce) -> np.ndarray:
    """scipy.ndimage's 1-d max / min / mean filters (mode 'nearest', window [i - size//2, i - size//2
    + size)), which this script cannot import: numpy's sliding windows over the edge-padded axis."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (size // 2, size - 1 - size // 2)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(values, pad, mode="edge"), size, axis=axis)
    return reduce(windows, axis=-1)


def _coarse_paper(channel: np.ndarray, window: int = 81, step: int = 4) -> np.ndarray:
    """binjax.contrast's paper estimate of a uint8 H x W channel on a grid `step` times coarser:
    the grey closing over `window` pixels, smoothed over the same square."""
    size = max(3, window // step)
    height, width = channel.shape
    padded = np.pad(channel, ((0, -height % step), (0, -width % step)), mode="edge")
    coarse = np.maximum.reduce([padded[i::step, j::step] for i in range(step) for j in range(step)])
    for reduce in (np.max, np.min):  # the closing: dilate the paper over the ink, then erode back
        coarse = _window_1d(_window_1d(coarse, size, 0, reduce), size, 1, reduce)
    return _window_1d(_window_1d(coarse.astype(np.float32), size, 0, np.mean), size, 1, np.mean)


def _full_size(coarse: np.ndarray, shape: tuple, step: int = 4) -> np.ndarray:
    return np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[:shape[0], :shape[1]]


def flatten(page: np.ndarray) -> np.ndarray:
    """binjax.contrast.flatten, repeated here because this script must not import binjax: each
    channel divided by its paper (_coarse_paper), then stretched."""
    flat = np.empty_like(page)
    for c in range(page.shape[-1]):
        channel = page[..., c]
        gain = _full_size(255.0 / np.maximum(_coarse_paper(channel), 1.0), channel.shape)
        flat[..., c] = np.minimum(channel * gain + 0.5, 255.0)
    return stretch(flat)


def paper_channel(page: np.ndarray) -> np.ndarray:
    """binjax.page_context.paper_channel: the uint8 H x W paper estimate of a uint8 H x W x C page's
    grey levels (ITU-R 601 luma, as Pillow's convert('L')), for a model that takes it as one more
    input channel after the page's."""
    if page.shape[-1] == 3:
        rgb = page.astype(np.uint32)
        grey = ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)
    else:
        grey = page[..., 0]
    paper = _full_size(_coarse_paper(grey), grey.shape)
    return np.clip(np.rint(paper), 0, 255).astype(np.uint8)


def model_preparation(model: pathlib.Path) -> dict:
    """How the model's pages are prepared, as card.json (written beside the artifact by binjax's
    export) records it: 'contrast' (none, stretch, flatten) and 'context' (none, paper)."""
    card = model.with_name("card.json")
    try:
        recorded = json.loads(card.read_text()).get("stablehlo", {})
        return {key: recorded.get(key, "none") for key in ("contrast", "context")}
    except (OSError, ValueError, AttributeError):
        # no card (an artifact copied alone), or not binjax's: pages as they are
        return {"contrast": "none", "context": "none"}


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Offsets of tiles covering [0, length), steps at most tile * (1 - overlap), spread evenly.
    binjax.inference.tile_starts, repeated here because this script must not import binjax;
    tests/test_portable_export.py holds the two to the same probabilities."""
    max_step = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / max_step) + 1
    if count == 1:
        return [0]
    step = (length - tile) / (count - 1)
    return [int(round(i * step)) for i in range(count)]


def gaussian_weights(tile: int) -> np.ndarray:
    axis = np.exp(-0.5 * ((np.arange(tile) - (tile - 1) / 2.0) / (tile / 8.0)) ** 2)
    weights = np.outer(axis, axis)
    return np.maximum(weights / weights.max(), _MIN_WEIGHT).astype(np.float32)


def ink_probability(exported, page: np.ndarray, *, overlap: float = 0.125, batch: int = 4) -> np.ndarray:
    """float32 H x W ink probability of a uint8 H x W x C page through the artifact, tile by tile."""
    _, tile, _, channels = exported.in_avals[0].shape
    height, width = page.shape[:2]
    padded = np.pad(page, ((0, max(0, tile - height)), (0, max(0, tile - width)), (0, 0)), mode="reflect")
    positions = [(y, x) for y in tile_starts(padded.shape[0], tile, overlap)
                 for x in tile_starts(padded.shape[1], tile, overlap)]
    weights = gaussian_weights(tile)
    total = np.zeros(padded.shape[:2], np.float32)
    weight_sum = np.zeros(padded.shape[:2], np.float32)
    for start in range(0, len(positions), batch):
        chunk = positions[start:start + batch]
        # the last batch padded to the same size: one compiled program for the whole page
        tiles = np.zeros((batch, tile, tile, channels), np.uint8)
        for i, (y, x) in enumerate(chunk):
            tiles[i] = padded[y:y + tile, x:x + tile]
        probs = np.asarray(exported.call(tiles))
        for i, (y, x) in enumerate(chunk):
            total[y:y + tile, x:x + tile] += weights * probs[i]
            weight_sum[y:y + tile, x:x + tile] += weights
    np.divide(total, weight_sum, out=total)
    return total[:height, :width]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("page", type=pathlib.Path, help="input image (PNG, TIFF, JPEG, ...)")
    parser.add_argument("out", type=pathlib.Path, help="output 1-bit PNG")
    parser.add_argument("--model", type=pathlib.Path,
                        default=pathlib.Path(__file__).with_name("model.stablehlo"),
                        help="the exported artifact (default: model.stablehlo beside this script)")
    parser.add_argument("--overlap", type=float, default=0.125, help="fraction of a tile shared by neighbours, [0, 1)")
    parser.add_argument("--inference_batch", type=int, default=4, help="tiles per call of the model")
    parser.add_argument("--threshold", type=float, default=0.5, help="ink where probability > this, (0, 1)")
    parser.add_argument("--probabilities", type=pathlib.Path, help="also save the float32 H x W probabilities (.npy)")
    parser.add_argument("--contrast", choices=("none", "stretch", "flatten"), default=None,
                        help="stretch: the page's 1st-99th percentile grey levels to the full range first; "
                             "flatten: each channel divided by the page's own paper, then stretched; "
                             "default: as the model was trained (card.json beside it), else none")
    args = parser.parse_args(argv)
    problems = [f"--overlap={args.overlap}: must be in [0, 1)" * (not 0.0 <= args.overlap < 1.0),
                f"--inference_batch={args.inference_batch}: must be >= 1" * (args.inference_batch < 1),
                f"--threshold={args.threshold}: must be in (0, 1)" * (not 0.0 < args.threshold < 1.0),
                f"{args.model}: no such file (--model)" * (not args.model.is_file()),
                f"{args.page}: no such file" * (not args.page.is_file())]
    for problem in filter(None, problems):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        exported = jax.export.deserialize(bytearray(args.model.read_bytes()))
    except Exception as e:  # noqa: BLE001 -- any decoding failure is the same news for the user
        print(f"error: {args.model}: not a jax.export artifact this jax {jax.__version__} reads ({e})",
              file=sys.stderr)
        return 2
    # A model that takes the page's paper estimate (binjax's config.data.context='paper') has one
    # channel more than the page it reads.
    preparation = model_preparation(args.model)
    context = preparation["context"]
    try:
        page, dpi = read_page(args.page, exported.in_avals[0].shape[3] - (context == "paper"))
    except OSError as e:
        print(f"error: {args.page}: not a readable image ({e})", file=sys.stderr)
        return 2
    prepare = {"stretch": stretch, "flatten": flatten}.get(args.contrast or preparation["contrast"])
    if prepare is not None:
        page = prepare(page)
    if context == "paper":
        page = np.concatenate([page, paper_channel(page)[..., None]], axis=-1)
    probability = ink_probability(exported, page, overlap=args.overlap, batch=args.inference_batch)
    if args.probabilities:
        np.save(args.probabilities, probability)
    # mode '1': True = white; ink (probability > threshold) is black
    Image.fromarray(probability <= args.threshold).save(args.out, **({"dpi": dpi} if dpi else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
