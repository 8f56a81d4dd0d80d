"""A folder source decodes every page before training and warns about masks that teach nothing."""

import numpy as np
import pytest
from PIL import Image

from binjax.data import sources
from binjax.errors import DataError
from configs import sae


def _page(folder, name, ink_fraction, *, size=64, seed=0):
    """name_in.png (dark ink) and name_gt.png (DIBCO polarity: ink black) with that much ink."""
    rng = np.random.default_rng(seed)
    ink = rng.random((size, size)) < ink_fraction
    Image.fromarray(np.where(ink, 30, 220).astype(np.uint8)).save(folder / f"{name}_in.png")
    Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).save(folder / f"{name}_gt.png")


def _config(train, val):
    config = sae.get_config("smoke")
    config.data.source = "folder"
    config.data.folder.train = str(train)
    config.data.folder.val = str(val)
    return config


@pytest.fixture
def folders(tmp_path):
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir()
    val.mkdir()
    for i in range(3):
        _page(train, f"p{i}", 0.1, seed=i)
    _page(val, "v0", 0.1)
    return train, val


def test_a_truncated_training_image_fails_before_training_naming_the_file(folders):
    train, val = folders
    page = train / "p1_in.png"
    page.write_bytes(page.read_bytes()[: len(page.read_bytes()) // 2])  # header intact: passes the scan
    with pytest.raises(DataError, match=r"config.data.folder.train: 1 file\(s\) do not decode: .*p1_in.png") as caught:
        sources.make_sources(_config(train, val).data, seed=0)
    assert "\n" not in str(caught.value)


def test_blank_all_ink_and_inverted_masks_are_named_in_warnings(folders, caplog):
    train, val = folders
    _page(train, "blank", 0.0)
    _page(train, "black", 1.0)
    _page(train, "swapped", 0.9)  # ink and paper swapped: 90 % "ink"
    with caplog.at_level("WARNING"):
        train_source, _ = sources.make_sources(_config(train, val).data, seed=0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("no ink" in m and "blank_gt.png" in m for m in messages), messages
    assert any("all ink" in m and "black_gt.png" in m for m in messages), messages
    assert any("likely inverted" in m and "swapped_gt.png" in m and "mask_foreground='black'" in m
               for m in messages), messages
    assert not any("p0_gt" in m for m in messages)
    assert len(train_source) == 6  # warned, not refused: the user decides


def test_clean_folders_give_no_warning_and_keep_the_decoded_pages(folders, caplog):
    with caplog.at_level("WARNING"):
        train_source, _ = sources.make_sources(_config(*folders).data, seed=0)
    assert not caplog.records
    assert len(train_source._cache) == len(train_source)  # decoded once, up front
