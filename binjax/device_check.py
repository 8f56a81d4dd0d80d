"""The Python stages of launch/device_check.sh: versions, the inference batch search, the report.

launch/device_check.sh runs each stage as its own process under its own timeout (one hang cannot
eat a short loan of a GPU), records each stage's exit status and time in OUT/stages.tsv, and
ends with `report`, which gathers what the stages wrote into OUT/device_check.json and
OUT/device_check.md and exits non-zero, naming the stages, when one failed.

  python -m binjax.device_check environment OUT/environment.json
  python -m binjax.device_check inference OUT/inference.json --config=configs/default.py --cap=256
  python -m binjax.device_check report OUT
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import pathlib
import platform
import sys
import time
import xml.etree.ElementTree as ElementTree

from binjax.binarizers import DEFAULT_OVERLAP  # JAX-free, like this module's top

PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "flax", "optax", "orbax-checkpoint",
            "numpy", "grain", "tensorflow-datasets", "ml-collections", "doxapy")
A4_300DPI = (3508, 2480)  # the page binarize is timed on (README, Speed)


def environment() -> dict:
    """Python, the packages' versions, JAX's backend and devices, whether the CPU kernels are on."""
    import jax

    from binjax import cpu_kernels

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    stats = devices[0].memory_stats() or {}
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "versions": versions,
        "backend": jax.default_backend(),
        "device_count": len(devices),
        "device_kind": devices[0].device_kind,
        "device_memory_gib": stats["bytes_limit"] / 2**30 if "bytes_limit" in stats else None,
        "default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "cpu_kernels": cpu_kernels.available(),
    }


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def page_for_batch(batch: int, tile: int, overlap: float, smallest: tuple[int, int]) -> tuple[int, int]:
    """A page of at least `smallest` (H, W) holding at least two batches of tiles, so that every
    timed call is a full batch for most of the page."""
    stride = max(1, round(tile * (1 - overlap)))
    per_side = math.ceil(math.sqrt(2 * batch))
    side = tile + (per_side - 1) * stride
    return max(smallest[0], side), max(smallest[1], side)


def inference_batches(config, *, tile: int, overlap: float, cap: int, smallest_page: tuple[int, int],
                      seconds: float, start_batch: int = 4) -> dict:
    """Full-page inference MP/s at tile batches start_batch, 2x, 4x, ... up to `cap`, stopping at
    the first that does not fit in device memory, or when the next would outrun `seconds`."""
    from binjax import benchmark

    rows, stopped, started = [], f"reached the cap of {cap}", time.perf_counter()
    batch = start_batch
    while batch <= cap:
        height, width = page_for_batch(batch, tile, overlap, smallest_page)
        begun = time.perf_counter()
        try:
            row = benchmark.inference_throughput(config, height=height, width=width, tile=tile,
                                                 batch_size=batch, overlap=overlap)
        except Exception as error:  # XLA reports an allocation failure as a runtime error
            if not _out_of_memory(error):
                raise
            stopped = f"batch {batch} ran out of device memory"
            break
        row["inference_batch"] = batch
        peak = benchmark.peak_device_memory_bytes()
        row["peak_device_memory_gib"] = None if peak is None else peak / 2**30
        rows.append(row)
        if 2 * batch > cap:
            break
        took = time.perf_counter() - begun
        # the next batch's page is about twice this one's, so its call about twice as long
        if time.perf_counter() - started + 2.5 * took > seconds:
            stopped = f"batch {2 * batch} would outrun the stage's {seconds:.0f} s"
            break
        batch *= 2
    best = max(rows, key=lambda r: r["megapixels_per_s"]) if rows else None
    return {"rows": rows, "largest_batch": rows[-1]["inference_batch"] if rows else None,
            "best": best, "stopped": stopped}


# ------------------------------------------------------------------ the report
def _stages(out: pathlib.Path) -> list[dict]:
    stages = []
    path = out / "stages.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, rc, seconds, limit, note = (line.split("\t") + [""] * 5)[:5]
        rc = int(rc)
        status = "ok" if rc == 0 else "skipped" if rc == -1 else "timed out" if rc in (124, 137) else "failed"
        stages.append({"stage": name, "status": status, "rc": rc, "seconds": float(seconds),
                       "limit_s": float(limit), "note": note})
    return stages


def _tests(out: pathlib.Path) -> dict | None:
    """The tests stages' junit files (tests_*.xml), summed; None before any was written."""
    paths = sorted(out.glob("tests_*.xml"))
    if not paths:
        return None
    suites = []
    for path in paths:
        root = ElementTree.parse(path).getroot()
        suites += [root] if root.tag == "testsuite" else list(root)
    count = lambda key: sum(int(s.get(key, 0)) for s in suites)  # noqa: E731
    failed = [f"{case.get('classname')}::{case.get('name')}" for s in suites for case in s.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {"tests": count("tests"), "failures": count("failures"), "errors": count("errors"),
            "skipped": count("skipped"), "failed": failed}


def _json_lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _training(out: pathlib.Path) -> dict | None:
    from binjax import reporting

    records = reporting.read_metrics(out / "train")
    if not records:
        return None
    losses = [r for r in records if "train/loss" in r]
    vals = [r for r in records if "val/f1" in r]
    info = json.loads((out / "train_source.json").read_text()) if (out / "train_source.json").exists() else {}
    return {**info, "steps": records[-1]["step"],
            "first_loss": losses[0]["train/loss"] if losses else None,
            "last_loss": losses[-1]["train/loss"] if losses else None,
            "val_f1": vals[-1]["val/f1"] if vals else None,
            # between the first and the last logged step: compiling and the first steps left out
            "steps_per_s": ((losses[-1]["step"] - losses[0]["step"]) / (losses[-1]["time"] - losses[0]["time"])
                            if len(losses) > 1 and losses[-1]["time"] > losses[0]["time"] else None)}


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):  # 3 significant digits, without exponents for large values
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def report(out: pathlib.Path) -> tuple[dict, str, list[str]]:
    """(everything as one dict, the markdown, the reasons for a non-zero exit)."""
    from binjax import benchmark

    stages = _stages(out)
    env = json.loads((out / "environment.json").read_text()) if (out / "environment.json").exists() else {}
    train_rows = _json_lines(out / "benchmark_train.jsonl")
    for row in train_rows:  # float32 also against the TF32 tensor-core peak XLA may use on GPUs
        peak = benchmark.peak_flops_per_s(row.get("device_kind", ""), "tf32")
        if row.get("compute_dtype") == "float32" and peak and row.get("achieved_tflops_per_s") is not None:
            row["mfu_tf32"] = row["achieved_tflops_per_s"] * 1e12 / (peak * row["devices"])
    inference = json.loads((out / "inference.json").read_text()) if (out / "inference.json").exists() else None
    result = {"dry": (out / "DRY").exists(), "environment": env, "stages": stages, "tests": _tests(out),
              "train_benchmark": train_rows, "inference": inference, "training": _training(out)}

    failures = [f"stage {s['stage']} {s['status']} (exit {s['rc']}, {s['seconds']:.0f} s of {s['limit_s']:.0f}; "
                f"log: logs/{s['stage']}.log)" for s in stages if s["status"] in ("failed", "timed out")]
    if result["tests"] and result["tests"]["failed"]:
        failures.append("tests failed: " + ", ".join(result["tests"]["failed"][:10]))

    lines = [f"# binjax device check{' (dry run, CPU, toy sizes)' if result['dry'] else ''}", ""]
    versions = env.get("versions", {})
    lines += [f"{env.get('device_count', '?')} x {env.get('device_kind', '?')} ({env.get('backend', '?')}), "
              f"Python {env.get('python', '?')}, jax {versions.get('jax')}, jaxlib {versions.get('jaxlib')}, "
              f"flax {versions.get('flax')}; binjax CPU kernels {'on' if env.get('cpu_kernels') else 'off'}.", ""]
    lines += ["| stage | status | seconds | limit | note |", "|---|---|---|---|---|"]
    lines += [f"| {s['stage']} | {s['status']} | {s['seconds']:.0f} | {s['limit_s']:.0f} | {s['note']} |" for s in stages]
    if result["tests"]:
        t = result["tests"]
        lines += ["", f"Tests: {t['tests']} run, {t['failures']} failed, {t['errors']} errors, {t['skipped']} skipped."]
    if train_rows:
        lines += ["", "| train | batch x patch | images/s | step ms | compile s | TFLOP/s | MFU | MFU vs TF32 |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.get('model')} {r.get('compute_dtype')} | {r['batch_size']} x {r['patch_size']}² | "
                  f"{_fmt(r['train_images_per_s'])} | {_fmt(r['step_s'] * 1e3)} | {_fmt(r['compile_s'])} | "
                  f"{_fmt(r.get('achieved_tflops_per_s'))} | {_fmt(r.get('mfu'))} | {_fmt(r.get('mfu_tf32'))} |"
                  for r in train_rows]
    if inference and inference["rows"]:
        lines += ["", "| inference batch (tiles) | page | MP/s | page s | peak device GiB |", "|---|---|---|---|---|"]
        lines += [f"| {r['inference_batch']} | {r['page']} | {_fmt(r['megapixels_per_s'])} | {_fmt(r['page_s'])} | "
                  f"{_fmt(r.get('peak_device_memory_gib'))} |" for r in inference["rows"]]
        lines += ["", f"Largest batch that fitted: {inference['largest_batch']} ({inference['stopped']})."]
    if result["training"]:
        tr = result["training"]
        lines += ["", f"Training ({tr.get('source', '?')}, {tr.get('config', '?')}): {tr['steps']} steps at "
                  f"{_fmt(tr['steps_per_s'])} steps/s, loss {_fmt(tr['first_loss'])} -> {_fmt(tr['last_loss'])}, "
                  f"val F1 {_fmt(tr['val_f1'])}."]
    if failures:
        lines += ["", "**Failed:**", *[f"- {f}" for f in failures]]
    return result, "\n".join(lines) + "\n", failures


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m binjax.device_check` (launch/device_check.sh runs it)."""
    command_line = argparse.ArgumentParser(prog="python -m binjax.device_check", description=__doc__,
                                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = command_line.add_subparsers(dest="command", required=True)
    env = commands.add_parser("environment", help="write versions and devices as JSON")
    env.add_argument("json_out")
    inf = commands.add_parser("inference", help="inference MP/s at doubling tile batches, as JSON")
    inf.add_argument("json_out")
    inf.add_argument("--config", required=True, help="config file[:variant], e.g. configs/default.py")
    inf.add_argument("--tile", type=int, default=512)
    inf.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP)
    inf.add_argument("--cap", type=int, default=256, help="largest tile batch to try")
    inf.add_argument("--page", default=f"{A4_300DPI[0]}x{A4_300DPI[1]}", help="smallest page HxW")
    inf.add_argument("--seconds", type=float, default=100, help="time budget of the search")
    rep = commands.add_parser("report", help="gather OUT into device_check.json and .md")
    rep.add_argument("out")
    return command_line


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    if args.command == "environment":
        result = environment()
        pathlib.Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    elif args.command == "inference":
        from binjax import sweep

        path, variant = sweep.parse_config_path(args.config)
        config = sweep.load_module(path).get_config(variant)
        height, width = (int(v) for v in args.page.lower().split("x"))
        result = inference_batches(config, tile=args.tile, overlap=args.overlap, cap=args.cap,
                                   smallest_page=(height, width), seconds=args.seconds,
                                   start_batch=min(4, args.cap))
        pathlib.Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
        for row in result["rows"]:
            print(f"inference batch {row['inference_batch']}: {row['megapixels_per_s']:.3g} MP/s on {row['page']}")
        print(f"stopped: {result['stopped']}")
    else:
        out = pathlib.Path(args.out)
        result, markdown, failures = report(out)
        (out / "device_check.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "device_check.md").write_text(markdown)
        print(markdown, end="")
        if failures:
            print("device_check: FAILED: " + "; ".join(failures), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
