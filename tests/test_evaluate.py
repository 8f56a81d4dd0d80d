"""Page-level evaluation: outputs written, numbers consistent with the files, the launcher, DIBCO pages."""

import json
import math
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from binjax import binarizers as binarizers_lib
from binjax import evaluate, imageio, inference, metrics, pretrained, released
from binjax.data import synthetic
from conftest import save_tiny_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]
# One host device: the launchers start faster than with the 8 that conftest.py fakes.
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
PAGES = [(64, 96, 1), (80, 64, 3), (72, 72, 1)]  # height, width, channels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> pathlib.Path:
    """An untrained tiny RGB U-Net saved by the real Checkpointer (no training needed)."""
    # A colour model: grey pages must be converted for it.
    return save_tiny_checkpoint(tmp_path_factory.mktemp("workdir"), channels=3)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> pathlib.Path:
    """Three small synthetic pages as DIBCO-style <name>_in.png / <name>_gt.png (ink black)."""
    folder = tmp_path_factory.mktemp("pairs")
    for i, (h, w, c) in enumerate(PAGES):
        page = synthetic.render_page(i, h, w, channels=c)
        Image.fromarray(page["image"][..., 0] if c == 1 else page["image"]).save(folder / f"p{i}_in.png")
        imageio.save_mask(folder / f"p{i}_gt.png", page["mask"], foreground="black", bits=8)
    return folder


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _check_outputs(out: pathlib.Path, names: list[str], gt_dir: pathlib.Path, binarizers: list[str]) -> dict:
    """Every file is there and every CSV figure equals the metrics recomputed from the written PNGs."""
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["binarizers"]) == binarizers
    assert summary["pages"] == names
    markdown = (out / "summary.md").read_text()
    assert "red = false positive" in markdown and "blue = false negative" in markdown
    for name in binarizers:
        assert f"| {name} |" in markdown
        rows = evaluate.read_csv(out / name / "per_image.csv")
        assert [r["page"] for r in rows] == names
        for row in rows:
            gt = imageio.load_mask(gt_dir / f"{row['page']}_gt.png", "black").astype(bool)
            written = out / name / "binary" / f"{row['page']}.png"
            with Image.open(written) as im:
                assert im.mode == "1" and im.size == (gt.shape[1], gt.shape[0])
            pred = imageio.load_mask(written, "black").astype(bool)
            expected = metrics.dibco_scores(pred, gt)  # weights recomputed from the ground truth
            for key in evaluate.DIBCO_KEYS:
                assert _same(row[key], expected[key]), (name, row["page"], key, row[key], expected[key])
            counts = metrics.confusion_counts(pred, gt)
            assert [row[k] for k in ("tp", "fp", "fn", "tn")] == counts.tolist()
            seg = metrics.segmentation_scores(counts)
            for key in ("iou", "dice", "f1"):
                assert row[key] == pytest.approx(float(seg[key]), abs=1e-12)
            with Image.open(out / name / "compare" / f"{row['page']}.png") as im:
                if max(gt.shape) <= 512:  # 2x2 grid of unshrunk panels with captions
                    assert im.width > 2 * gt.shape[1] and im.height > 2 * gt.shape[0]
        entry = summary["binarizers"][name]
        assert entry["mean"]["fm"] == pytest.approx(np.mean([r["fm"] for r in rows]))
        summed = np.sum([[r[k] for k in ("tp", "fp", "fn", "tn")] for r in rows], axis=0)
        assert entry["set"]["iou"] == pytest.approx(float(metrics.segmentation_scores(summed)["iou"]))
    return summary


def test_launcher_evaluates_model_and_classic_methods_with_consistent_numbers(checkpoint, pairs, tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "launch.evaluate", f"--checkpoint={checkpoint}", "--method=otsu,sauvola:window=15",
         f"--data={pairs}", f"--out={out}", "--tile=64", "--batch=2"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| model |" in result.stdout and "| otsu |" in result.stdout and "| sauvola_window15 |" in result.stdout
    assert str(out) in result.stdout
    summary = _check_outputs(out, ["p0", "p1", "p2"], pairs, ["model", "otsu", "sauvola_window15"])
    assert "3 channel(s)" in summary["binarizers"]["model"]["description"]
    # The model's files are its tiled inference on the page read as RGB (grey pages repeated).
    model, config = pretrained.load_model(checkpoint)
    predict = inference.make_predict_fn(model)
    for i in range(len(PAGES)):
        image = imageio.load_image(pairs / f"p{i}_in.png", config.data.channels)
        expected = inference.binarize_page(predict, image, tile=64, batch_size=2)
        written = imageio.load_mask(out / "model" / "binary" / f"p{i}.png", "black").astype(bool)
        assert np.array_equal(written, expected), i


def test_library_limit_weights_cache_and_colour_conversion(pairs, tmp_path):
    binarizers = binarizers_lib.make_binarizers(methods=["otsu"])
    assert evaluate.pages_channels(binarizers) == 1
    pages = evaluate.open_pages(str(pairs), channels=3)  # colour pages; otsu converts to grey itself
    cache = tmp_path / "weights"
    summary = evaluate.evaluate_pages(binarizers, pages, tmp_path / "a", limit=2, weights_cache=cache,
                                      previews=False, progress=False)
    assert summary["pages"] == ["p0", "p1"]
    assert len(list(cache.glob("*.npz"))) == 2
    assert not (tmp_path / "a" / "otsu" / "compare").exists()
    again = evaluate.evaluate_pages(binarizers, pages, tmp_path / "b", limit=2, weights_cache=cache,
                                    previews=False, progress=False)  # weights read from the cache
    assert again["binarizers"]["otsu"]["mean"] == summary["binarizers"]["otsu"]["mean"]
    # A grey page read as RGB gives back the same grey: otsu's masks are those of the grey files.
    grey_pages = evaluate.open_pages(str(pairs), channels=1)
    for i in range(2):
        assert np.array_equal(binarizers["otsu"](pages[i]["image"]), binarizers["otsu"](grey_pages[i]["image"]))


def test_method_specs_and_errors(tmp_path):
    assert binarizers_lib.parse_method("sauvola:window=51:k=0.3") == ("sauvola", {"window": 51, "k": 0.3})
    assert binarizers_lib.ClassicBinarizer("sauvola", {"window": 51, "k": 0.3}).name == "sauvola_k0.3_window51"
    with pytest.raises(ValueError, match="name=number"):
        binarizers_lib.parse_method("sauvola:51")
    with pytest.raises(ValueError, match="windw"):
        binarizers_lib.make_binarizers(methods=["sauvola:windw=5"])
    with pytest.raises(ValueError, match="unknown classic method"):
        binarizers_lib.make_binarizers(methods=["sauvla"])
    with pytest.raises(ValueError, match="twice"):
        binarizers_lib.make_binarizers(methods=["otsu", "otsu"])
    with pytest.raises(FileNotFoundError, match="not prepared"):
        evaluate.open_pages("tfds:dibco/2013", data_dir=tmp_path)


def test_error_map_colours():
    pred = np.array([[1, 1, 0, 0]], bool)
    gt = np.array([[1, 0, 1, 0]], bool)
    colours = evaluate.error_map(pred, gt)[0].tolist()
    assert colours == [list(evaluate.CORRECT_INK), list(evaluate.FALSE_POSITIVE),
                       list(evaluate.FALSE_NEGATIVE), list(evaluate.CORRECT_PAPER)]


def test_launcher_help_and_missing_binarizer(pairs, tmp_path):
    help_run = subprocess.run([sys.executable, "-m", "launch.evaluate", "--help"], cwd=REPO, env=ENV,
                              capture_output=True, text=True, timeout=120)
    assert help_run.returncode == 0, help_run.stderr
    assert "Scores binarizers on pages with ground truth" in help_run.stdout
    for flag in ("--checkpoint", "--method", "--data", "--out", "--limit", "flip_tta", "--mask_foreground"):
        assert flag in help_run.stdout
    # No model named: the released default model is scored (beside --method, if any).
    default = subprocess.run([sys.executable, "-m", "launch.evaluate", f"--data={pairs}", f"--out={tmp_path / 'd'}",
                              "--method=otsu", "--nopreviews"],
                             cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert default.returncode == 0, default.stderr[-3000:]
    summary = (tmp_path / "d" / "summary.md").read_text()
    assert f"| binjax-{released.DEFAULT_MODEL} |" in summary and "| otsu |" in summary
    none = subprocess.run([sys.executable, "-m", "launch.evaluate", f"--data={pairs}", f"--out={tmp_path / 'n'}",
                           "--checkpoint=none"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert none.returncode != 0 and "--method" in none.stderr


def test_two_dibco_2013_pages(dibco_dir, tmp_path):
    """Two of the smallest DIBCO 2013 pages (copied; ~1 s of pseudo-weights each) with two classic methods."""
    data = tmp_path / "2013"
    data.mkdir()
    for name in ("HW02", "PR07"):
        for kind in ("in", "gt"):
            shutil.copy(dibco_dir / "2013" / f"{name}_{kind}.png", data / f"{name}_{kind}.png")
    binarizers = binarizers_lib.make_binarizers(methods=["otsu", "sauvola"])
    pages = evaluate.open_pages(str(data), channels=evaluate.pages_channels(binarizers))
    summary = evaluate.evaluate_pages(binarizers, pages, tmp_path / "out", dataset="DIBCO 2013", progress=False)
    for name in ("otsu", "sauvola"):
        fm = summary["binarizers"][name]["per_image_fm"]
        assert set(fm) == {"HW02", "PR07"}
        assert all(60.0 < v <= 100.0 for v in fm.values()), (name, fm)  # classic methods do well on these
    _check_outputs(tmp_path / "out", ["HW02", "PR07"], data, ["otsu", "sauvola"])
    with Image.open(tmp_path / "out" / "otsu" / "compare" / "HW02.png") as im:
        assert max(im.size) <= 1024 + 4  # shrunk preview of a 1136 px page


def test_tfds_dataset_built_from_manual_files_scores_like_the_folder(pairs, tmp_path):
    manual = tmp_path / "manual" / "2013"  # the team's layout: <year>/<name>_in.png + _gt.png
    manual.mkdir(parents=True)
    for name in ("p0", "p1"):
        for kind in ("in", "gt"):
            shutil.copy(pairs / f"{name}_{kind}.png", manual / f"{name}_{kind}.png")
    binarizers = binarizers_lib.make_binarizers(methods=["otsu"])
    pages = evaluate.open_pages("tfds:dibco/2013", data_dir=tmp_path / "tfds", manual_dir=tmp_path / "manual")
    assert pages.names == ["2013_p0", "2013_p1"]
    from_tfds = evaluate.evaluate_pages(binarizers, pages, tmp_path / "a", previews=False, progress=False)
    from_folder = evaluate.evaluate_pages(binarizers, evaluate.open_pages(str(manual)), tmp_path / "b",
                                          previews=False, progress=False)
    assert from_tfds["binarizers"]["otsu"]["mean"] == from_folder["binarizers"]["otsu"]["mean"]
