"""launch/benchmark.py end to end at smoke size: train rows over a device scaling, inference rows."""

import json
import os
import subprocess
import sys

import pytest

from binjax import benchmark
from conftest import REPO_ROOT
from launch import common


def test_peak_table_gives_mfu_only_where_the_chip_is_known():
    assert benchmark.peak_flops_per_s("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert benchmark.peak_flops_per_s("TPU v5 lite", "bfloat16") == 197e12
    assert benchmark.peak_flops_per_s("cpu", "float32") is None


@pytest.mark.slow
def test_benchmark_reports_scaling_flops_and_inference(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "launch.benchmark", "--config=configs/default.py:smoke", "--scaling=1,2",
         "--steps=2", "--page=96x80", "--tile=32", "--inference_batch=2", f"--json_out={out}",
         f"--markdown_out={tmp_path / 'bench.md'}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # the launcher re-executed itself with glibc's huge pages (launch/common.py), where it can
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    expect_huge_pages = "glibc.malloc.hugetlb=1" in tunables or (
        common.huge_pages_supported() and os.environ.get("BINJAX_HUGE_PAGES", "1") != "0"
        and "glibc.malloc.hugetlb" not in tunables)
    assert all(row["huge_pages"] == expect_huge_pages for row in rows)
    train_rows = [r for r in rows if r["bench"] == "train"]
    assert [r["devices"] for r in train_rows] == [1, 2]
    for row in train_rows:
        assert row["train_images_per_s"] > 0 and row["step_gflops"] > 0 and row["compile_s"] > 0
        assert row["mfu"] is None  # no peak for a CPU
        assert row["temp_gib"] >= 0
    # XLA counts the same work for the step whatever the device count.
    assert train_rows[0]["step_gflops"] == pytest.approx(train_rows[1]["step_gflops"], rel=0.05)
    (inference,) = [r for r in rows if r["bench"] == "inference"]
    assert inference["megapixels_per_s"] > 0 and inference["page"] == "96x80"
    assert "train_images_per_s" in (tmp_path / "bench.md").read_text()
