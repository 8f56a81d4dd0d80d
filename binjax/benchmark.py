"""Speed and memory of a config: train images/s, full-page inference megapixels/s, compile time.

Measures the real jitted train step (the one `train_and_evaluate` runs) on a fixed in-memory batch,
so the figures are the model's and the step's, not the input pipeline's; full-page inference
through `binjax.inference` exactly as `evaluate`/`binarize` run it; and whole documents file to
file (`document_throughput`: a generated scanned PDF of A4 pages through binarize to a G4 PDF).
"""

from __future__ import annotations

import pathlib
import resource
import statistics
import time

import jax
import ml_collections
import numpy as np
from flax import nnx

from binjax import cpu_kernels, page_context, sharding, train
from binjax.binarizers import DEFAULT_OVERLAP


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
    p, c, b = config.data.patch_size, page_context.model_channels(config.data), config.batch_size
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
    overlap: float = DEFAULT_OVERLAP,
    repeats: int = 1,
) -> dict:
    """Full-page sliding-window inference of a (randomly initialised) model on a synthetic page."""
    from binjax import inference

    model = train.build_model(config, nnx.Rngs(config.seed))
    # As binjax.binarizers.ModelBinarizer runs it: tiles of a batch spread over all local devices.
    predict_fn = inference.make_predict_fn(model, devices=jax.local_devices())
    rng = np.random.default_rng(0)
    page = rng.integers(0, 256, (height, width, page_context.model_channels(config.data)), dtype=np.uint8)

    start = time.perf_counter()  # first call compiles; a small page is enough to trigger it
    inference.sliding_window_predict(predict_fn, page[:tile, :tile], tile=tile, overlap=overlap, batch_size=batch_size)
    compile_s = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        inference.sliding_window_predict(predict_fn, page, tile=tile, overlap=overlap, batch_size=batch_size)
        runs.append((time.perf_counter() - start, time.process_time() - cpu_start))
    # CPU-seconds of every thread of this process: on a shared machine a fairer measure of the
    # work than wall time, which grows with whatever else runs (launch/benchmark_pytorch.py has both).
    page_s, page_cpu_s = min(runs)
    return {
        "page": f"{height}x{width}",
        "tile": tile,
        "overlap": overlap,
        "compile_s": compile_s,
        "page_s": page_s,
        "page_cpu_s": page_cpu_s,
        "megapixels_per_s": height * width / 1e6 / page_s,
    }


# ------------------------------------------------------------------------------- documents

A4_300_DPI = (3508, 2480)  # an A4 page scanned at 300 dpi: 8.7 megapixels


def make_scanned_pdf(path, pages: int, *, height: int = A4_300_DPI[0], width: int = A4_300_DPI[1],
                     dpi: int = 300, quality: int = 90) -> pathlib.Path:
    """A PDF as a scanner writes it: one grey JPEG page image per page (binjax.data.synthetic
    documents: print, handwriting, stains, bleed-through) at ``dpi``."""
    import io  # noqa: PLC0415

    import img2pdf  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from binjax.data import synthetic  # noqa: PLC0415

    streams = []
    for seed in range(pages):  # a few MB of JPEG per page at most: the pages are never all decoded
        grey = synthetic.render_page(seed, height, width, channels=1)["image"][..., 0]
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format="JPEG", quality=quality, dpi=(dpi, dpi))
        streams.append(buffer.getvalue())
    path = pathlib.Path(path)
    path.write_bytes(img2pdf.convert(streams))
    return path


def document_throughput(binarizer, pdf_path, out_dir, *, extension: str = ".pdf") -> dict:
    """End to end, file to file, as launch/binarize.py runs it: render each page of the PDF,
    binarize it (a model with its per-page quality estimate, as binarize computes it for the
    manifest), write one G4 PDF (or TIFF). The model is compiled first on one tile (the cost
    of a run's first page, reported as compile_s); reading alone is timed too (render_s)."""
    from binjax import binarize, documents, manifest, quality  # noqa: PLC0415

    pdf_path, out_dir = pathlib.Path(pdf_path), pathlib.Path(out_dir)
    jobs, _ = binarize.plan_outputs([pdf_path], out_dir=out_dir, extension=extension)
    (job,) = jobs
    start = time.perf_counter()
    with documents.open_document(pdf_path, binarizer.channels) as document:
        height, width = document.page(0)[0].shape[:2]
        for index in range(1, job.pages):
            document.page(index)
    render_s = (time.perf_counter() - start) / job.pages

    start = time.perf_counter()
    tile = getattr(binarizer, "options", {}).get("tile", 64)
    binarizer(np.full((tile, tile, binarizer.channels), 255, np.uint8))  # compiles a model's predictor
    compile_s = time.perf_counter() - start

    start, cpu_start = time.perf_counter(), time.process_time()
    # As the launcher runs a model: its quality estimate of each page comes from the same pass.
    page_fn = quality.PageReport(binarizer) if quality.has_probability(binarizer) else None
    with manifest.Manifest(out_dir / "manifest.csv") as rows:
        report = binarize.binarize_files(binarizer, jobs, progress=False, manifest=rows, page_fn=page_fn)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if report.skipped:
        raise RuntimeError(f"document benchmark: {report.skipped[0]}")
    page_s = seconds / job.pages
    return {
        "binarizer": binarizer.name,
        "pages": job.pages,
        "page": f"{height}x{width}",
        "output": extension.lstrip("."),
        "devices": getattr(binarizer, "num_devices", 1),
        "compile_s": compile_s,
        "render_s_per_page": render_s,
        "s_per_page": page_s,
        # CPU-seconds of this process per page (all its threads): on a machine shared with other
        # work, wall time grows with the load but this does not; on an idle n-core machine the
        # wall time is at least cpu_s_per_page / n.
        "cpu_s_per_page": cpu_seconds / job.pages,
        "megapixels_per_s": height * width / 1e6 / page_s,
        "output_kb_per_page": job.outputs[0].stat().st_size / 1024 / job.pages,
    }
