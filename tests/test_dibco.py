"""binjax.data.dibco: the tfds builder, its protocols, the official layouts, TF-free reading."""

import csv
import importlib.abc
import itertools
import pickle
import shutil
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from binjax import defaults, imageio
from binjax.data import dibco, pipeline, sources

# Two small 2009 pages, one grey and one colour: every record path is covered by a tiny build.
SMALL_YEAR, SMALL_PAGES = 2009, ("H03", "P05")


def _manifest(dibco_dir):
    with open(dibco_dir / "MANIFEST.tsv", newline="") as f:
        return {(int(r["year"]), r["name"]): r for r in csv.DictReader(f, delimiter="\t")}


class _TensorFlowImports(importlib.abc.MetaPathFinder):
    """Records imports of TensorFlow. "Is it installed?" probes are not imports: etils asks
    importlib.util.find_spec('tensorflow'), which reaches this finder by another caller."""

    def __init__(self):
        self.imports = []

    def find_spec(self, name, path=None, target=None):
        importing = sys._getframe(2).f_code.co_name == "_find_and_load_unlocked"
        if importing and name.split(".")[0] == "tensorflow":
            self.imports.append(name)
        return None  # finds nothing: the real finders decide


@pytest.fixture(scope="module")
def _built():
    return {}


@pytest.fixture
def small_year(dibco_dir, tmp_path_factory, _built):
    """dibco/2009 built from copies of two small shared pages (built once per module)."""
    if "small" not in _built:
        manual = tmp_path_factory.mktemp("manual")
        (manual / str(SMALL_YEAR)).mkdir()
        for name in SMALL_PAGES:
            for part in ("in", "gt"):
                shutil.copy(dibco_dir / str(SMALL_YEAR) / f"{name}_{part}.png", manual / str(SMALL_YEAR))
        data_dir = tmp_path_factory.mktemp("tfds")
        dibco.prepare(manual, data_dir, str(SMALL_YEAR))
        _built["small"], _built["manual"] = data_dir, manual
    return _built["small"]


# ----------------------------------------------------------------------------- pure logic


def test_protocol_years():
    shared = [2009, 2010, 2011, 2012, 2013, 2014, 2016]
    assert dibco.config_years("fixed", shared) == {
        "train": [2009, 2010, 2011, 2012, 2014, 2016], "test": [2013]}
    assert dibco.config_years("loyo_2013", shared) == {
        "train": [2009, 2010, 2011, 2012, 2014, 2016], "test": [2013]}
    assert dibco.config_years("loyo_2009", shared + [2018]) == {
        "train": [2010, 2011, 2012, 2013, 2014, 2016, 2018], "test": [2009]}
    assert dibco.config_years("2012", shared) == {"test": [2012]}
    with pytest.raises(ValueError, match=r"needs DIBCO year\(s\) \[2013\]"):
        dibco.config_years("fixed", [y for y in shared if y != 2013])
    with pytest.raises(ValueError, match=r"\[2017\]"):
        dibco.config_years("2017", shared)
    with pytest.raises(ValueError, match="no training year"):
        dibco.config_years("loyo_2010", [2010])
    with pytest.raises(ValueError, match="unknown DIBCO config"):
        dibco.config_years("2015x", shared)
    assert set(dibco.CONFIG_NAMES) >= {"2009", "2019", "fixed", "loyo_2013", "loyo_2019"}
    assert dibco.config_from_name("dibco/loyo_2011") == "loyo_2011"
    with pytest.raises(ValueError, match="not a DIBCO dataset"):
        dibco.config_from_name("mnist/fixed")


def test_year_of_folder_names():
    assert dibco.year_of("2013") == 2013
    assert dibco.year_of("DIBC02009_Test_images-handwritten") == 2009  # the official typo
    assert dibco.year_of("DIBCO11-machine_printed") == 2011
    assert dibco.year_of("H-DIBCO2012-dataset") == 2012
    assert dibco.year_of("DIPCO2016_Dataset_GT") == 2016
    assert dibco.year_of("GTimages") is None
    assert dibco.year_of("DIBCO2009-2019") is None  # several years: searched deeper instead


# ----------------------------------------------------------------------------- official layouts


def _page(height, width, seed):
    """(RGB image, ink mask): dark strokes on light paper."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    mask[rng.integers(0, height, 12), :] = 1
    grey = np.where(mask == 1, 30, 220).astype(np.uint8)
    return np.stack([grey, grey, np.maximum(grey, 60)], -1), mask


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _write_mask(path, mask01, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.save_mask(path, mask01, foreground="black", **kwargs)


def _official_tree(root):
    """Fake extracted archives of 2009 (GT by folder) and 2010 (GT by suffix), tiny pages."""
    pages = {}
    specs = [
        (2009, "H01", "DIBC02009_Test_images-handwritten/H01.bmp",
         "DIBCO2009-GT-Test-images_handwritten/H01.tiff", True),
        (2009, "P01", "DIBCO2009_Test_images-printed/P01.bmp",
         "DIBCO2009-GT-Test-images_printed/P01.tiff", False),
        (2010, "H01", "H_DIBCO2010_test_images/H01.tif", "H_DIBCO2010_GT/H01_estGT.tiff", False),
        (2010, "H02", "H_DIBCO2010_test_images/H02.jpg", "H_DIBCO2010_GT/H02_estGT.tiff", True),
    ]
    for seed, (year, name, image_rel, gt_rel, grey) in enumerate(specs):
        rgb, mask = _page(20 + seed, 28, seed)
        if grey:  # a grey page saved as 24-bit RGB, as the 2009 BMPs are
            rgb = np.repeat(rgb[..., :1], 3, -1)
        _write(root / image_rel, rgb)
        _write_mask(root / gt_rel, mask, bits=1)  # 1-bit TIFF, ink 0, as the official GTs
        pages[(year, name)] = (root / image_rel, mask)
    # Skeleton ground truths sit beside the 2010 estimated GTs; they must be ignored.
    _write_mask(root / "H_DIBCO2010_GT/H01_skelGT.tiff", np.zeros((20, 28), np.uint8))
    return pages


def test_official_layouts_found_and_paired(tmp_path):
    _official_tree(tmp_path)
    folders = dibco.find_year_folders(tmp_path)
    assert sorted(folders) == [2009, 2010] and len(folders[2009]) == 4
    found = {y: dibco.find_pages(y, folders[y]) for y in folders}
    assert [p.name for p in found[2009]] == ["H01", "P01"]
    assert found[2009][0].mask.parent.name == "DIBCO2009-GT-Test-images_handwritten"
    assert [(p.name, p.mask.name) for p in found[2010]] == [("H01", "H01_estGT.tiff"),
                                                           ("H02", "H02_estGT.tiff")]
    # Later years: GT folders without a year (2013 GTimages, 2019 GT) inside a year folder,
    # converted copies with a year prefix and _gt suffix.
    _write(tmp_path / "DIBCO2013/OriginalImages/HW01.bmp", _page(8, 8, 0)[0])
    _write(tmp_path / "DIBCO2013/GTimages/HW01_estGT.tiff", np.full((8, 8), 255, np.uint8))
    _write(tmp_path / "data/2019/Dataset/1.bmp", _page(8, 8, 0)[0])
    _write(tmp_path / "data/2019/GT/1.bmp", np.full((8, 8), 255, np.uint8))
    _write(tmp_path / "2011/Originals/2011-HW1.png", _page(8, 8, 0)[0])
    _write(tmp_path / "2011/GT/2011-HW1_gt.png", np.full((8, 8), 255, np.uint8))
    folders = dibco.find_year_folders(tmp_path)
    assert [p.name for p in dibco.find_pages(2013, folders[2013])] == ["HW01"]
    assert [p.name for p in dibco.find_pages(2019, folders[2019])] == ["1"]
    assert [p.name for p in dibco.find_pages(2011, folders[2011])] == ["HW1"]


def test_layout_problems_are_reported_with_file_names(tmp_path):
    _write(tmp_path / "2012/H01_in.png", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "2012/H01_gt.png", np.zeros((9, 8), np.uint8))
    _write(tmp_path / "2012/H02_in.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError) as err:
        dibco.find_pages(2012, dibco.find_year_folders(tmp_path)[2012])
    message = str(err.value)
    assert "2 problem(s)" in message and "H02_in.png: no ground truth" in message
    assert "H01_in.png is 8x8 (WxH) but its ground truth" in message


def test_loyo_build_from_official_archives(tmp_path):
    pages = _official_tree(tmp_path / "manual")
    dibco.prepare(tmp_path / "manual", tmp_path / "tfds", "loyo_2010")
    builder = dibco.builder("loyo_2010", tmp_path / "tfds")
    assert builder.info.metadata["years"] == {"train": [2009], "test": [2010]}
    assert builder.info.splits["train"].num_examples == 2
    train = dibco.DibcoPages(tmp_path / "tfds", "dibco/loyo_2010", "train", channels=3)
    test = dibco.DibcoPages(tmp_path / "tfds", "loyo_2010", "test", channels=3)
    assert train.names == ["2009_H01", "2009_P01"] and test.names == ["2010_H01", "2010_H02"]
    records = {(int(r["year"]), r["name"].decode()): r for r in builder.as_data_source("train")}
    assert records[(2009, "H01")]["image"].shape == (20, 28, 1)  # grey in an RGB BMP: 1 channel
    assert records[(2009, "P01")]["image"].shape == (21, 28, 3)
    for source in (train, test):
        for i, name in enumerate(source.names):
            year, page = name.split("_")
            image_path, mask = pages[(int(year), page)]
            np.testing.assert_array_equal(source[i]["mask"], mask)  # polarity: 1 = ink
            np.testing.assert_array_equal(source[i]["image"], imageio.load_image(image_path, 3))


# ----------------------------------------------------------------------------- the shared pages


def test_small_year_records_match_the_pngs(small_year, dibco_dir):
    manifest = _manifest(dibco_dir)
    builder = dibco.builder(str(SMALL_YEAR), small_year)
    assert list(builder.info.splits) == ["test"] and builder.info.splits["test"].num_examples == 2
    assert "Gatos" in builder.info.citation and "DIBCO 2009" in builder.info.citation
    grey = dibco.DibcoPages(small_year, str(SMALL_YEAR), "test", channels=1)
    colour = dibco.DibcoPages(small_year, str(SMALL_YEAR), "test", channels=3, cache=False)
    assert grey.names == [f"{SMALL_YEAR}_{n}" for n in SMALL_PAGES] and grey.years == [SMALL_YEAR] * 2
    records = {r["name"].decode(): r for r in builder.as_data_source("test")}
    for i, name in enumerate(SMALL_PAGES):
        row = manifest[(SMALL_YEAR, name)]
        folder = dibco_dir / str(SMALL_YEAR)
        stored_channels = int(row["channels"])
        assert records[name]["image"].shape == (int(row["height"]), int(row["width"]), stored_channels)
        np.testing.assert_array_equal(records[name]["image"],
                                      imageio.load_image(folder / f"{name}_in.png", stored_channels))
        np.testing.assert_array_equal(grey[i]["image"], imageio.load_image(folder / f"{name}_in.png", 1))
        np.testing.assert_array_equal(colour[i]["image"], imageio.load_image(folder / f"{name}_in.png", 3))
        mask = grey[i]["mask"]
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        assert abs(mask.mean() - float(row["fg_fraction"])) < 1e-4  # 1 = ink (GT 0 in the file)
        np.testing.assert_array_equal(mask, imageio.load_mask(folder / f"{name}_gt.png", "black"))
    assert {r["name"].decode() for r in builder.as_data_source("test")} == set(SMALL_PAGES)


def test_reading_needs_no_tensorflow(small_year):
    recorder = _TensorFlowImports()
    sys.meta_path.insert(0, recorder)
    try:
        source = tfds.data_source(f"dibco/{SMALL_YEAR}", data_dir=small_year, split="test")
        example = source[0]
        pages = dibco.DibcoPages(small_year, str(SMALL_YEAR), "test")
        page = pages[1]
    finally:
        sys.meta_path.remove(recorder)
    assert example["image"].dtype == np.uint8 and example["mask"].ndim == 2
    assert page["image"].ndim == 3
    assert recorder.imports == [] and "tensorflow" not in sys.modules


def test_pages_feed_the_training_pipeline(small_year):
    pages = dibco.DibcoPages(small_year, str(SMALL_YEAR), "test", channels=1)
    copy = pickle.loads(pickle.dumps(pages))  # what grain sends to worker processes
    np.testing.assert_array_equal(copy[1]["mask"], pages[1]["mask"])
    cfg = pipeline.default_data_config()
    cfg.patch_size, cfg.read_threads, cfg.prefetch = 32, 1, 1
    batches = list(itertools.islice(iter(pipeline.train_dataset(pages, cfg, seed=0, batch_size=4)), 2))
    for batch in batches:
        assert batch["image"].shape == (4, 32, 32, 1) and batch["image"].dtype == np.uint8
        assert batch["mask"].shape == (4, 32, 32, 1) and set(np.unique(batch["mask"])) <= {0, 1}
    assert sum(int(b["mask"].sum()) for b in batches) > 0  # a third of patches centre on ink


def test_unprepared_dataset_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not prepared.*prepare"):
        dibco.DibcoPages(tmp_path, "fixed", "train")


def test_tfds_source_is_built_on_first_use(small_year, tmp_path, _built):
    cfg = defaults.data_config()
    cfg.source, cfg.channels = "tfds", 3
    cfg.tfds.update(name=f"dibco/{SMALL_YEAR}", data_dir=str(tmp_path), manual_dir=str(_built["manual"]),
                    train_split="test[:1]", val_split="test[1:]")
    train, val = sources.make_sources(cfg, seed=0)
    assert len(train) == 1 and len(val) == 1 and set(train.names + val.names) == {
        f"{SMALL_YEAR}_{n}" for n in SMALL_PAGES}
    assert train[0]["image"].shape[-1] == 3
    cfg.tfds.update(data_dir=str(tmp_path / "elsewhere"), manual_dir="")
    with pytest.raises(FileNotFoundError, match="not prepared"):
        sources.make_sources(cfg, seed=0)


def test_year_filter_serves_train_and_validation_from_one_split(tmp_path):
    _official_tree(tmp_path / "manual")
    dibco.prepare(tmp_path / "manual", tmp_path / "tfds", "loyo_2009")  # train = 2010 only here
    pages = dibco.DibcoPages(tmp_path / "tfds", "loyo_2009", "test", years=[2009])
    assert pages.names == ["2009_H01", "2009_P01"] and pages.years == [2009, 2009]
    with pytest.raises(ValueError, match=r"no page of year\(s\) \[2011\]; its years are \[2009\]"):
        dibco.DibcoPages(tmp_path / "tfds", "loyo_2009", "test", years=[2009, 2011])

    cfg = defaults.data_config()
    cfg.source = "tfds"
    cfg.tfds.update(name="dibco/loyo_2009", data_dir=str(tmp_path / "tfds"), prepare=False,
                    train_split="test", train_years="2009", val_split="train", val_years="2010")
    train, val = sources.make_sources(cfg, seed=0)
    assert train.names == ["2009_H01", "2009_P01"] and val.names == ["2010_H01", "2010_H02"]
    # One split for both: the years must be given and disjoint, or pages would leak into validation.
    for train_years, val_years in (("2009", "2009"), ("2009", ""), ("", "2009")):
        cfg.tfds.update(train_split="test", val_split="test", train_years=train_years, val_years=val_years)
        with pytest.raises(ValueError, match="disjoint"):
            sources.make_sources(cfg, seed=0)
    cfg.tfds.update(train_years="2009;2010", val_years="")
    with pytest.raises(ValueError, match="train_years='2009;2010'"):
        sources.make_sources(cfg, seed=0)
