r"""Speed and memory report for a config: train images/s, full-page inference MP/s, compile, memory.

Train rows report images/s, step time, compile time, XLA's FLOP count of the step, achieved
FLOP/s and, on GPUs/TPUs with a known peak, MFU; inference rows megapixels/s of full-page tiled
inference, and its seconds and CPU-seconds per page. Document rows (--what=document, no --config
needed) time the job binarize runs, end to end from file to file: a generated scanned PDF of A4
pages at 300 dpi (2480 x 3508) is rendered, binarized by the released default model (or
--checkpoint) and by each of --methods, and written as one CCITT G4 PDF (--document_format=tif:
TIFF); they report seconds per page and megapixels/s. Each run prints a markdown table; --json_out appends one JSON object per line,
--markdown_out writes the table. launch/benchmark_pytorch.py times the same networks in PyTorch
(U-Net and LiteUNet; --what=page there is this script's --what=inference --page=HxW).
Figures depend on the machine and its load (each row records the 1-minute load average): compare
rows of one run.

  python -m launch.benchmark --config=configs/default.py --config.data.patch_size=256 --what=train
  python -m launch.benchmark --config=configs/lite.py --what=inference --page=6000x8000
  python -m launch.benchmark --config=configs/default.py --what=train --scaling=1,2 \
      --json_out=/tmp/binjax/bench.jsonl
  python -m launch.benchmark --what=document --document_pages=4 --methods=sauvola  # file to file
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

from absl import app, flags  # noqa: E402
from binjax.binarizers import DEFAULT_OVERLAP  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file to benchmark.", lock_config=True)
_WHAT = flags.DEFINE_list(
    "what", ["train", "inference"], "Which benchmarks: train, inference (both need --config), document.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed train steps (after 2 warm-up steps).")
_PAGE = flags.DEFINE_string("page", "2048x2048", "Page HxW for full-page inference.")
_TILE = flags.DEFINE_integer("tile", 512, "Inference tile size.")
_OVERLAP = flags.DEFINE_float("overlap", DEFAULT_OVERLAP, "Inference tile overlap (default: binjax's for every model; "
                               "0.5 = nnU-Net's; 0 = raw tiles).")
_INFER_BATCH = flags.DEFINE_integer("inference_batch", 4, "Tiles per inference call.")
_SCALING = flags.DEFINE_list(
    "scaling", [], "Train on the first N devices for each N listed (e.g. 1,2,4,8): a scaling table. "
    "Default: all devices once. The global batch stays config.batch_size.")
_DOCUMENT_PAGES = flags.DEFINE_integer("document_pages", 4, "--what=document: A4 pages in the generated PDF.")
_DOCUMENT_FORMAT = flags.DEFINE_enum("document_format", "pdf", ["pdf", "tif"], "--what=document: the output format.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "--what=document: the model (a released name, export folder or workdir); "
    "default: the released default model, as binarize uses.")
_METHODS = flags.DEFINE_list(
    "methods", ["sauvola"], "--what=document: classic methods timed beside the model, comma-separated.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Append results as JSON lines to this file.")
_MARKDOWN_OUT = flags.DEFINE_string("markdown_out", None, "Write the markdown table to this file.")


def _markdown(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def _document_rows(base: dict) -> list[dict]:
    """The binarize job, file to file, for the default model (or --checkpoint) and each method."""
    from binjax import benchmark, binarizers

    options = dict(tile=_TILE.value, overlap=_OVERLAP.value, batch_size=_INFER_BATCH.value)
    models = binarizers.make_binarizers([_CHECKPOINT.value] if _CHECKPOINT.value else [], [], **options)
    classic = binarizers.make_binarizers([], _METHODS.value) if _METHODS.value else {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="binjax-document-bench-") as folder:
        source = benchmark.make_scanned_pdf(os.path.join(folder, "scans.pdf"), _DOCUMENT_PAGES.value)
        for name, binarizer in {**models, **classic}.items():
            row = benchmark.document_throughput(binarizer, source, os.path.join(folder, name),
                                                extension=f".{_DOCUMENT_FORMAT.value}")
            settings = {"tile": _TILE.value, "overlap": _OVERLAP.value} if name in models else {}
            rows.append(dict(base, bench="document", **row, **settings, load_1min=os.getloadavg()[0]))
    return rows


def main(argv):
    del argv
    common.initialize_runtime()
    import jax

    from binjax import benchmark
    from binjax.models import convolution

    unknown = sorted(set(_WHAT.value) - {"train", "inference", "document"})
    if unknown:
        raise app.UsageError(f"--what={','.join(unknown)}: choose among train, inference, document")
    if "document" in _WHAT.value and _DOCUMENT_PAGES.value < 1:
        raise app.UsageError(f"--document_pages={_DOCUMENT_PAGES.value}: give at least one page")
    config = _CONFIG.value
    if config is None and {"train", "inference"} & set(_WHAT.value):
        raise app.UsageError("--what=train and --what=inference need --config=configs/<name>.py")
    base = {
        **({"model": config.model.name} if config is not None else {}),
        "platform": jax.devices()[0].device_kind,
        **({"compute_dtype": config.compute_dtype} if config is not None else {}),
        "huge_pages": common.huge_pages_requested(),
        "winograd": convolution.winograd_enabled(),
    }
    rows = []
    if "train" in _WHAT.value:
        counts = [int(n) for n in _SCALING.value] or [jax.device_count()]
        for count in counts:
            if count > jax.device_count():
                raise ValueError(f"--scaling={count}: only {jax.device_count()} devices (on CPU see --host_devices)")
            rows.append(dict(base, bench="train", **benchmark.train_throughput(
                config, steps=_STEPS.value, devices=jax.devices()[:count])))
    if "inference" in _WHAT.value:
        height, width = (int(v) for v in _PAGE.value.lower().split("x"))
        rows.append(
            dict(
                base,
                bench="inference",
                **benchmark.inference_throughput(
                    config, height=height, width=width, tile=_TILE.value,
                    batch_size=_INFER_BATCH.value, overlap=_OVERLAP.value,
                ),
            )
        )
    if "document" in _WHAT.value:
        rows += _document_rows(base)
    for row in rows:
        row.setdefault("load_1min", os.getloadavg()[0])
        row["peak_host_memory_gib"] = benchmark.peak_host_memory_bytes() / 2**30
        device_peak = benchmark.peak_device_memory_bytes()
        if device_peak is not None:
            row["peak_device_memory_gib"] = device_peak / 2**30
    table = _markdown(rows)
    print(table)
    if _MARKDOWN_OUT.value:
        with open(_MARKDOWN_OUT.value, "w") as f:
            f.write(table + "\n")
    if _JSON_OUT.value:
        with open(_JSON_OUT.value, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
