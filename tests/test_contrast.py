"""Page contrast normalization (binjax/contrast.py), its inference option and its flag."""

import numpy as np
import pytest

from binjax import binarizers, config_checks, contrast, inference
from binjax.data import pipeline, sources
from binjax.errors import ConfigError
from configs import default as default_config
from conftest import binarize_with_bad_flag, save_tiny_checkpoint


def faint_page(size: int = 96, seed: int = 0) -> np.ndarray:
    """A grey page whose ink is only 12 levels darker than its paper, with a little noise."""
    rng = np.random.default_rng(seed)
    page = np.full((size, size), 200.0)
    page[20:30, 10:80] = 188.0
    page[50:80, 40:46] = 188.0
    return np.clip(page + rng.normal(0, 1.5, page.shape), 0, 255).round().astype(np.uint8)


def test_percentile_levels_match_numpy_on_integer_levels():
    rng = np.random.default_rng(1)
    page = rng.integers(30, 220, size=(123, 77), dtype=np.uint8)
    lo, hi = contrast.percentile_levels(page)
    # The histogram's levels are the 'inverted_cdf' percentiles: the smallest level reaching p %.
    assert (lo, hi) == tuple(int(v) for v in np.percentile(page, [1, 99], method="inverted_cdf"))
    with pytest.raises(ValueError, match="uint8"):
        contrast.percentile_levels(page.astype(np.float32))


def test_stretch_spans_the_range_and_keeps_the_order():
    page = faint_page()
    out = contrast.stretch(page)
    assert out.dtype == np.uint8 and out.shape == page.shape
    lo, hi = contrast.percentile_levels(page)
    assert (out[page <= lo] == 0).all() and (out[page >= hi] == 255).all()
    # Monotone: a darker input pixel is never lighter out.
    order = np.argsort(page.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()
    # Ink 12 levels below the paper comes out far below it.
    ink, paper = np.zeros(page.shape, bool), np.ones(page.shape, bool)
    ink[20:30, 10:80] = ink[50:80, 40:46] = True
    paper[ink] = False
    assert out[paper].mean() - out[ink].mean() > 150


def test_stretch_uses_one_map_for_every_channel_and_leaves_a_blank_page():
    grey = faint_page()
    colour = np.stack([grey, np.clip(grey.astype(int) - 20, 0, 255).astype(np.uint8), grey], axis=-1)
    out = contrast.stretch(colour)
    lo, hi = contrast.percentile_levels(colour)
    table = np.clip(np.rint((np.arange(256) - lo) * 255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, table[colour])
    blank = np.full((40, 50), 231, np.uint8)
    assert contrast.stretch(blank) is blank


def test_parse_contrast_and_normalize():
    assert contrast.parse_contrast(None) is None and contrast.parse_contrast("") is None  # the model's own
    assert contrast.parse_contrast("none") == "none" and contrast.parse_contrast("stretch") == "stretch"
    page = faint_page()
    assert contrast.normalize(page, None) is page and contrast.normalize(page, "none") is page
    for bad in ("banana", "Stretch", "auto"):
        with pytest.raises(ConfigError, match=f"--contrast={bad}"):
            contrast.parse_contrast(bad)
    with pytest.raises(ConfigError, match="--contrast"):
        binarizers.make_binarizers(methods=["otsu"], contrast="banana")  # before any model loads


def test_model_binarizer_sees_the_stretched_page(tiny_grey_workdir):
    page = faint_page()
    plain = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, all_devices=False)
    none = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, contrast="none", all_devices=False)
    stretched = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, contrast="stretch", all_devices=False)
    # 'none' is the plain path, bit for bit.
    reference = inference.binarize_page(plain._predict_fn, page[..., None], tile=32)
    np.testing.assert_array_equal(none(page), reference)
    np.testing.assert_array_equal(none.probability(page), plain.probability(page))
    # 'stretch' is the plain path on the stretched page, for both the mask and the probabilities.
    expected = inference.binarize_page(plain._predict_fn, contrast.stretch(page)[..., None], tile=32)
    np.testing.assert_array_equal(stretched(page), expected)
    np.testing.assert_array_equal(stretched.probability(page), plain.probability(contrast.stretch(page)))
    assert "contrast=stretch" in stretched.description and "contrast" not in plain.description
    # With --rescale the stretch comes first (the probability path), and the page keeps its size.
    both = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, contrast="stretch", rescale=2.0, all_devices=False)
    assert both(page).shape == page.shape


def test_bad_contrast_flag_is_one_line(tmp_path):
    binarize_with_bad_flag(tmp_path, faint_page(64), "--contrast=banana")


def test_a_model_trained_on_stretched_pages_gets_them_unless_told(tmp_path, tiny_grey_workdir):
    trained_stretched = save_tiny_checkpoint(tmp_path / "stretched", channels=1, contrast="stretch")
    page = faint_page()
    plain = binarizers.ModelBinarizer(tiny_grey_workdir, tile=32, all_devices=False)
    assert plain.contrast == "none"  # a model without data.contrast (every released one): plain pages
    default = binarizers.ModelBinarizer(trained_stretched, tile=32, all_devices=False)
    assert default.contrast == "stretch" and "contrast=stretch" in default.description
    np.testing.assert_array_equal(default.probability(page),
                                  inference.sliding_window_predict(default._predict_fn, contrast.stretch(page)[..., None],
                                                                   tile=32, batch_size=4, flip_tta=False))
    told = binarizers.ModelBinarizer(trained_stretched, tile=32, contrast="none", all_devices=False)
    np.testing.assert_array_equal(told.probability(page),
                                  inference.sliding_window_predict(told._predict_fn, page[..., None],
                                                                   tile=32, batch_size=4, flip_tta=False))


def _pages(n: int = 3) -> list[dict]:
    rng = np.random.default_rng(3)
    pages = []
    for i in range(n):
        image = faint_page(120 + 10 * i, seed=i)
        mask = (image < 195).astype(np.uint8)
        pages.append({"image": image[..., None], "mask": mask})
    return pages + [{"image": rng.integers(0, 256, (90, 70, 1), dtype=np.uint8), "mask": np.zeros((90, 70), np.uint8)}]


def test_training_and_validation_patches_are_crops_of_the_stretched_page():
    pages = _pages()
    wrapped = sources.ContrastPages(pages, "stretch")
    assert len(wrapped) == len(pages)
    for i, page in enumerate(pages):
        assert wrapped[i]["contrast_levels"] == contrast.percentile_levels(page["image"])
        assert wrapped[i]["contrast_levels"] is wrapped[i]["contrast_levels"]  # computed once per page
    cfg = pipeline.default_data_config()
    cfg.patch_size = 48
    augment = pipeline.Augment.from_config(cfg.augment)
    sampler = pipeline.RandomPatch(48, 0.5, augment)
    for i, page in enumerate(pages):
        # No photometric change, so the sampler's crop of the stretched page is exactly comparable.
        no_colour = pipeline.RandomPatch(48, 0.5, pipeline.Augment(contrast=None, brightness=None, gamma=None,
                                                                    blur_prob=0.0, noise_prob=0.0))
        out = no_colour.random_map(wrapped[i], np.random.default_rng(i))
        ref = no_colour.random_map({"image": contrast.stretch(page["image"]), "mask": page["mask"]},
                                   np.random.default_rng(i))
        np.testing.assert_array_equal(out["mask"], ref["mask"])
        assert np.abs(out["image"].astype(int) - ref["image"].astype(int)).max() <= 1  # resize rounding
        assert sampler.random_map(wrapped[i], np.random.default_rng(i))["image"].shape == (48, 48, 1)
    val = pipeline.validation_patches(wrapped, cfg, seed=0, num_patches=4)
    ref = pipeline.validation_patches([{"image": contrast.stretch(p["image"]), "mask": p["mask"]} for p in pages],
                                      cfg, seed=0, num_patches=4)
    np.testing.assert_array_equal(val["image"], ref["image"])
    np.testing.assert_array_equal(val["mask"], ref["mask"])


def test_config_contrast_wraps_the_sources_and_is_checked():
    config = default_config.get_config("smoke")
    plain_train, _ = sources.make_sources(config.data, 0)
    assert not isinstance(plain_train, sources.ContrastPages)
    config.data.contrast = "stretch"
    train, val = sources.make_sources(config.data, 0)
    assert isinstance(train, sources.ContrastPages) and train.mode == val.mode == "stretch"
    assert "contrast_levels" in train[0]
    config.data.contrast = "banana"
    with pytest.raises(ConfigError, match="config.data.contrast='banana'"):
        config_checks.check_config(config)


def shaded_page(height: int = 160, width: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """(page, ink mask): paper from grey 60 (left) to 220 (right), strokes 40 % darker than the
    paper under them."""
    paper = np.linspace(60.0, 220.0, width)[None, :].repeat(height, 0)
    ink = np.zeros((height, width), bool)
    for x in range(10, width - 10, 24):  # thin vertical strokes (3 px) across the whole gradient
        ink[20:140, x:x + 3] = True
    ink[70:73, 10:width - 10] = True  # and one long horizontal stroke
    page = np.where(ink, paper * 0.6, paper)
    return np.clip(np.rint(page), 0, 255).astype(np.uint8), ink


def test_paper_follows_the_shading_and_ignores_the_strokes():
    page, ink = shaded_page()
    estimate = contrast.paper(page)
    truth = np.linspace(60.0, 220.0, page.shape[1])[None, :].repeat(page.shape[0], 0)
    assert estimate.shape == page.shape and estimate.dtype == np.float32
    # Within 6 levels of the true paper everywhere but the outer margin the box filter blurs.
    inner = np.s_[:, 45:-45]
    assert np.abs(estimate[inner] - truth[inner]).max() < 6, np.abs(estimate - truth).max()
    with pytest.raises(ValueError, match="uint8 HxW"):
        contrast.paper(page.astype(np.float32))


def test_flatten_evens_out_the_paper_and_keeps_ink_on_the_dark_side():
    page, ink = shaded_page()
    flat = contrast.flatten(page)
    assert flat.dtype == np.uint8 and flat.shape == page.shape
    inner = np.zeros(page.shape, bool)
    inner[:, 45:-45] = True
    left, right = np.zeros(page.shape, bool), np.zeros(page.shape, bool)
    left[:, 45:60] = True
    right[:, -60:-45] = True
    # On the plain page the paper of the dark side is darker than the ink of the light side; one
    # threshold cannot separate them. Flattened, the paper is one level and every stroke is below it.
    assert page[left & ~ink].max() < page[right & ink].min()
    assert flat[inner & ~ink].std() < 8
    assert flat[inner & ink].max() < flat[inner & ~ink].min()
    # The colour path divides each channel by its own paper (a tinted, shaded page comes out grey).
    tinted = np.stack([page, np.clip(page.astype(int) - 30, 0, 255).astype(np.uint8), page], axis=-1)
    flat_colour = contrast.flatten(tinted)
    assert flat_colour.shape == tinted.shape
    assert np.abs(flat_colour[inner & ~ink].astype(int) - flat[inner & ~ink, None]).mean() < 10


def test_flatten_turns_a_wide_dark_border_into_paper():
    page, ink = shaded_page()
    page = page.copy()
    page[:, -50:] = 20  # a black scan edge far wider than any stroke (and than the window/2)
    flat = contrast.flatten(page, window=41)
    ratio = flat[:, -30:].mean()
    assert ratio > 200, ratio  # paper-white, not a band of ink
    assert flat[:, :-60][ink[:, :-60]].mean() < 150  # the strokes stay ink


def test_training_on_flattened_pages_crops_the_flattened_page():
    assert contrast.parse_contrast("flatten") == "flatten"
    page = faint_page()
    np.testing.assert_array_equal(contrast.normalize(page, "flatten"), contrast.flatten(page))
    config = default_config.get_config("smoke")
    config.data.contrast = "flatten"
    config_checks.check_config(config)
    train, val = sources.make_sources(config.data, 0)
    assert isinstance(train, sources.ContrastPages) and train.mode == val.mode == "flatten"
    shaded, ink = shaded_page()
    flat_source = sources.ContrastPages([{"image": shaded[..., None], "mask": ink.astype(np.uint8)}], "flatten")
    element = flat_source[0]
    np.testing.assert_array_equal(element["image"], contrast.flatten(shaded[..., None]))
    assert flat_source[0]["image"] is element["image"]  # flattened once, then kept
    with pytest.raises(ValueError):
        element["image"][0, 0, 0] = 1  # the cache is read-only
    # Training and validation patches are crops of the flattened page (no photometric change).
    mask = ink.astype(np.uint8)
    no_colour = pipeline.RandomPatch(48, 0.5, pipeline.Augment(contrast=None, brightness=None, gamma=None,
                                                                blur_prob=0.0, noise_prob=0.0))
    out = no_colour.random_map(element, np.random.default_rng(3))
    ref = no_colour.random_map({"image": contrast.flatten(shaded)[..., None], "mask": mask}, np.random.default_rng(3))
    np.testing.assert_array_equal(out["mask"], ref["mask"])
    assert np.abs(out["image"].astype(int) - ref["image"].astype(int)).max() <= 1  # resize rounding
    cfg = pipeline.default_data_config()
    cfg.patch_size = 48
    val = pipeline.validation_patches(flat_source, cfg, seed=0, num_patches=3)
    ref = pipeline.validation_patches([{"image": contrast.flatten(shaded)[..., None], "mask": mask}], cfg,
                                      seed=0, num_patches=3)
    np.testing.assert_array_equal(val["image"], ref["image"])
