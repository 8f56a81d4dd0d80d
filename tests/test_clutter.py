"""Clutter that is not ink (binjax/data/clutter.py) and the real + synthetic 'mix' source."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from binjax import config_checks, defaults
from binjax.data import clutter as clutter_lib
from binjax.data import pipeline, sources
from binjax.data.clutter import KINDS, Clutter
from binjax.data.synthetic import SyntheticDocuments, render_page
from binjax.errors import ConfigError

H, W = 96, 128


def _only(kind: str) -> Clutter:
    return Clutter(**{kind: 1.0})


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_renders_deterministically_changes_the_image_and_never_adds_ink(kind):
    for seed in range(3):
        channels = 1 + 2 * (seed % 2)
        plain = render_page(seed, H, W, channels)
        page = render_page(seed, H, W, channels, clutter=_only(kind))
        again = render_page(seed, H, W, channels, clutter=_only(kind))
        np.testing.assert_array_equal(page["image"], again["image"])
        np.testing.assert_array_equal(page["mask"], again["mask"])
        assert page["image"].shape == plain["image"].shape and page["image"].dtype == np.uint8
        changed = np.abs(page["image"].astype(int) - plain["image"].astype(int)).max(axis=-1) > 8
        assert changed.mean() > 0.005, f"{kind}, seed {seed}: the page hardly changed"
        if kind == "scan_border":
            # Off the page there is no ink; on it the mask is the plain page's.
            assert not (page["mask"] & ~plain["mask"]).any()
            cut = plain["mask"] != page["mask"]   # ink cut off: the bed is there now, not ink
            assert not cut.any() or changed[cut].mean() > 0.8
        else:
            # The ground truth is the front text's: every clutter pixel is background.
            np.testing.assert_array_equal(page["mask"], plain["mask"])


def test_all_probabilities_zero_is_the_plain_generator_bit_for_bit():
    assert Clutter.from_config(defaults.data_config().synthetic.clutter) is None
    assert Clutter().for_page(5, H, W, 1) is None
    docs = SyntheticDocuments(3, H, W, 3, seed=4)
    _, val = sources.make_sources(defaults.data_config(), seed=4)
    assert val.clutter is None and docs.clutter is None
    for i in range(3):
        page = SyntheticDocuments(3, H, W, 3, seed=4, clutter=Clutter.from_config(
            defaults.data_config().synthetic.clutter))[i]
        np.testing.assert_array_equal(page["image"], docs[i]["image"])


def test_probabilities_pick_kinds_per_page_and_a_page_draws_alike():
    half = Clutter(stamp=0.5)
    chosen = [half.for_page(s, H, W, 1) for s in range(200)]
    assert 70 < sum(c is not None for c in chosen) < 130
    assert half.for_page(7, H, W, 1).__repr__() == half.for_page(7, H, W, 1).__repr__()


def test_bleed_through_ranges_from_faint_to_as_dark_as_the_front_ink():
    """How dark the back page's text gets, relative to the front ink's contrast with the paper."""
    depths = []
    for seed in range(16):
        plain = render_page(seed, 128, 128, 1)
        page = render_page(seed, 128, 128, 1, clutter=_only("bleed_through"))
        ink = plain["mask"].astype(bool)
        if ink.sum() < 50:
            continue
        grey_plain, grey = plain["image"][..., 0].astype(float), page["image"][..., 0].astype(float)
        far = np.asarray(Image.fromarray(ink.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) == 0
        contrast = np.median(grey_plain[far]) - np.median(grey_plain[ink])
        depths.append(np.percentile((grey_plain - grey)[far], 99.5) / max(contrast, 1))
    assert min(depths) < 0.45 and max(depths) > 0.8, depths


def test_real_colours_come_from_the_measured_table():
    table = clutter_lib.real_colours()
    assert {"dibco2013", "bickley", "monk_cuper", "msi2015", "nabuco", "phibd"} <= set(table)
    for pages in table.values():
        for paper, ink in pages:
            assert paper.shape == ink.shape == (3,) and 0 <= ink.min() and paper.max() <= 1
    page = Clutter(real_colours=1.0, colour_collections="monk_cuper").for_page(3, H, W, 3)
    measured = np.array([p for p, _ in table["monk_cuper"]])
    for _ in range(10):
        paper, ink1, ink2 = page.colours(None, None, None)
        assert np.abs(measured - paper).max(axis=1).min() < 0.09   # a monk_cuper page's paper, jittered
        assert (ink1 < paper).all() and (ink2 < paper).all()
    with pytest.raises(ValueError, match="colour_collections: no measured colours for \\['dibco2099'\\]"):
        Clutter(colour_collections="dibco2099")


def test_faintest_ink_bounds_the_measured_inks_and_its_default_keeps_msi2015s_faint_ink():
    def lightest_ink(faintest, collection="msi2015"):
        ratios = []
        for seed in range(40):
            page = Clutter(real_colours=1.0, colour_collections=collection,
                           **({} if faintest is None else {"faintest_ink": faintest})).for_page(seed, H, W, 3)
            paper, ink1, ink2 = page.colours(None, None, None)
            ratios += [ink1 / paper, ink2 / paper]
        return np.max(ratios)
    # msi2015's ink is nearly paper-coloured (real_colours.json, ink/paper luma median 0.88).
    assert lightest_ink(None) > 0.85
    assert lightest_ink(0.6) <= 0.6 + 1e-9
    # The bound only lowers light inks: a collection whose inks are all darker draws alike.
    assert lightest_ink(0.92, "nabuco") == lightest_ink(0.8, "nabuco")
    with pytest.raises(ValueError, match=r"faintest_ink=1.2: must be a fraction of the paper in \(0, 1\)"):
        Clutter(faintest_ink=1.2)


def test_faded_ink_sets_the_share_of_faded_pages_and_never_the_mask():
    assert Clutter.from_config({"faded_ink": 0.5}) is None   # the generator's own share: plain
    unfaded, faded = Clutter(faded_ink=0.0), Clutter(faded_ink=1.0)
    assert unfaded.for_page(0, H, W, 1) is not None   # no kind drawn, yet the page is not plain

    def contrast(clutter, seed):   # the front ink's darkness against the paper's
        page = render_page(seed, H, W, 1, clutter=clutter)
        ink = page["mask"] > 0
        paper = np.median(page["image"][~ink])
        return (paper - np.median(page["image"][ink])) / paper, page["mask"]

    gains = []
    for seed in range(12):
        (c0, m0), (c1, m1) = contrast(unfaded, seed), contrast(faded, seed)
        np.testing.assert_array_equal(m0, m1)   # faded ink is still ink
        np.testing.assert_array_equal(m0, render_page(seed, H, W, 1)["mask"])
        gains.append(c0 - c1)
    assert np.median(gains) > 0.05
    with pytest.raises(ValueError, match=r"faded_ink=2: must be a share of the pages in \[0, 1\]"):
        Clutter(faded_ink=2)


def test_darkest_bleed_caps_the_bleed_through_and_its_default_reaches_the_front_inks_darkness():
    def darkest(cap):
        pages = [Clutter(bleed_through=1.0, darkest_bleed=cap).for_page(seed, H, W, 1) for seed in range(20)]
        return max(float(page._back_page().max()) for page in pages)
    assert darkest(0.5) <= 0.5 and darkest(1.0) > 0.7
    with pytest.raises(ValueError, match=r"darkest_bleed=0.1: must be a fraction of the front ink's darkness"):
        Clutter(darkest_bleed=0.1)


def test_paper_shading_lightens_the_paper_where_light_and_stains_fall_and_never_the_mask():
    assert Clutter.from_config({"paper_shading": 1.0}) is None   # the generator's own depth: plain
    flat, deep = Clutter(paper_shading=0.0), Clutter(paper_shading=1.0)
    assert flat.for_page(0, H, W, 1) is not None   # no kind drawn, yet the page is not plain
    lighter = []
    for seed in range(12):
        a, b = render_page(seed, H, W, 1, clutter=flat), render_page(seed, H, W, 1)
        np.testing.assert_array_equal(a["mask"], b["mask"])
        np.testing.assert_array_equal(render_page(seed, H, W, 1, clutter=deep)["image"], b["image"])
        paper = a["mask"] == 0
        lighter.append(np.percentile(a["image"][paper], 5) - np.percentile(b["image"][paper], 5))
    assert min(lighter) >= -2 and sum(x > 5 for x in lighter) >= 3   # the darkest paper lifts on shaded pages
    with pytest.raises(ValueError, match=r"paper_shading=-0.5: must be a fraction of the shading's depth"):
        Clutter(paper_shading=-0.5)


def test_bad_clutter_and_mix_settings_fail_in_one_line_naming_the_key():
    config = defaults.base_config()
    config.data.synthetic.clutter.stamp = 1.5
    with pytest.raises(ConfigError, match=r"^config.data.synthetic.clutter: stamp=1.5: must be a probability"):
        config_checks.check_config(config)
    config = defaults.base_config()
    config.data.source = "mix"
    config.data.mix.synthetic_fraction = 2.0
    with pytest.raises(ConfigError, match=r"config.data.mix.synthetic_fraction=2.0"):
        config_checks.check_config(config)
    config.data.mix.update(synthetic_fraction=0.5, real="synthetic")
    with pytest.raises(ConfigError, match=r"config.data.mix.real='synthetic': must be one of"):
        config_checks.check_config(config)
    config.data.mix.real = "folder"
    with pytest.raises(ConfigError, match=r"config.data.folder.train is empty"):
        config_checks.check_config(config)


class _Grey:
    """A 'real' source of flat grey pages (value 7, no ink): a patch from it is all 7."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"image": np.full((48, 48, 1), 7, np.uint8), "mask": np.zeros((48, 48), np.uint8)}


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_mix_source_gives_the_fraction_of_synthetic_patches_asked_for(fraction):
    mixed = sources.MixedPages.with_fraction(
        _Grey(), fraction, 40, lambda n: SyntheticDocuments(n, 48, 48, 1, seed=0, clutter=Clutter(ruled=1.0)))
    exact = sum(mixed.is_synthetic(i) for i in range(len(mixed))) / len(mixed)
    assert abs(exact - fraction) <= 1 / len(mixed) and mixed.real_slots % 5 == 0
    cfg = defaults.data_config()
    cfg.patch_size, cfg.fg_patch_fraction, cfg.augment.enabled, cfg.read_threads = 16, 0.0, False, 0
    it = iter(pipeline.train_dataset(mixed, cfg, seed=3, batch_size=8))
    batches = [next(it)["image"] for _ in range(30)]
    real = np.concatenate([(b == 7).reshape(8, -1).all(axis=1) for b in batches])
    # 240 patches: a binomial's standard deviation is 0.028 at 0.5; 4 of them either way.
    assert abs((1 - real.mean()) - fraction) < 0.11


def test_make_sources_mix_over_a_folder_validates_on_the_real_pages(tmp_path):
    for split in ("train", "val"):
        folder = tmp_path / split
        folder.mkdir()
        for k in range(2):
            page = render_page(100 + k + 10 * (split == "val"), 64, 64, 1)
            Image.fromarray(page["image"][..., 0]).save(folder / f"p{k}_in.png")
            Image.fromarray(np.where(page["mask"] == 1, 0, 255).astype(np.uint8)).save(folder / f"p{k}_gt.png")
    cfg = defaults.data_config()
    cfg.source = "mix"
    cfg.mix.update(real="folder", synthetic_fraction=0.5)
    cfg.folder.update(train=str(tmp_path / "train"), val=str(tmp_path / "val"))
    cfg.synthetic.update(train_pages=6, page_height=64, page_width=64)
    cfg.synthetic.clutter.bleed_through = 1.0
    train, val = sources.make_sources(cfg, seed=0)
    assert isinstance(train, sources.MixedPages) and len(train) == 12 and train.real_slots == 6
    assert train.synthetic.clutter == Clutter(bleed_through=1.0) and len(val) == 2
    cfg.mix.synthetic_fraction = 0.0
    train, _ = sources.make_sources(cfg, seed=0)
    assert len(train) == 2 and not isinstance(train, sources.MixedPages)
    cfg.mix.synthetic_fraction = 1.0   # synthetic only, still validated on the real pages
    train, val = sources.make_sources(cfg, seed=0)
    assert isinstance(train, SyntheticDocuments) and len(train) == 6 and len(val) == 2


def test_synthetic_mix_arms():
    from configs.ablations import synthetic_mix  # noqa: PLC0415

    mix = synthetic_mix.get_config("msi2015,smoke")
    assert (mix.data.source, mix.data.mix.real, mix.data.mix.synthetic_fraction) == ("mix", "collections", 0.5)
    assert "msi2015" not in mix.data.synthetic.clutter.colour_collections.split(",")   # the test fold
    assert mix.data.collections.test == "msi2015" and mix.data.synthetic.clutter.bleed_through > 0
    assert mix.data.contrast == "stretch"   # built on the chosen recipe, synthetic pages stretched too
    pretrain = synthetic_mix.get_config("msi2015,pretrain")
    assert (pretrain.data.source, pretrain.data.mix.synthetic_fraction) == ("mix", 1.0)
    finetune = synthetic_mix.get_config("msi2015,finetune")
    assert finetune.data.source == "collections" and finetune.init_from.endswith("arg=msi2015,seed=0")
    assert pretrain.data.contrast == finetune.data.contrast == "stretch"
    polish = synthetic_mix.get_config("msi2015,polish")   # real pages, briefly, from the mix run's weights
    assert polish.data.source == "collections" and polish.num_steps == synthetic_mix.POLISH_STEPS
    assert polish.init_from.endswith("arg=msi2015,data.mix.synthetic_fraction=0.5,seed=0")
    assert polish.optimizer.learning_rate == mix.optimizer.learning_rate / 4 and polish.data.contrast == "stretch"
    runs = synthetic_mix.get_sweep(None)
    assert {r["data.mix.synthetic_fraction"] for r in runs} == {0.0, 0.25, 0.5}
    faint_out = [r for r in runs if "data.synthetic.clutter.faintest_ink" in r]
    assert len(faint_out) == 2 * len(synthetic_mix.cross_collection.FOLDS)   # every fold, two seeds
    assert {(r["data.mix.synthetic_fraction"], r["data.synthetic.clutter.faintest_ink"]) for r in faint_out} == {(0.5, 0.6)}
    longer = [r for r in runs if "num_steps" in r]   # the recipe's real patches, half of them synthetic
    assert len(longer) == len(faint_out) and {(r["data.mix.synthetic_fraction"], r["num_steps"]) for r in longer} == {
        (0.5, 2 * synthetic_mix.get_config("msi2015").num_steps)}
    for key, value in (("faded_ink", 0.0), ("darkest_bleed", 0.5), ("paper_shading", 0.0)):   # one suspect off in each arm
        arm = [r for r in runs if f"data.synthetic.clutter.{key}" in r]
        assert len(arm) == len(faint_out) and {(r["data.mix.synthetic_fraction"], r[f"data.synthetic.clutter.{key}"])
                                               for r in arm} == {(0.5, value)}


def _script(name: str):
    import importlib.util  # noqa: PLC0415
    import pathlib  # noqa: PLC0415

    path = pathlib.Path(__file__).resolve().parents[1] / "data" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"data_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_colours_finds_a_known_paper_and_ink(tmp_path):
    image = np.full((60, 80, 3), (200, 180, 150), np.uint8)
    gt = np.full((60, 80), 255, np.uint8)
    image[20:40, 30:50] = (60, 40, 30)
    gt[20:40, 30:50] = 0
    Image.fromarray(image).save(tmp_path / "p_in.png")
    Image.fromarray(gt).save(tmp_path / "p_gt.png")
    paper, ink = _script("measure_colours").page_colours(tmp_path / "p_in.png", tmp_path / "p_gt.png")
    assert paper == [200, 180, 150] and ink == [60, 40, 30]


def test_make_samples_with_clutter_keeps_the_plain_ground_truth(tmp_path):
    make_samples = _script("make_samples")
    make_samples.main(["--num_pages", "2", "--height", "64", "--width", "64", "--out", str(tmp_path / "plain")])
    make_samples.main(["--num_pages", "2", "--height", "64", "--width", "64", "--clutter", "stamp,ruled",
                       "--out", str(tmp_path / "cluttered")])
    for name in ("synthetic_00_grey", "synthetic_01_rgb"):
        plain, cluttered = (np.asarray(Image.open(tmp_path / d / f"{name}_{s}.png"))
                            for d in ("plain", "cluttered") for s in ("gt",))
        np.testing.assert_array_equal(plain, cluttered)
        assert not np.array_equal(*(np.asarray(Image.open(tmp_path / d / f"{name}_in.png"))
                                    for d in ("plain", "cluttered")))
    with pytest.raises(SystemExit):
        make_samples.main(["--clutter", "coffee", "--out", str(tmp_path / "bad")])


def test_overview_sheet_has_a_row_per_kind_and_one_for_all():
    sheet = _script("make_clutter_overview").overview(pages=2, size=40, seed=0)
    assert sheet.size == (96 + 2 * (2 * 40 + 4), (len(KINDS) + 1) * (40 + 4))
    assert np.asarray(sheet).std() > 20   # pages drawn, not a blank sheet
