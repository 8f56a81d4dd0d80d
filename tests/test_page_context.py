"""Page context as an extra model input channel (binjax/page_context.py): the channel, its sources,
its patches, training with it and binarizing with it."""

import numpy as np
import pytest
from PIL import Image

from binjax import binarizers, config_checks, contrast, imageio, inference, page_context, train
from binjax.data import pipeline, sources
from binjax.errors import ConfigError
from configs import default as default_config
from conftest import save_tiny_checkpoint
from test_contrast import shaded_page


def test_the_paper_channel_follows_the_shading_not_the_strokes():
    page, ink = shaded_page()
    paper = np.linspace(60.0, 220.0, page.shape[1])[None, :].repeat(page.shape[0], 0)
    channel = page_context.paper_channel(page)
    assert channel.dtype == np.uint8 and channel.shape == page.shape
    # Under the strokes (up to 40 % darker) the channel stays with the paper beside them; it is
    # smoothed over 81 px, so it lags a steep gradient by a few levels, never by a stroke's depth.
    inside = (slice(30, 130), slice(40, 200))
    error = np.abs(channel.astype(float) - paper)[inside]
    assert error[ink[inside]].max() < 12 and error.mean() < 6
    assert (page.astype(float) - paper)[ink].max() < -23  # the strokes it ignores are that much darker
    # A colour page's channel is that of its grey levels (ITU-R 601 luma).
    colour = np.stack([page, np.roll(page, 7, axis=1), page // 2], axis=-1)
    np.testing.assert_array_equal(page_context.paper_channel(colour),
                                  page_context.paper_channel(imageio.to_channels(colour, 1)[..., 0]))


def test_add_context_appends_one_channel_or_none():
    page, _ = shaded_page()
    grey = page[..., None]
    assert page_context.add_context(grey, "none") is grey
    with_paper = page_context.add_context(grey, "paper")
    assert with_paper.shape == page.shape + (2,) and with_paper.dtype == np.uint8
    np.testing.assert_array_equal(with_paper[..., 0], page)
    np.testing.assert_array_equal(with_paper[..., 1], page_context.paper_channel(page))
    assert page_context.add_context(np.repeat(grey, 3, axis=-1), "paper").shape[-1] == 4
    for bad in ("Paper", "otsu", ""):
        with pytest.raises(ConfigError, match=f"config.data.context={bad!r}"):
            page_context.add_context(grey, bad)
    config = default_config.get_config("smoke")
    assert page_context.model_channels(config.data) == 1
    config.data.update(context="paper", channels=3)
    assert page_context.model_channels(config.data) == 4
    config.data.context = "banana"
    with pytest.raises(ConfigError, match="config.data.context='banana'"):
        config_checks.check_config(config)


def _pages():
    page, ink = shaded_page()
    return [{"image": page[..., None], "mask": ink.astype(np.uint8)},
            {"image": page[::-1, ::-1, None].copy() // 2 + 40, "mask": ink[::-1, ::-1].astype(np.uint8)}]


def test_context_pages_prepare_each_page_once_as_inference_does():
    pages = _pages()
    wrapped = sources.ContextPages(pages, "stretch", "paper")
    for i, page in enumerate(pages):
        expected = page_context.add_context(contrast.stretch(page["image"]), "paper")
        np.testing.assert_array_equal(wrapped[i]["image"], expected)
        np.testing.assert_array_equal(wrapped[i]["mask"], page["mask"])
        assert wrapped[i]["image"] is wrapped[i]["image"] and not wrapped[i]["image"].flags.writeable
    # The validation patches are crops of those pages, context channel included.
    cfg = pipeline.default_data_config()
    cfg.patch_size = 48
    val = pipeline.validation_patches(wrapped, cfg, seed=0, num_patches=4)
    ref = pipeline.validation_patches([{"image": wrapped[i]["image"], "mask": p["mask"]} for i, p in enumerate(pages)],
                                      cfg, seed=0, num_patches=4)
    assert val["image"].shape == (4, 48, 48, 2)
    np.testing.assert_array_equal(val["image"], ref["image"])


def test_augmentations_treat_the_context_channel_like_the_image():
    # A page whose two channels are equal stays so through every augmentation but noise (drawn per
    # value): crops, flips, rotations and zooms move both alike, blur and the photometric
    # maps change both alike (channel by channel through Pillow, not as grey with alpha).
    page, ink = shaded_page()
    element = {"image": np.stack([page, page], axis=-1), "mask": ink.astype(np.uint8)}
    augment = pipeline.Augment(scale_range=(0.6, 1.6), blur_prob=1.0, noise_prob=0.0)
    sampler = pipeline.RandomPatch(64, 0.5, augment)
    for seed in range(6):
        out = sampler.random_map(element, np.random.default_rng(seed))
        assert out["image"].shape == (64, 64, 2) and out["mask"].shape == (64, 64, 1)
        np.testing.assert_array_equal(out["image"][..., 0], out["image"][..., 1])
        grey = pipeline.RandomPatch(64, 0.5, augment).random_map({"image": page[..., None], "mask": element["mask"]},
                                                                  np.random.default_rng(seed))
        np.testing.assert_array_equal(out["image"][..., :1], grey["image"])


def test_a_mix_prepares_each_real_page_once(tmp_path):
    config = default_config.get_config("smoke")
    config.data.update(source="mix", context="paper", contrast="stretch")
    config.data.mix.update(real="folder", synthetic_fraction=0.5)
    config.data.synthetic.update(train_pages=6, page_height=64, page_width=64)
    for which in ("train", "val"):
        folder = tmp_path / which
        folder.mkdir()
        for i, page in enumerate(_pages()):
            Image.fromarray(page["image"][..., 0]).save(folder / f"p{i}_in.png")
            Image.fromarray(np.where(page["mask"] > 0, 0, 255).astype(np.uint8)).save(folder / f"p{i}_gt.png")
        config.data.folder[which] = str(folder)
    train_source, val_source = sources.make_sources(config.data, 0)
    assert isinstance(train_source, sources.MixedPages) and isinstance(val_source, sources.ContextPages)
    assert isinstance(train_source.real, sources.ContextPages)
    assert isinstance(train_source.synthetic, sources.ContextPages)
    assert train_source.real_slots > len(train_source.real)  # each real page repeated in the mix ...
    for i in range(len(train_source)):
        assert train_source[i]["image"].shape[-1] == 2
    assert len(train_source.real._prepared) == len(train_source.real)  # ... and prepared once
    assert not train_source.synthetic._prepared  # synthetic pages: drawn and prepared on every read
    first = train_source[len(train_source) - 1]["image"]
    np.testing.assert_array_equal(train_source[len(train_source) - 1]["image"], first)


@pytest.mark.slow
def test_a_model_trained_with_paper_context_binarizes_with_it(tmp_path):
    config = default_config.get_config("smoke")
    config.data.context = "paper"
    scores = train.train_and_evaluate(config, tmp_path / "run", progress=False)
    assert np.isfinite(scores["val/f1"]) and np.isfinite(scores["val/otsu_f1"])
    binarizer = binarizers.ModelBinarizer(tmp_path / "run", tile=32, all_devices=False)
    assert binarizer._predict_fn.in_channels == 2 and "context=paper" in binarizer.description
    page, _ = shaded_page()
    # The model sees the page and its paper channel, at inference as in training.
    with_paper = page_context.add_context(page[..., None], "paper")
    expected = inference.sliding_window_predict(binarizer._predict_fn, with_paper, tile=32, batch_size=4, flip_tta=False)
    np.testing.assert_array_equal(binarizer.probability(page), expected)
    assert binarizer(page).shape == page.shape
    rescaled = binarizers.ModelBinarizer(tmp_path / "run", tile=32, rescale=2.0, all_devices=False)
    assert rescaled(page).shape == page.shape
    # A warm start from a model without the channel names the mismatch.
    config.init_from = str(save_tiny_checkpoint(tmp_path / "plain"))
    config.num_steps = 1
    with pytest.raises(ValueError, match="config.init_from"):
        train.train_and_evaluate(config, tmp_path / "warm", progress=False)
