"""OCR-aware evaluation: edit distances, transcripts, and Tesseract's readings scored by evaluate."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from binjax import binarizers as binarizers_lib
from binjax import evaluate, imageio, ocr
from binjax.data import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
# CI installs Tesseract (.ci/run), so there these tests always run; elsewhere they say why not.
needs_tesseract = pytest.mark.skipif(ocr.missing_reason() is not None, reason=f"OCR: {ocr.missing_reason()}")


def _levenshtein(a, b) -> int:
    """The textbook dynamic programme, cell by cell: the reference for the numpy version."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance_matches_the_textbook_programme():
    assert ocr.edit_distance("kitten", "sitting") == 3
    assert ocr.edit_distance("", "abc") == ocr.edit_distance("abc", "") == 3
    assert ocr.edit_distance("same", "same") == 0
    assert ocr.edit_distance("the cat sat".split(), "the cat sat down".split()) == 1
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = "".join(rng.choice(list("abc "), int(rng.integers(0, 12))))
        b = "".join(rng.choice(list("abc "), int(rng.integers(0, 12))))
        assert ocr.edit_distance(a, b) == _levenshtein(a, b), (a, b)


def test_error_rates_ignore_layout_and_count_words():
    counts = ocr.error_counts("the  cat\nsat", "the cat sat on")
    assert counts == {"char_edits": 3, "ref_chars": 14, "word_edits": 1, "ref_words": 4}
    assert ocr.rates(counts) == pytest.approx({"cer": 100 * 3 / 14, "wer": 25.0})
    assert np.isnan(ocr.rates(ocr.error_counts("junk", ""))["cer"])


def test_transcript_reads_only_whole_lines(tmp_path):
    path = tmp_path / "p_text.json"
    path.write_text(json.dumps({"height": 20, "width": 30, "lines": [
        {"text": "cut", "box": [2.5, -3.2, 12.0, 4.1], "column": 0, "inside": False},
        {"text": "first line", "box": [4.5, 6.2, 20.0, 9.0], "column": 0, "inside": True},
        {"text": "second", "box": [4.0, 12.0, 20.0, 14.0], "column": 0, "inside": True}]}))
    text, keep = ocr.read_transcript(path)
    assert text == "first line\nsecond" and keep == [(2, 4, 22, 11), (2, 10, 22, 16)]  # grown by 2 px
    page = np.full((20, 30, 1), 180, np.uint8)  # grey paper
    page[5:8, 5:20] = 0  # ink inside a box
    page[0:2, 5:10] = 0  # ink of the cut line
    kept = ocr.keep_boxes(page, keep)
    assert kept.shape == page.shape and kept[5:8, 5:20].max() == 0
    assert kept[:4].min() == 180 and kept[:, 22:].min() == 180  # outside: the paper's colour
    assert ocr.keep_boxes(page, None) is page
    mask = ocr.keep_boxes(np.ones((20, 30), bool), keep)
    assert mask[4:16, 2:22].all() and not mask[:4].any()
    (tmp_path / "bad_text.json").write_text("{}")
    with pytest.raises(ValueError, match="not a transcript"):
        ocr.read_transcript(tmp_path / "bad_text.json")


def test_generated_transcripts_match_the_samples():
    """data/samples/<name>_text.json is what the generator records for that page."""
    for i in range(6):
        channels = 3 if i % 2 else 1
        name = f"synthetic_{i:02d}_{'rgb' if channels == 3 else 'grey'}"
        lines = []
        synthetic.render_page(synthetic.page_seed(0, i), 384, 512, channels, lines=lines)
        stored = json.loads((REPO / "data" / "samples" / f"{name}_text.json").read_text())
        assert stored["lines"] == json.loads(json.dumps(lines))


def _text_page(text_lines, size=(140, 520)) -> np.ndarray:
    image = Image.new("L", size[::-1], 235)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    for k, line in enumerate(text_lines):
        draw.text((20, 20 + 45 * k), line, fill=30, font=font)
    return np.asarray(image)


@needs_tesseract
def test_tesseract_reads_a_clean_page():
    assert ocr.tesseract_version()[0].isdigit()
    reading = ocr.read_text(_text_page(["binarize the page", "then read it"]))
    assert ocr.rates(ocr.error_counts(reading, "binarize the page\nthen read it"))["cer"] < 10


@needs_tesseract
def test_evaluate_scores_readings_against_transcripts_and_the_proxy(tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    lines = ["binarize the page", "then read it"]
    page = _text_page(lines)
    for name in ("with_text", "without_text"):
        Image.fromarray(page).save(pairs / f"{name}_in.png")
        imageio.save_mask(pairs / f"{name}_gt.png", page < 128, foreground="black", bits=8)
    (pairs / "with_text_text.json").write_text(json.dumps({"height": 140, "width": 520, "lines": [
        {"text": t, "box": [18, 18 + 45 * k, 400, 55 + 45 * k], "column": 0, "inside": True}
        for k, t in enumerate(lines)]}))
    scorer = ocr.OcrScorer(text_dir=tmp_path / "out" / "ocr_text")
    summary = evaluate.evaluate_pages({"otsu": binarizers_lib.ClassicBinarizer("otsu")}, evaluate.open_pages(str(pairs)),
                                      tmp_path / "out", previews=False, progress=False, ocr=scorer)
    result = summary["ocr"]
    assert result["reference"] == "mixed" and result["reference_pages"] == {"proxy": 1, "transcript": 1}
    assert result["psm"] == 3 and result["lang"] == "eng" and result["tesseract"] == ocr.tesseract_version()
    assert list(result["sources"]) == [ocr.GROUND_TRUTH, ocr.INPUT, "otsu"]
    assert result["per_page"]["without_text"][ocr.GROUND_TRUTH]["cer"] == 0  # the proxy's own reference
    assert result["per_page"]["with_text"][ocr.GROUND_TRUTH]["cer"] < 10  # a clean page reads right
    rows = evaluate.read_csv(tmp_path / "out" / "otsu" / "per_image.csv")
    assert [r["ocr_cer"] for r in rows] == [result["per_page"][p]["otsu"]["cer"] for p in ("with_text", "without_text")]
    assert (tmp_path / "out" / "ocr_text" / "with_text" / "otsu.txt").read_text().strip()
    assert "## OCR (Tesseract)" in (tmp_path / "out" / "summary.md").read_text()


@needs_tesseract
def test_evaluate_launcher_with_ocr(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "launch.evaluate", "--checkpoint=none", "--method=otsu", "--ocr", "--ocr_psm=6",
         "--data=data/samples", f"--out={tmp_path}", "--limit=2", "--nopreviews"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ocr"]["reference"] == "transcript" and summary["ocr"]["psm"] == 6
    assert "CER %" in result.stdout


def test_ocr_without_language_data_is_a_one_line_config_error(tmp_path):
    env = dict(ENV, TESSDATA_PREFIX=str(tmp_path))  # an empty folder: no eng.traineddata
    result = subprocess.run([sys.executable, "-m", "launch.evaluate", "--checkpoint=none", "--method=otsu", "--ocr",
                             "--data=data/samples", f"--out={tmp_path / 'out'}"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "needs Tesseract" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
