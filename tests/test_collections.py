"""binjax.data.collections: the extra collections' builder, mixed sources, the config source."""

import pickle
import shutil

import numpy as np
import pytest

from binjax import imageio
from binjax.data import collections, sources
from binjax.errors import ConfigError, DataError
from configs import lite

MSI_PAGES = ("H09", "H12", "H08")  # the three smallest msi2015 pages; H12 is excluded by design
DIBCO_PAGES = ("H03", "P04")  # two small DIBCO 2009 pages


@pytest.fixture(scope="module")
def root(tmp_path_factory, request):
    """A copy of a few small shared pages in the ../shared/data layout."""
    shared = request.config.rootpath.parent / "shared" / "data"
    if not (shared / "extra" / "msi2015").is_dir() or not (shared / "dibco" / "2009").is_dir():
        pytest.skip(f"needs the shared collections in {shared} (absent here)")
    root = tmp_path_factory.mktemp("root")
    for folder, pages in (("extra/msi2015", MSI_PAGES), ("dibco/2009", DIBCO_PAGES)):
        (root / folder).mkdir(parents=True)
        for page in pages:
            for part in ("in", "gt"):
                shutil.copy(shared / folder / f"{page}_{part}.png", root / folder)
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


def test_parse_collections_names_the_key():
    assert collections.parse_collections(" dibco2013, bickley ") == ["dibco2013", "bickley"]
    with pytest.raises(ConfigError, match="config.data.collections.train: unknown collection.*'bikley'"):
        collections.parse_collections("bikley", "config.data.collections.train")
    with pytest.raises(ConfigError, match="named twice"):
        collections.parse_collections("phibd,phibd")


@pytest.mark.needs_shared
def test_builds_and_mixes_collections(root, data_dir):
    pages = collections.collection_pages("dibco2009,msi2015", root=root, data_dir=data_dir)
    assert pages.names == ["dibco2009/H03", "dibco2009/P04", "msi2015/H08", "msi2015/H09"]  # no H12
    assert pages.collections == ["dibco2009"] * 2 + ["msi2015"] * 2
    for i, name in enumerate(pages.names):
        collection, page = name.split("/")
        folder = root / ("dibco/2009" if collection == "dibco2009" else "extra/msi2015")
        example = pages[i]
        expected_mask = imageio.load_mask(folder / f"{page}_gt.png", foreground="black")
        np.testing.assert_array_equal(example["mask"], expected_mask)  # 1 = ink, lossless
        np.testing.assert_array_equal(example["image"], imageio.load_image(folder / f"{page}_in.png", 1))
    again = pickle.loads(pickle.dumps(pages))  # grain workers get a copy
    np.testing.assert_array_equal(again[3]["image"], pages[3]["image"])


@pytest.mark.needs_shared
def test_config_source_trains_and_validates_on_disjoint_collections(root, data_dir):
    config = lite.get_config("smoke")
    data = config.data
    data.source = "collections"
    data.collections.update(root=str(root), data_dir=str(data_dir), train="msi2015", val="dibco2009")
    train, val = sources.make_sources(data, seed=0)
    assert train.names == ["msi2015/H08", "msi2015/H09"] and val.collections == ["dibco2009"] * 2
    data.collections.val = "msi2015"
    with pytest.raises(ConfigError, match="never split"):
        sources.make_sources(data, seed=0)
    data.collections.update(train="msi2015", val="phibd")
    with pytest.raises(DataError, match="phibd"):  # not under this root
        sources.make_sources(data, seed=0)


SMALLEST = {"dibco/2009": "H03", "dibco/2010": "H03", "dibco/2011": "PR8", "dibco/2012": "H07",
            "dibco/2013": "PR07", "dibco/2014": "H06", "dibco/2016": "10", "extra/bickley": "H01",
            "extra/monk_cuper": "H11", "extra/msi2015": "H24", "extra/nabuco": "H08", "extra/phibd": "H02"}


def test_every_fold_tests_each_collection_once_and_never_trains_on_it():
    from configs import cross_collection

    tested = [c for fold in cross_collection.FOLDS for c in cross_collection.fold_collections(fold)["test"]]
    assert sorted(tested) == sorted(collections.KNOWN[:7] + tuple(collections.EXTRA_COLLECTIONS))
    for fold in cross_collection.FOLDS:
        split = cross_collection.fold_collections(fold)
        assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
        assert not set(split["train"]) & set(split["val"])
        config = cross_collection.get_config(f"{fold},smoke")
        assert config.data.collections.test == ",".join(split["test"])


def test_the_release_config_trains_on_every_collection_but_the_validation_one():
    from binjax import config_checks
    from configs import collections_lite, cross_collection

    for arg in (None, "smoke"):
        config = collections_lite.get_config(arg)
        train, val, test = collections.split_collections(config.data.collections)
        assert sorted(train + val) == sorted(cross_collection.ALL_COLLECTIONS) and val == [cross_collection.VALIDATION]
        assert test == [] and config.data.contrast == "stretch" and config.model.name == "lite"
        config_checks.check_config(config)
        # Half synthetic pages, as the protocol's synthetic arm, colours from every training collection.
        assert config.data.source == "mix" and config.data.mix.synthetic_fraction == 0.5
        clutter = config.data.synthetic.clutter
        assert clutter.colour_collections == config.data.collections.train and clutter.scan_border > 0
        real = collections_lite.real_pages_config(arg)
        assert real.data.source == "collections" and real.data.collections == config.data.collections
    assert collections_lite.get_config().num_steps == cross_collection.NUM_STEPS
    with pytest.raises(ValueError, match="collections_lite"):
        collections_lite.get_config("bickley")


def test_the_fast_release_config_is_the_real_pages_release_with_the_measured_fast_overrides():
    from binjax import config_checks
    from configs import collections_fast, collections_lite
    from configs.ablations import lite_speed

    for arg in (None, "smoke"):
        # collections_fast's weights were trained on real pages only, before the synthetic ones.
        fast, lite = collections_fast.get_config(arg), collections_lite.real_pages_config(arg)
        for key, value in lite_speed.FAST.items():
            section, field = key.split(".")
            assert fast[section][field] == value != lite[section][field]
            fast[section][field] = lite[section][field]
        assert fast.to_dict() == lite.to_dict()  # nothing else differs: data, steps, contrast
        config_checks.check_config(collections_fast.get_config(arg))
    with pytest.raises(ValueError, match="collections_fast"):
        collections_fast.get_config("msi2015")


@pytest.mark.slow
@pytest.mark.needs_shared
def test_protocol_trains_scores_and_reports_the_worst_collection(tmp_path, request):
    """One fold end to end on one small page per collection: train, score beside Otsu, report."""
    import json
    import subprocess
    import sys

    shared = request.config.rootpath.parent / "shared" / "data"
    if not (shared / "extra").is_dir():
        pytest.skip(f"needs the shared collections in {shared} (absent here)")
    root = tmp_path / "root"
    for folder, page in SMALLEST.items():
        (root / folder).mkdir(parents=True)
        for part in ("in", "gt"):
            shutil.copy(shared / folder / f"{page}_{part}.png", root / folder)
    sweep_file = tmp_path / "tiny_protocol.py"
    sweep_file.write_text(
        "from configs import cross_collection\n\n"
        "def get_config(arg=None):\n"
        "    config = cross_collection.get_config(arg)\n"
        f"    config.data.collections.update(root={str(root)!r}, data_dir={str(tmp_path / 'tfds')!r})\n"
        "    return config\n\n"
        "def get_sweep(arg=None):\n"
        "    return [{'arg': 'dibco_icdar', 'seed': 0}]\n")
    workdir = tmp_path / "protocol"
    command = [sys.executable, "-m", "launch.protocol", f"--config={sweep_file}:smoke", f"--workdir={workdir}",
               "--methods=otsu", "--noprogress"]
    result = subprocess.run(command, cwd=request.config.rootpath, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # The baselines are scored before training, the run as soon as it has trained.
    out = result.stdout
    assert out.index("Scoring the baselines") < out.index("training in") < out.index("Report so far")
    report = json.loads((workdir / "report.json").read_text())
    assert set(report["collections"]) == {"binjax", "otsu"}
    assert set(report["collections"]["otsu"]) == {"dibco2009", "dibco2011", "dibco2013"}
    worst, fm = report["summary"]["otsu"]["worst"]
    assert fm == min(v["fm"][0] for v in report["collections"]["otsu"].values())
    assert "worst collection" in result.stdout and worst in result.stdout
    again = subprocess.run(command, cwd=request.config.rootpath, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "3 done (skipped)" not in again.stdout  # one run: '1 done (skipped)'
    assert "1 done (skipped)" in again.stdout
    assert "Scoring arg=" not in again.stdout  # a scored run is not scored (or announced) again
    # --only narrows what is trained and scored, not the report: the run scored earlier stays in it.
    narrowed = subprocess.run(command + ["--only=arg=no_such_fold", "--notrain"], cwd=request.config.rootpath,
                              capture_output=True, text=True, timeout=600)
    assert narrowed.returncode == 0, narrowed.stderr[-3000:]
    assert set(json.loads((workdir / "report.json").read_text())["collections"]) == {"binjax", "otsu"}
