"""Text scale: the stroke-width estimator, rescaled inference and its flag, and the scale test."""

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from binjax import binarizers, inference, scale_test, text_scale
from binjax.errors import ConfigError
from conftest import binarize_with_bad_flag


def stroke_page(width: int, size: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy grey page of lines and rings drawn `width` pixels wide at every angle, and its ink."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", (size, size), 215)
    draw = ImageDraw.Draw(im)
    for _ in range(40):
        x, y = rng.integers(0, size, 2)
        angle, length = rng.uniform(0, np.pi), rng.uniform(8 * width, 20 * width)
        draw.line([(x, y), (x + length * np.cos(angle), y + length * np.sin(angle))], fill=40, width=width)
        r, (cx, cy) = rng.uniform(3 * width, 8 * width), rng.integers(0, size, 2)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=40, width=width)
    clean = np.asarray(im)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    return noisy, clean < 128


@pytest.mark.parametrize("width", [2, 3, 5, 8, 11, 16])
def test_estimator_recovers_the_stroke_width_of_drawn_strokes(width):
    page, ink = stroke_page(width)
    assert text_scale.stroke_width_of_mask(ink) == pytest.approx(width, rel=0.15)
    assert text_scale.estimate_stroke_width(page) == pytest.approx(width, rel=0.15)  # no ground truth


def test_estimator_follows_a_resized_page_and_ignores_a_dark_margin():
    page, _ = stroke_page(4, size=800)
    page = page.copy()
    page[:, :150] = (page[:, :150] * 0.35).astype(np.uint8)  # a dark scan margin, text still in it
    width = text_scale.estimate_stroke_width(page)
    assert width == pytest.approx(4, rel=0.2)
    doubled = text_scale.resize_image(page, text_scale.scaled_size(page.shape, 2.0))
    assert text_scale.estimate_stroke_width(doubled) == pytest.approx(2 * width, rel=0.2)
    assert np.isnan(text_scale.estimate_stroke_width(np.full((300, 300), 200, np.uint8)))  # blank paper


def test_median3_is_a_3x3_median():
    region = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    np.testing.assert_array_equal(text_scale.median3(region), ndimage.median_filter(region, 3, mode="nearest"))


def test_auto_factor_clips_and_leaves_training_scale_alone():
    w = text_scale.TRAINING_STROKE_WIDTH
    assert text_scale.auto_factor(w) == 1.0 and text_scale.auto_factor(w * 1.1) == 1.0
    assert text_scale.auto_factor(w / 2) == pytest.approx(2.0)
    assert text_scale.auto_factor(w / 100) == text_scale.FACTOR_RANGE[1]
    assert text_scale.auto_factor(w * 100) == text_scale.FACTOR_RANGE[0]
    assert text_scale.auto_factor(float("nan")) == 1.0


@pytest.mark.parametrize("factor", [0.5, 2.0, 2.7])
@pytest.mark.parametrize("max_pixels", [16_000_000, 20_000])  # whole page; upscaled in bands
def test_rescaled_probability_keeps_the_page_size(factor, max_pixels):
    y, x = np.mgrid[0:101, 0:157]
    page = (128 + 100 * np.sin(y / 9.0) * np.cos(x / 13.0)).astype(np.uint8)
    sizes = []

    def probability(image):
        sizes.append(image.shape[:2])
        return image.astype(np.float32) / 255

    prob = text_scale.rescaled_probability(probability, page, factor, tile=16, max_pixels=max_pixels)
    assert prob.shape == page.shape and prob.dtype == np.float32
    np.testing.assert_allclose(prob, page / 255, atol=0.06)  # the round trip of a smooth page
    assert all(h * w <= max(max_pixels, page.size * factor ** 2 * 0.6) for h, w in sizes)
    if factor > 1 and max_pixels < page.size * factor ** 2:
        assert len(sizes) > 1  # bands


def test_parse_rescale():
    assert text_scale.parse_rescale("none") is None and text_scale.parse_rescale(None) is None
    assert text_scale.parse_rescale("AUTO") == "auto" and text_scale.parse_rescale("2") == 2.0
    assert text_scale.parse_rescale("1") is None
    for bad in ("banana", "0", "-2", "nan", "100"):
        with pytest.raises(ConfigError, match=f"--rescale={bad}"):
            text_scale.parse_rescale(bad)
    with pytest.raises(ConfigError, match="--rescale"):
        binarizers.make_binarizers(methods=["otsu"], rescale="banana")  # before any model loads


def test_rescale_none_is_the_plain_path_and_a_factor_keeps_the_size(tiny_grey_workdir):
    page, _ = stroke_page(5, size=90)
    plain = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, all_devices=False)
    none = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, rescale="none", all_devices=False)
    reference = inference.binarize_page(plain._predict_fn, page[..., None], tile=32)
    np.testing.assert_array_equal(none(page), reference)
    np.testing.assert_array_equal(plain(page), reference)
    np.testing.assert_array_equal(none.probability(page), plain.probability(page))
    doubled = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, rescale=2.0, all_devices=False)
    assert doubled(page).shape == page.shape and doubled.probability(page).shape == page.shape
    assert "rescale=2.0" in doubled.description


def test_bad_rescale_flag_is_one_line(tmp_path):
    binarize_with_bad_flag(tmp_path, stroke_page(3, size=64)[0], "--rescale=banana")


# ----------------------------------------------------------------------------- the scale test

class _Pages:
    def __init__(self, pages):
        self.pages, self.names, self.collections = pages, [f"c/p{i}" for i in range(len(pages))], ["c"] * len(pages)

    def __len__(self):
        return len(self.pages)

    def __getitem__(self, i):
        return self.pages[i]


def test_resized_pages_resize_image_and_ground_truth_together():
    page, ink = stroke_page(6, size=120)
    pages = scale_test.ResizedPages(_Pages([{"image": page[..., None], "mask": ink.astype(np.uint8)}]), 0.5)
    resized = pages[0]
    assert resized["image"].shape == (60, 60, 1) and resized["mask"].shape == (60, 60)
    assert set(np.unique(resized["mask"])) <= {0, 1}
    assert resized["mask"].mean() == pytest.approx(ink.mean(), rel=0.25)  # strokes keep their share of ink
    assert pages.names == ["c/p0"] and pages.collections == ["c"]


def test_scale_report_and_factors():
    rows = [dict(binarizer=b, factor=f, collection=c, page="p", fm=fm, pfm=0, psnr=0, drd=0)
            for b, f, c, fm in [("otsu", 0.5, "a", 50), ("otsu", 1.0, "a", 70), ("binjax-x", 0.5, "a", 40),
                                ("binjax-x", 1.0, "a", 90)]]
    report = scale_test.report_markdown(rows)
    assert report.splitlines()[0] == "| collection | scale | binjax-x | otsu |"
    assert "| a | x0.5 | 40.00 | 50.00 |" in report and "40.00 (a x0.5)" in report
    assert scale_test.parse_factors(["0.5", "2"]) == [0.5, 2.0]
    for bad in (["0"], ["abc"], ["1", "1"], []):
        with pytest.raises(ConfigError, match="--factors"):
            scale_test.parse_factors(bad)


# ----------------------------------------------------------------------------- training over scales

def test_wide_scale_range_teaches_strokes_from_half_to_twice_their_width():
    """data.augment.scale_range (configs/ablations/scale_range.py): the wide arm's patches show a
    page's 6 px strokes at a spread of widths the recipe's range does not reach."""
    from binjax.data import pipeline

    page, ink = stroke_page(6, size=700)
    spreads = {}
    for scale_range in ((0.67, 1.5), (0.5, 2.0)):
        augment = pipeline.Augment(scale_range=scale_range, contrast=None, brightness=None, gamma=None,
                                   blur_prob=0, noise_prob=0)
        patches = pipeline.RandomPatch(160, 1.0, augment)
        rng = np.random.default_rng(0)
        widths = [text_scale.stroke_width_of_mask(patches.random_map(
            {"image": page[..., None], "mask": ink.astype(np.uint8)}, rng)["mask"][..., 0] > 0) for _ in range(60)]
        low, high = np.nanpercentile(widths, (5, 95))
        spreads[scale_range] = high / low
    assert spreads[(0.5, 2.0)] > 2.1 and spreads[(0.67, 1.5)] < 1.9, spreads


def test_bands_of_a_wide_page_at_a_large_factor_are_never_a_row_high():
    """A wide page scaled 4x past max_pixels: bands of at least one margin of rows, so the model
    runs a handful of times, not once per source row."""
    calls = []

    def probability(page):
        calls.append(page.shape)
        return np.full(page.shape[:2], 0.25, np.float32)

    page = np.full((64, 400, 1), 200, np.uint8)
    prob = text_scale.rescaled_probability(probability, page, 4.0, tile=32, max_pixels=20_000)
    assert prob.shape == (64, 400)
    np.testing.assert_allclose(prob, 0.25, atol=1e-6)
    assert len(calls) <= 64 // 8  # margin = tile / factor = 8 source rows
