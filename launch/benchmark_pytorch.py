r"""The PyTorch reference for launch/benchmark.py: the same networks, step and tiles, timed in PyTorch.

binjax's speed targets are set against PyTorch on the same CPU. This script runs PyTorch ports of
binjax's two models (launch/pytorch_models.py: same layers, same padding, parameter counts checked)
  --model=unet  the U-Net of configs/default.py: depth 4, widths 16-256, 1,942,289 parameters
  --model=lite  LiteUNet, configs/lite.py and the released default model: inverted residuals,
                widths 16-64, 182,107 parameters (its outputs match binjax's given binjax's
                weights: tests/test_pytorch_port.py)
and times what launch/benchmark.py times for binjax:
  train      one AdamW step on BCE + soft Dice, batch 8 x 256^2 grey patches (float32)
  inference  eval-mode forward passes over 512^2 tiles, 4 per batch, no overlap: megapixels/s

It does not import binjax or JAX and needs only torch and numpy, installed apart from binjax
(torch is no dependency of binjax):

  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install numpy torch \
      --index-url https://download.pytorch.org/whl/cpu   # the CPU build; plain `torch` pulls CUDA
  /tmp/torchenv/bin/python launch/benchmark_pytorch.py --threads=2 --json_out=/tmp/bench.json
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 /tmp/torchenv/bin/python launch/benchmark_pytorch.py \
      --threads=2 --channels_last --what=train   # huge pages, as binjax's launchers use

Prints a markdown row per benchmark and appends JSON lines in launch/benchmark.py's format.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--model", choices=("unet", "lite"), default="unet",
                        help="unet: configs/default.py's U-Net; lite: configs/lite.py's LiteUNet")
    parser.add_argument("--what", default="train,inference", help="train, inference or both")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--patch_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed train steps after 2 warm-up steps")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--inference_batch", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference batches")
    parser.add_argument("--channels_last", action="store_true", help="NHWC memory format (oneDNN)")
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


def main(args: argparse.Namespace):
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = pytorch_models.build(args.model)
    num_params = sum(p.numel() for p in model.parameters())
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    base = {"framework": f"pytorch {torch.__version__}", "model": args.model, "threads": torch.get_num_threads(),
            "parameters": num_params, "channels_last": args.channels_last,
            # binjax's launchers run with glibc's huge pages (launch/common.py); compare like with like
            "huge_pages": "glibc.malloc.hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "")}
    rows = []
    what = args.what.split(",")
    if "train" in what:
        rows.append(dict(base, **time_train(model, args.batch_size, args.patch_size, args.steps, args.channels_last)))
    if "inference" in what:
        rows.append(dict(base, **time_inference(model, args.tile, args.inference_batch, args.repeats,
                                                args.channels_last)))
    for row in rows:
        print(" | ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if args.json_out:
        with open(args.json_out, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(ARGS)
