"""Speed and memory of a config: train images/s, full-page inference megapixels/s, compile time.

Measures the real jitted train step (the one `train_and_evaluate` runs) on a fixed in-memory batch,
so the figures are the model's and the step's, not the input pipeline's; and full-page inference
through `binjax.inference` exactly as `evaluate`/`binarize` run it.
"""

from __future__ import annotations

import resource
import statistics
import time

import jax
import ml_collections
import numpy as np
from flax import nnx

from binjax import sharding, train


def peak_host_memory_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_device_memory_bytes() -> int | None:
    """Peak bytes in use on the first device, where the backend reports it (GPU/TPU), else None."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _flops(compiled) -> float | None:
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # not every backend implements cost analysis
        return None
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    return float(analysis.get("flops", 0.0)) or None


def train_throughput(config: ml_collections.ConfigDict, *, steps: int = 10, warmup: int = 2) -> dict:
    """Times `steps` train steps after `warmup` ones on one fixed batch of the config's shape."""
    mesh = sharding.make_mesh(config.mesh)
    jitted = train.make_steps(config, mesh)
    state = jitted.init()
    rng = np.random.default_rng(0)
    p, c, b = config.data.patch_size, config.data.channels, config.batch_size
    host = {
        "image": rng.integers(0, 256, (b, p, p, c), dtype=np.uint8),
        "mask": (rng.random((b, p, p, 1)) < 0.1).astype(np.uint8),
    }
    batch = sharding.global_batch(host, mesh)

    start = time.perf_counter()
    compiled = jitted.train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    flops = _flops(compiled)
    if flops is not None:  # XLA reports one partition's FLOPs for an SPMD program
        flops *= mesh.size

    for _ in range(warmup):
        state, _ = jitted.train_step(state, batch)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, health = jitted.train_step(state, batch)
        jax.block_until_ready(health)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {
        "devices": mesh.size,
        "batch_size": b,
        "patch_size": p,
        "compile_s": compile_s,
        "step_s": step_s,
        "train_images_per_s": b / step_s,
        "step_gflops": None if flops is None else flops / 1e9,
        "achieved_tflops_per_s": None if flops is None else flops / step_s / 1e12,
    }


def inference_throughput(
    config: ml_collections.ConfigDict,
    *,
    height: int,
    width: int,
    tile: int = 512,
    batch_size: int = 4,
    overlap: float = 0.5,
    repeats: int = 1,
) -> dict:
    """Full-page sliding-window inference of a (randomly initialised) model on a synthetic page."""
    from binjax import inference

    model = train.build_model(config, nnx.Rngs(config.seed))
    predict_fn = inference.make_predict_fn(model)
    rng = np.random.default_rng(0)
    page = rng.integers(0, 256, (height, width, config.data.channels), dtype=np.uint8)

    start = time.perf_counter()  # first call compiles; a small page is enough to trigger it
    inference.sliding_window_predict(predict_fn, page[:tile, :tile], tile=tile, overlap=overlap, batch_size=batch_size)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        inference.sliding_window_predict(predict_fn, page, tile=tile, overlap=overlap, batch_size=batch_size)
        times.append(time.perf_counter() - start)
    page_s = min(times)
    return {
        "page": f"{height}x{width}",
        "tile": tile,
        "overlap": overlap,
        "compile_s": compile_s,
        "page_s": page_s,
        "megapixels_per_s": height * width / 1e6 / page_s,
    }
