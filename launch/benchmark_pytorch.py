r"""The PyTorch reference for launch/benchmark.py: the same networks, step and page job, timed in PyTorch.

binjax's speed targets are set against PyTorch on the same CPU. This script runs PyTorch ports of
binjax's two models (launch/pytorch_models.py: same layers, same padding, parameter counts checked)
  --model=unet  the U-Net of configs/default.py: depth 4, widths 16-256, 1,942,289 parameters
  --model=lite  LiteUNet, configs/lite.py and the released default model: inverted residuals,
                widths 16-64, 182,107 parameters (its outputs match binjax's given binjax's
                weights: tests/test_pytorch_port.py)
and times what launch/benchmark.py times for binjax:
  train      one AdamW step on BCE + soft Dice, batch 8 x 256^2 grey patches (float32)
  inference  eval-mode forward passes over 512^2 tiles, 4 per batch, no overlap: megapixels/s
  page       a whole page (default an A4 page at 300 dpi, 3508 x 2480 random grey uint8, as
             launch.benchmark --what=inference --page=3508x2480 makes) through binjax's sliding
             window (binjax/inference.py, ported here in numpy): 512^2 tiles at each --overlap
             with nnU-Net's evenly spread starts, 4 tiles a batch (the last one padded),
             sigmoid, Gaussian blending (sigma = tile / 8); seconds and CPU-seconds per page

It does not import binjax or JAX and needs only torch and numpy, installed apart from binjax
(torch is no dependency of binjax):

  python3.12 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install numpy torch==2.13.0
  /tmp/torchenv/bin/python launch/benchmark_pytorch.py --threads=2 --json_out=/tmp/bench.json
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 /tmp/torchenv/bin/python launch/benchmark_pytorch.py \
      --threads=2 --channels_last --what=train   # huge pages, as binjax's launchers use
  /tmp/torchenv/bin/python launch/benchmark_pytorch.py --threads=2 --model=lite --what=page \
      --overlap=0.5,0.25 --channels_last --freezing   # LiteUNet, A4 page, compiled and frozen

(Where pip offers no CPU build of torch for this Python, `--index-url
https://download.pytorch.org/whl/cpu` gets one; a plain `torch` from PyPI brings CUDA's libraries.)
Modes: NCHW by default; --channels_last (NHWC, oneDNN's preferred layout on CPU); --compile
(torch.compile of the model, compile time reported apart as compile_s); --freezing (compile with
inductor's freezing: BatchNorm folded into the convs, weights prepacked; the fastest for LiteUNet
inference here). Prints a row per benchmark and appends JSON lines in launch/benchmark.py's
format, each with the 1-minute load. LiteUNet's A4 page against binjax's, measured side by side,
with the commands: docs/benchmarks/lite_page_vs_pytorch.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--model", choices=("unet", "lite"), default="unet",
                        help="unet: configs/default.py's U-Net; lite: configs/lite.py's LiteUNet")
    parser.add_argument("--what", default="train,inference", help="train, inference, page, comma-separated")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--patch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed train steps after 2 warm-up steps")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--inference_batch", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference batches")
    parser.add_argument("--page", default="3508x2480", help="--what=page: page HxW (default A4 at 300 dpi)")
    parser.add_argument("--overlap", default="0.5",
                        help="--what=page: tile overlaps, comma-separated, a row each (binjax's default: 0.125)")
    parser.add_argument("--page_repeats", type=int, default=1,
                        help="--what=page: timed pages per overlap after a warm-up batch; the fastest counts")
    parser.add_argument("--channels_last", action="store_true", help="NHWC memory format (oneDNN)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (inductor); the first call's time is reported as compile_s")
    parser.add_argument("--freezing", action="store_true",
                        help="with --compile (implied): inductor's freezing, which folds BatchNorm into the "
                        "convs and prepacks their weights for oneDNN (inference only; PyTorch's advice for CPU)")
    parser.add_argument("--json_out", default=None, help="append results as JSON lines here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()  # before torch is imported: --help works where torch is not installed

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    raise SystemExit("error: launch/benchmark_pytorch.py needs PyTorch, which binjax does not install: "
                     "run it with a Python that has torch (see its --help)") from None

try:  # python launch/benchmark_pytorch.py puts launch/ itself on sys.path; python -m, the checkout
    from launch import pytorch_models
except ImportError:
    import pytorch_models


def bce_dice(logits, targets):
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    probs = torch.sigmoid(logits)
    dice = 1 - (2 * (probs * targets).sum() + 1) / (probs.sum() + targets.sum() + 1)
    return bce + dice


def time_train(model, batch: int, patch: int, steps: int, channels_last: bool) -> dict:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((batch, 1, patch, patch), dtype=np.float32))
    targets = torch.from_numpy((rng.random((batch, 1, patch, patch)) < 0.1).astype(np.float32))
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = bce_dice(model(images), targets)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"bench": "train", "batch_size": batch, "patch_size": patch, "step_s": step_s,
            "train_images_per_s": batch / step_s}


@torch.no_grad()
def time_inference(model, tile: int, batch: int, repeats: int, channels_last: bool) -> dict:
    model.eval()
    tiles = torch.rand(batch, 1, tile, tile)
    if channels_last:
        tiles = tiles.contiguous(memory_format=torch.channels_last)
    torch.sigmoid(model(tiles))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.sigmoid(model(tiles))
        times.append(time.perf_counter() - start)
    batch_s = statistics.median(times)
    return {"bench": "inference", "tile": tile, "overlap": 0.0, "batch_size": batch,
            "megapixels_per_s": batch * tile * tile / 1e6 / batch_s}


# --------------------------------------------------- binjax's sliding window (binjax/inference.py)
# Written again in numpy so that this script needs no binjax; tests/test_pytorch_port.py checks
# these against binjax.inference.

def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Evenly spread starts, step at most tile * (1 - overlap), the last tile ending at `length`."""
    count = math.ceil((length - tile) / max(1, int(tile * (1.0 - overlap)))) + 1
    step = (length - tile) / max(count - 1, 1)
    return [int(round(i * step)) for i in range(count)]


def gaussian_importance_map(tile: int) -> np.ndarray:
    """float32 [tile, tile]: a Gaussian of sigma tile / 8 on the tile's centre, max 1, floor 1e-4."""
    axis = np.exp(-0.5 * ((np.arange(tile) - (tile - 1) / 2.0) / (tile / 8)) ** 2)
    weights = np.outer(axis, axis)
    return np.maximum(weights / weights.max(), 1e-4).astype(np.float32)


def make_forward(model, channels_last: bool):
    """float32 [B,C,t,t] numpy in [0, 1] -> probabilities float32 [B,t,t], eval mode, no autograd."""
    model.eval()

    @torch.inference_mode()
    def forward(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.sigmoid(model(x))[:, 0].numpy()

    return forward


def sliding_window_predict(forward, image: np.ndarray, *, tile: int = 512, overlap: float = 0.5,
                           batch_size: int = 4, timings: dict | None = None) -> np.ndarray:
    """Probabilities float32 H x W of a uint8 H x W x C page, as binjax.inference does it (without
    its flip TTA); `timings`, when given, gets the seconds spent in `forward` as 'model_s'."""
    height, width, channels = image.shape
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    weights = gaussian_importance_map(tile)
    accumulated = np.zeros(image.shape[:2], np.float32)
    weight_sum = np.zeros(image.shape[:2], np.float32)
    positions = [(y, x) for y in tile_starts(image.shape[0], tile, overlap)
                 for x in tile_starts(image.shape[1], tile, overlap)]
    model_s = 0.0
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        batch = np.zeros((batch_size, channels, tile, tile), np.float32)  # the last batch padded, as binjax's
        for i, (y, x) in enumerate(chunk):
            np.divide(image[y:y + tile, x:x + tile].transpose(2, 0, 1), np.float32(255.0), out=batch[i],
                      dtype=np.float32)
        begin = time.perf_counter()
        probs = forward(batch)
        model_s += time.perf_counter() - begin
        for i, (y, x) in enumerate(chunk):
            accumulated[y:y + tile, x:x + tile] += weights * probs[i]
            weight_sum[y:y + tile, x:x + tile] += weights
    if timings is not None:
        timings["model_s"] = model_s
    np.divide(accumulated, weight_sum, out=accumulated)
    return accumulated[:height, :width]


def time_page(forward, height: int, width: int, *, tile: int, overlap: float, batch_size: int,
              repeats: int) -> dict:
    """The page job: a random grey uint8 page (binjax.benchmark.inference_throughput's) through the
    sliding window; the fastest of `repeats` pages, its wall and CPU seconds."""
    page = np.random.default_rng(0).integers(0, 256, (height, width, 1), dtype=np.uint8)
    runs = []
    for _ in range(repeats):
        timings = {}
        wall, cpu = time.perf_counter(), time.process_time()
        sliding_window_predict(forward, page, tile=tile, overlap=overlap, batch_size=batch_size, timings=timings)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu, timings["model_s"]))
    page_s, page_cpu_s, model_s = min(runs)
    tiles = len(tile_starts(max(height, tile), tile, overlap)) * len(tile_starts(max(width, tile), tile, overlap))
    return {"bench": "page", "page": f"{height}x{width}", "tile": tile, "overlap": overlap,
            "batch_size": batch_size, "tiles": tiles, "page_s": page_s, "page_cpu_s": page_cpu_s,
            "model_s": model_s, "megapixels_per_s": height * width / 1e6 / page_s,
            "page_s_all": [round(run[0], 3) for run in runs]}


def main(args: argparse.Namespace):
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.freezing:
        import torch._inductor.config as inductor_config  # noqa: PLC0415  (only when asked)

        inductor_config.freezing = True  # read when the compiled model first runs
        args.compile = True
    torch.manual_seed(0)
    model = pytorch_models.build(args.model)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    base = {"framework": f"pytorch {torch.__version__}", "model": args.model, "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in model.parameters()), "channels_last": args.channels_last,
            "compile": args.compile, "freezing": args.freezing,
            # binjax's launchers run with glibc's huge pages (launch/common.py); compare like with like
            "huge_pages": "glibc.malloc.hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "")}
    what = args.what.split(",")
    unknown = sorted(set(what) - {"train", "inference", "page"})
    if unknown:
        raise SystemExit(f"--what={','.join(unknown)}: choose among train, inference, page")
    compiled = torch.compile(model) if args.compile else model
    rows = []
    if "train" in what:
        rows.append(dict(base, **time_train(compiled, args.batch_size, args.patch_size, args.steps,
                                            args.channels_last)))
    if "inference" in what:
        rows.append(dict(base, **time_inference(compiled, args.tile, args.inference_batch, args.repeats,
                                                args.channels_last)))
    if "page" in what:
        height, width = (int(v) for v in args.page.lower().split("x"))
        forward = make_forward(compiled, args.channels_last)
        start = time.perf_counter()  # one batch first: oneDNN's primitives, or torch.compile's compile
        forward(np.zeros((args.inference_batch, 1, args.tile, args.tile), np.float32))
        warm_up = {("compile_s" if args.compile else "first_batch_s"): time.perf_counter() - start}
        for overlap in (float(v) for v in args.overlap.split(",")):
            rows.append(dict(base, **time_page(forward, height, width, tile=args.tile, overlap=overlap,
                                               batch_size=args.inference_batch, repeats=args.page_repeats),
                             **warm_up))
    for row in rows:
        row["load_1min"] = os.getloadavg()[0]
        print(" | ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.json_out:
        with open(args.json_out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(ARGS)
