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

from binjax import cpu_kernels, sharding, train


def peak_host_memory_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_device_memory_bytes() -> int | None:
    """Peak bytes in use on the first device, where the backend reports it (GPU/TPU), else None."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


# Dense peak FLOP/s per chip for MFU, by (device_kind prefix, dtype): vendors' datasheet figures
# without sparsity. float32 on GPUs is the non-tensor-core peak, as XLA runs f32 convs by default;
# 'tf32' is the tensor cores' float32 peak, for the MFU of a float32 run XLA sends to them.
PEAK_FLOPS = {
    ("NVIDIA H100", "bfloat16"): 989e12, ("NVIDIA H100", "float32"): 67e12, ("NVIDIA H100", "tf32"): 494e12,
    ("NVIDIA H200", "bfloat16"): 989e12, ("NVIDIA H200", "float32"): 67e12, ("NVIDIA H200", "tf32"): 494e12,
    ("NVIDIA A100", "bfloat16"): 312e12, ("NVIDIA A100", "float32"): 19.5e12,
    ("NVIDIA L4", "bfloat16"): 121e12, ("NVIDIA L4", "float32"): 30e12,
    ("TPU v4", "bfloat16"): 275e12, ("TPU v5 lite", "bfloat16"): 197e12,
    ("TPU v5p", "bfloat16"): 459e12, ("TPU v6 lite", "bfloat16"): 918e12,
}


def peak_flops_per_s(device_kind: str, dtype: str) -> float | None:
    """The chip's dense peak for `dtype`, or None where unknown (CPUs: no meaningful single peak)."""
    for (prefix, peak_dtype), peak in PEAK_FLOPS.items():
        if device_kind.startswith(prefix) and dtype == peak_dtype:
            return peak
    return None


def _memory(compiled) -> dict:
    """XLA's own accounting of the compiled step's device memory (per device), in GiB."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return {}
    if stats is None:
        return {}
    return {
        "temp_gib": stats.temp_size_in_bytes / 2**30,
        "argument_gib": stats.argument_size_in_bytes / 2**30,
    }


def _flops(compiled) -> float | None:
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # not every backend implements cost analysis
        return None
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else {}
    # XLA counts custom calls as 0 FLOPs: add binjax's CPU kernels' own count
    return float(analysis.get("flops", 0.0)) + cpu_kernels.flops_in(compiled.as_text()) or None


def train_throughput(config: ml_collections.ConfigDict, *, steps: int = 10, warmup: int = 2,
                     devices=None) -> dict:
    """Times `steps` train steps after `warmup` ones on one fixed batch of the config's shape.

    devices: the devices to build the mesh over (default all); a scaling table passes subsets.
    """
    mesh = sharding.make_mesh(config.mesh, devices=devices)
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
    device_kind = mesh.devices.flat[0].device_kind
    peak = peak_flops_per_s(device_kind, config.compute_dtype)
    achieved = None if flops is None else flops / step_s
    return {
        "devices": mesh.size,
        "device_kind": device_kind,
        "batch_size": b,
        "patch_size": p,
        "compile_s": compile_s,
        "step_s": step_s,
        "train_images_per_s": b / step_s,
        "step_gflops": None if flops is None else flops / 1e9,
        "cpu_kernels": device_kind == "cpu" and cpu_kernels.available(),
        "achieved_tflops_per_s": None if achieved is None else achieved / 1e12,
        # Model FLOPs utilisation: XLA's count of the step's FLOPs (forward, backward and the
        # optimizer; remat's recomputation counts too) over the chips' peak.
        "mfu": None if achieved is None or peak is None else achieved / (peak * mesh.size),
        **_memory(compiled),
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
    # As binjax.binarizers.ModelBinarizer runs it: tiles of a batch spread over all local devices.
    predict_fn = inference.make_predict_fn(model, devices=jax.local_devices())
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
