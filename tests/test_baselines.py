"""Tests for binjax.baselines: every classic method runs, names are checked, strides are safe."""

import numpy as np
import pytest
from PIL import Image

import doxapy
from binjax.baselines import METHODS, binarize_classic, list_methods
from binjax.metrics import fmeasure, ink_from_dibco_png

REQUIRED = {"otsu", "sauvola", "niblack", "wolf", "nick", "su", "gatos", "isauvola", "bataineh"}


def synthetic_page(height=120, width=180, seed=0):
    """A grey page: uneven paper with noise, dark strokes (about 12% ink).  Returns (grey, ink)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    paper = 190 + 30 * xx / width + rng.normal(0, 6, (height, width))
    ink = np.zeros((height, width), bool)
    for top in range(12, height - 20, 28):
        for left in range(10, width - 20, 22):
            ink[top:top + 14, left:left + 3] = True          # vertical stroke
            ink[top + 6:top + 9, left:left + 12] = True      # horizontal stroke
    grey = np.where(ink, 60 + rng.normal(0, 8, (height, width)), paper)
    return np.clip(grey, 0, 255).astype(np.uint8), ink


def test_registry_lists_the_required_methods():
    assert REQUIRED <= set(list_methods())
    assert list_methods() == sorted(METHODS)
    for name, method in METHODS.items():
        assert method.reference, name


@pytest.mark.parametrize("method", list_methods())
def test_every_method_on_a_synthetic_page(method):
    grey, ink = synthetic_page()
    out = binarize_classic(grey, method)
    assert out.dtype == bool and out.shape == grey.shape
    assert 0.03 < out.mean() < 0.6, f"{method}: ink fraction {out.mean():.3f}"
    if method != "niblack":  # Niblack marks paper noise as ink by design
        assert fmeasure(out, ink)[0] > 70, method


def test_every_method_on_a_real_crop(dibco_dir):
    grey = np.array(Image.open(dibco_dir / "2013" / "PR07_in.png").convert("L"))[60:220, 100:340]
    gt = ink_from_dibco_png(np.array(Image.open(dibco_dir / "2013" / "PR07_gt.png").convert("L"))[60:220, 100:340])
    for method in list_methods():
        out = binarize_classic(grey, method)
        assert out.shape == gt.shape and out.dtype == bool
        assert 0.02 < out.mean() < 0.6, f"{method}: ink fraction {out.mean():.3f}"
    assert fmeasure(binarize_classic(grey, "sauvola"), gt)[0] > 80


def _doxapy(grey, algorithm, params):
    out = np.empty_like(grey)
    b = doxapy.Binarization(getattr(doxapy.Binarization.Algorithms, algorithm))
    b.initialize(np.ascontiguousarray(grey))
    b.to_binary(out, params)
    return out == 0


def test_parameters_reach_doxapy_and_are_checked():
    grey, _ = synthetic_page()
    for method, params in [("sauvola", {"window": 15, "k": 0.9}), ("su", {"window": 9, "minN": 5}),
                           ("gatos", {"window": 31, "k": 0.3, "glyph": 30}), ("wolf", {})]:
        expected = _doxapy(grey, METHODS[method].algorithm, {**METHODS[method].defaults, **params})
        np.testing.assert_array_equal(binarize_classic(grey, method, **params), expected)
    assert (binarize_classic(grey, "sauvola", window=3, k=0.5) != binarize_classic(grey, "sauvola")).any()
    with pytest.raises(ValueError, match=r"'sauvola'.*'kk'.*\['k', 'window'\]"):
        binarize_classic(grey, "sauvola", kk=0.3)
    with pytest.raises(ValueError, match=r"'otsu'.*'window'.*none"):
        binarize_classic(grey, "otsu", window=15)
    with pytest.raises(ValueError, match="must be a number"):
        binarize_classic(grey, "wolf", k="0.5")
    with pytest.raises(ValueError, match=r"unknown method 'sauvolla'.*'otsu'"):
        binarize_classic(grey, "sauvolla")


def test_bad_images_are_refused():
    grey, _ = synthetic_page()
    with pytest.raises(ValueError, match="uint8"):
        binarize_classic(grey.astype(np.float32), "otsu")
    with pytest.raises(ValueError, match="H x W"):
        binarize_classic(np.stack([grey] * 3, -1), "otsu")
    # doxapy's Gatos would kill the process on these; we raise instead.
    with pytest.raises(ValueError, match="SIGFPE"):
        binarize_classic(np.full((64, 64), 200, np.uint8), "gatos")
    with pytest.raises(ValueError, match="SIGFPE"):
        binarize_classic(np.zeros((64, 64), np.uint8), "gatos")


def test_strided_input_gives_the_contiguous_answer():
    grey, _ = synthetic_page(120, 360)
    view = grey[:, ::2]
    assert not view.flags.c_contiguous
    for method in ("otsu", "sauvola", "su"):
        np.testing.assert_array_equal(binarize_classic(view, method),
                                      binarize_classic(np.ascontiguousarray(view), method))
    np.testing.assert_array_equal(binarize_classic(grey.T, "sauvola"),
                                  binarize_classic(np.ascontiguousarray(grey.T), "sauvola"))
    np.testing.assert_array_equal(binarize_classic(grey[..., None], "otsu"), binarize_classic(grey, "otsu"))


# Pages whose window comes near or past their size, and tiny ones: doxapy 0.9.2 crashed or lost
# ink on these before binarize_classic mirrored the page (the crash grid runs in
# tests/test_faults_pages.py, in child processes).
EDGE_SIZES = [(1, 1), (1, 9), (5, 5), (37, 37), (38, 200), (80, 80), (120, 180)]


@pytest.mark.parametrize("height,width", EDGE_SIZES)
def test_sauvola_niblack_otsu_agree_with_scikit_image_where_the_window_nears_the_page(height, width):
    from skimage.filters import threshold_niblack, threshold_otsu, threshold_sauvola

    grey, _ = synthetic_page(max(height, 40), max(width, 40), seed=height)
    grey = np.ascontiguousarray(grey[:height, :width])
    values = grey.astype(np.float64)
    largest_odd = max(3, min(height, width) - (min(height, width) % 2 == 0))

    def differ(ours, threshold):  # pixels on which the two disagree, ties (Doxa: <=) left out
        return ((ours != (values < threshold)) & (np.abs(values - threshold) > 1e-6)).mean()

    for window in (15, 75):
        used = min(window, largest_odd)  # the documented clamp
        ours = binarize_classic(grey, "sauvola", window=window, k=0.2)
        # Sauvola's R is 128 in Doxa; scikit-image's default is half the dtype range (127.5).
        threshold = threshold_sauvola(values, window_size=used, k=0.2, r=128)
        assert ours.shape == grey.shape
        assert differ(ours, threshold) <= 0.01, window
        assert ours.sum() >= 0.97 * (values < threshold).sum()  # doxapy alone lost 57-100 % here
        ours = binarize_classic(grey, "niblack", window=window, k=-0.2)
        # scikit-image's Niblack subtracts k * std where Doxa adds it.
        assert differ(ours, threshold_niblack(values, window_size=used, k=0.2)) <= 0.01, window
    if grey.min() < grey.max():
        assert differ(binarize_classic(grey, "otsu"), threshold_otsu(grey) + 0.5) <= 0.01


def test_parameter_values_are_checked_before_doxapy_sees_them():
    from binjax.errors import ConfigError

    grey, _ = synthetic_page(40, 40)
    for params, pattern in [({"window": 0}, r"window=0 .*\[3, "), ({"window": 15.5}, "integer"),
                            ({"k": float("nan")}, "k=nan"), ({"k": 1e9}, r"k=1000000000.0 .*\[-10")]:
        with pytest.raises(ConfigError, match=pattern):
            binarize_classic(grey, "sauvola", **params)
    with pytest.raises(ConfigError, match="window must be 0"):
        binarize_classic(grey, "su", window=2)
    assert binarize_classic(grey, "sauvola", window=4).shape == (40, 40)  # even windows run too
