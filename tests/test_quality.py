"""Page-quality estimates without ground truth, probability maps, and the binarize/evaluate hooks."""

import csv
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from binjax import binarizers as binarizers_lib
from binjax import evaluate, imageio, metrics, quality
from binjax.data import synthetic
from conftest import save_tiny_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> pathlib.Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("workdir"), channels=1)


def test_certain_probabilities_give_the_true_f_measure():
    rng = np.random.default_rng(0)
    truth = rng.random((40, 50)) < 0.2
    estimates = quality.page_estimates(truth.astype(np.float32))
    assert estimates["expected_fm"] == pytest.approx(100.0)
    assert estimates["unsure_per_ink"] == 0 and estimates["ink_fraction"] == pytest.approx(truth.mean())
    assert quality.page_estimates(np.zeros((8, 8), np.float32))["expected_fm"] == 100.0  # nothing to find


def test_expected_fm_is_the_f_measure_of_ground_truths_drawn_from_the_probabilities():
    rng = np.random.default_rng(1)
    prob = np.clip(rng.beta(0.3, 1.2, (300, 300)), 0, 1).astype(np.float32)
    pred = prob > 0.5
    drawn = [metrics.dibco_scores(pred, rng.random(prob.shape) < prob)["fm"] for _ in range(20)]
    assert quality.page_estimates(prob)["expected_fm"] == pytest.approx(np.mean(drawn), abs=0.3)
    # Less certain probabilities: a lower estimate.
    softer = (0.5 + 0.6 * (prob - 0.5)).astype(np.float32)
    assert quality.page_estimates(softer)["expected_fm"] < quality.page_estimates(prob)["expected_fm"]


def test_probability_image_shades_like_the_output_in_strips():
    prob = np.linspace(0, 1, 600 * 3, dtype=np.float32).reshape(600, 3)  # more rows than one strip
    black = quality.probability_image(prob, "black")
    white = quality.probability_image(prob, "white")
    assert black.dtype == np.uint8 and black.shape == prob.shape
    assert black[0, 0] == 255 and black[-1, -1] == 0 and white[0, 0] == 0 and white[-1, -1] == 255
    np.testing.assert_array_equal(black.astype(int) + white, 255)


def test_rank_measures_on_known_data():
    assert quality.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert quality.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # The two flagged pages have the two lowest qualities: perfect detection.
    assert quality.flag_auc([1, 2, 3, 4], [True, True, False, False]) == 1.0
    assert quality.flag_auc([1, 2, 3, 4], [False, False, True, True]) == 0.0
    assert quality.lowest_k_precision_recall([5, 1, 3, 2], [False, True, False, False], 1) == (1.0, 1.0)
    pages = [{"collection": c, "fm": fm, "otsu_fm": 50.0, "quality": fm + 1, "expected_fm": fm + 1,
              "unsure_per_ink": 100 - fm, "ink_fraction": 0.1} for c, fm in
             (("a", 40), ("a", 60), ("a", 80), ("b", 45), ("b", 70), ("b", 90))]
    rows = {r["group"]: r for r in quality.validation_rows(pages)}
    assert set(rows) == {"all", "a", "b"} and rows["all"]["pages"] == 6
    assert rows["all"]["spearman_expected_fm"] == pytest.approx(1.0)
    assert rows["all"]["spearman_unsure_per_ink"] == pytest.approx(-1.0)
    assert rows["all"]["below_otsu"] == 2 and rows["all"]["flag_auc"] == 1.0


def test_model_probability_is_what_the_binarizer_thresholds(checkpoint):
    model = binarizers_lib.ModelBinarizer(checkpoint, tile=32, batch_size=2, all_devices=False, threshold=0.5)
    page = synthetic.render_page(3, 40, 56, 1)["image"]
    prob = model.probability(page)
    assert prob.dtype == np.float32 and prob.shape == (40, 56)
    np.testing.assert_array_equal(model(page), prob > 0.5)
    ink, estimates = quality.binarize_with_estimates(model, page)
    np.testing.assert_array_equal(ink, prob > 0.5)
    assert estimates["quality"] == estimates[quality.QUALITY_KEY]
    classic = binarizers_lib.ClassicBinarizer("otsu")
    assert quality.binarize_with_estimates(classic, page)[1] == {}


def test_evaluate_adds_quality_columns_for_models_only(checkpoint, tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i in range(2):
        page = synthetic.render_page(i, 48, 64, 1)
        Image.fromarray(page["image"][..., 0]).save(pairs / f"p{i}_in.png")
        imageio.save_mask(pairs / f"p{i}_gt.png", page["mask"], foreground="black", bits=8)
    binarizers = {"model": binarizers_lib.ModelBinarizer(checkpoint, tile=32, batch_size=2, all_devices=False),
                  "otsu": binarizers_lib.ClassicBinarizer("otsu")}
    evaluate.evaluate_pages(binarizers, evaluate.open_pages(str(pairs)), tmp_path / "out", previews=False,
                            progress=False, quality=True)
    model_rows = evaluate.read_csv(tmp_path / "out" / "model" / "per_image.csv")
    assert [r["page"] for r in model_rows] == ["p0", "p1"]
    assert all(0 <= r["quality"] <= 100 and r["quality"] == r["expected_fm"] for r in model_rows)
    assert "quality" not in evaluate.read_csv(tmp_path / "out" / "otsu" / "per_image.csv")[0]


def test_binarize_writes_probability_maps_and_quality_csv(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sizes = {"a": (48, 64), "b": (40, 72), "c": (56, 40)}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        Image.fromarray(synthetic.render_page(i, h, w, 1)["image"][..., 0]).save(inputs / f"{name}.png")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "launch.binarize", "--noprogress", str(inputs),
                             f"--checkpoint={checkpoint}", f"--out={out}", "--tile=32", "--batch=2", "--probability"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, size in sizes.items():
        with Image.open(out / f"{name}_prob.png") as im:
            assert im.mode == "L" and im.size == size[::-1]
        with Image.open(out / f"{name}.png") as im:
            binary = np.asarray(im.convert("L")) == 0  # ink black
        with Image.open(out / f"{name}_prob.png") as im:
            prob_map = np.asarray(im)
        # The map, read back, thresholds to the written output (up to 8-bit rounding at 0.5).
        assert np.mean((prob_map < 127.5) == binary) > 0.99
    with open(out / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["input", "output", "quality", "expected_fm", "unsure_per_ink", "ink_fraction",
                             "probability"]
    assert sorted(pathlib.Path(r["input"]).stem for r in rows) == sorted(sizes)
    scores = [float(r["quality"]) for r in rows]
    assert scores == sorted(scores)  # the least confident first
    # A killed run leaves no quality.csv, and its resume redoes only the pages without outputs:
    # quality.csv, written from the manifest, still lists them all, as the full run did.
    listing = (out / "quality.csv").read_text()
    (out / "quality.csv").unlink()
    (out / "b.png").unlink()
    result = subprocess.run([sys.executable, "-m", "launch.binarize", "--noprogress", str(inputs),
                             f"--checkpoint={checkpoint}", f"--out={out}", "--tile=32", "--batch=2", "--probability",
                             "--resume"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "2 page(s) were done by an earlier run" in result.stderr, result.stderr[-3000:]
    assert (out / "quality.csv").read_text() == listing
    # A classic method has no probabilities to offer.
    result = subprocess.run([sys.executable, "-m", "launch.binarize", "--noprogress", str(inputs), "--method=otsu",
                             f"--out={tmp_path / 'otsu'}", "--probability"],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "need a model" in result.stderr
