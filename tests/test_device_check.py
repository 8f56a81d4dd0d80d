"""launch/device_check.sh in its dry mode (every stage on the CPU, toy sizes), and its report."""

import json
import os
import subprocess
import sys

import pytest

from binjax import device_check
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "launch" / "device_check.sh"
STAGES = ["wheels", "environment", "tests_models", "benchmark_float32", "benchmark_bfloat16", "inference", "train",
          "tests_train"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "BINJAX_DIBCO", "JAX_PLATFORMS")}
    env["PYTHON"] = sys.executable
    result = subprocess.run([str(SCRIPT), str(out), "--dry"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    return out, result


@pytest.mark.slow
def test_the_dry_run_passes_every_stage_and_writes_the_tables(dry_run):
    out, result = dry_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["dry"] is True
    assert [s["stage"] for s in report["stages"]] == STAGES
    assert {s["status"] for s in report["stages"]} == {"ok"}, report["stages"]
    assert report["environment"]["backend"] == "cpu" and report["environment"]["device_count"] == 1
    assert report["environment"]["versions"]["jax"]
    assert report["tests"] == {"tests": 2, "failures": 0, "errors": 0, "skipped": 0, "failed": []}
    train_rows = report["train_benchmark"]
    assert [r["compute_dtype"] for r in train_rows] == ["float32", "bfloat16"]
    assert all(r["train_images_per_s"] > 0 and r["mfu"] is None for r in train_rows)  # no peak for a CPU
    inference = report["inference"]
    assert [r["inference_batch"] for r in inference["rows"]] == [4]
    assert inference["rows"][0]["megapixels_per_s"] > 0 and inference["stopped"] == "reached the cap of 4"
    training = report["training"]
    assert training["steps"] == 4 and training["config"] == "configs/default.py:smoke"
    assert training["source"].startswith("synthetic: DIBCO pages not found")
    markdown = (out / "device_check.md").read_text()
    assert markdown.startswith("# binjax device check (dry run, CPU, toy sizes)")
    assert "| benchmark_bfloat16 | ok |" in markdown and "| unet bfloat16 | 8 x 32² |" in markdown
    assert "Largest batch that fitted: 4" in markdown and "Tests: 2 run, 0 failed" in markdown
    assert "== report" in result.stdout and "Failed" not in markdown


def test_a_failed_or_timed_out_stage_fails_the_report_and_is_named(tmp_path, capsys):
    (tmp_path / "stages.tsv").write_text("environment\t0\t3.0\t60\t\ntests_models\t1\t20.5\t150\t\n"
                                         "inference\t124\t110.0\t110\t\ntrain\t-1\t0\t0\tskipped\n")
    assert device_check.main(["report", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert [s["status"] for s in report["stages"]] == ["ok", "failed", "timed out", "skipped"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("device_check: FAILED: stage tests_models failed (exit 1")
    assert "stage inference timed out (exit 124, 110 s of 110; log: logs/inference.log)" in err
    assert "**Failed:**" in (tmp_path / "device_check.md").read_text()


def test_the_inference_search_doubles_until_memory_runs_out(monkeypatch):
    from binjax import benchmark

    calls = []

    def fake_throughput(config, *, height, width, tile, batch_size, overlap):
        calls.append((batch_size, height, width))
        if batch_size >= 16:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 99 GiB")
        return {"page": f"{height}x{width}", "megapixels_per_s": float(batch_size), "page_s": 1.0}

    monkeypatch.setattr(benchmark, "inference_throughput", fake_throughput)
    result = device_check.inference_batches(None, tile=512, overlap=0.5, cap=64, smallest_page=(100, 100),
                                            seconds=1e9)
    assert [b for b, _, _ in calls] == [4, 8, 16]
    assert result["largest_batch"] == 8 and result["best"]["inference_batch"] == 8
    assert result["stopped"] == "batch 16 ran out of device memory"
    # another error is not taken for a full memory
    monkeypatch.setattr(benchmark, "inference_throughput", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        device_check.inference_batches(None, tile=512, overlap=0.5, cap=64, smallest_page=(1, 1), seconds=1e9)


def test_pages_hold_two_batches_of_tiles():
    assert device_check.page_for_batch(4, 512, 0.5, (3508, 2480)) == (3508, 2480)  # A4 holds 117 tiles
    height, width = device_check.page_for_batch(512, 512, 0.5, (3508, 2480))
    assert (height - 256) // 256 * ((width - 256) // 256) >= 2 * 512


@pytest.mark.parametrize("script", ["device_check.sh", "gpu_wheels.sh"])
def test_the_scripts_answer_help_and_reject_bad_arguments_in_one_line(script):
    path = REPO_ROOT / "launch" / script
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and len(result.stdout.split("\n\n")[1]) > 150
    assert sum(line.lstrip().startswith("launch/") for line in result.stdout.splitlines()) >= 2
    result = subprocess.run([str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and script in result.stderr


def test_the_report_gives_float32_runs_an_mfu_against_the_tf32_peak_too(tmp_path):
    row = {"bench": "train", "model": "unet", "compute_dtype": "float32", "device_kind": "NVIDIA H200",
           "devices": 1, "batch_size": 128, "patch_size": 256, "train_images_per_s": 1000.0, "step_s": 0.128,
           "compile_s": 20.0, "achieved_tflops_per_s": 49.4, "mfu": 49.4 / 67}
    (tmp_path / "benchmark_train.jsonl").write_text(json.dumps(row) + "\n")
    result, markdown, failures = device_check.report(tmp_path)
    assert failures == []
    assert result["train_benchmark"][0]["mfu_tf32"] == pytest.approx(0.1)
    assert "| unet float32 | 128 x 256² | 1000 | 128 | 20 | 49.4 | 0.737 | 0.1 |" in markdown
