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
