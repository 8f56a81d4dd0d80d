"""binjax.data.folder.FolderPairs: both naming rules, clear construction errors, DIBCO."""

import pickle

import numpy as np
import pytest
from PIL import Image

from binjax.data.folder import FolderPairs


def _write_pair(image_path, mask_path, *, size=(24, 16), seed=0, mask_size=None):
    """A page with dark ink where the mask (written white-on-black) is 1."""
    width, height = size
    rng = np.random.default_rng(seed)
    mask = (rng.random((height, width)) < 0.2).astype(np.uint8)
    image = np.where(mask == 1, 30, 220).astype(np.uint8)
    Image.fromarray(image).save(image_path)
    mw, mh = mask_size or size
    Image.fromarray(np.resize(mask, (mh, mw)) * 255).save(mask_path)
    return image, mask


def test_two_folders_same_stem_different_extensions(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    written = {}
    for i, ext in enumerate(["png", "jpg", "TIF"]):
        written[f"p{i}"] = _write_pair(tmp_path / "img" / f"p{i}.{ext}", tmp_path / "msk" / f"p{i}.png", seed=i)
    (tmp_path / "img" / "._p0.png").write_bytes(b"macOS resource fork")  # hidden: skipped
    (tmp_path / "img" / "readme.txt").write_text("not an image")
    pairs = FolderPairs(tmp_path / "img", tmp_path / "msk", channels=3)
    assert pairs.names == ["p0", "p1", "p2"] and len(pairs) == 3
    example = pairs[0]
    assert example["image"].shape == (16, 24, 3) and example["image"].dtype == np.uint8
    np.testing.assert_array_equal(example["image"][..., 0], written["p0"][0])
    np.testing.assert_array_equal(example["mask"], written["p0"][1])
    np.testing.assert_array_equal(pairs[2]["mask"], written["p2"][1])
    with pytest.raises(IndexError):
        pairs[3]


def test_one_folder_suffix_layout_black_foreground(tmp_path):
    _, mask = _write_pair(tmp_path / "a_in.png", tmp_path / "a_gt.png")
    _write_pair(tmp_path / "b_in.png", tmp_path / "b_gt.png", seed=1)
    _write_pair(tmp_path / "b_pred.png", tmp_path / "b_other.png")  # neither suffix: ignored
    pairs = FolderPairs(tmp_path, mask_foreground="black")
    assert pairs.names == ["a", "b"]
    assert sorted(p.name for p in pairs.ignored) == ["b_other.png", "b_pred.png"]
    np.testing.assert_array_equal(pairs[0]["mask"], 1 - mask)  # file's white = background
    assert pairs[0]["image"].shape == (16, 24, 1)


def test_cache_returns_read_only_arrays_and_pickles_without_them(tmp_path):
    _write_pair(tmp_path / "a_in.png", tmp_path / "a_gt.png")
    pairs = FolderPairs(tmp_path)
    first = pairs[0]
    assert pairs[0] is first and not first["image"].flags.writeable
    clone = pickle.loads(pickle.dumps(pairs))
    assert clone._cache == {}
    np.testing.assert_array_equal(clone[0]["mask"], first["mask"])
    uncached = FolderPairs(tmp_path, cache=False)
    assert uncached[0] is not uncached[0]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere: folder does not exist"):
        FolderPairs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no images named <name>_in"):
        FolderPairs(tmp_path / "empty")
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match=r"empty: no images"):
        FolderPairs(tmp_path / "empty", tmp_path / "masks")


def test_unpaired_files_are_all_reported(tmp_path):
    _write_pair(tmp_path / "a_in.png", tmp_path / "a_gt.png")
    Image.new("L", (8, 8)).save(tmp_path / "lonely_in.png")
    Image.new("L", (8, 8)).save(tmp_path / "orphan_gt.png")
    with pytest.raises(ValueError) as info:
        FolderPairs(tmp_path)
    message = str(info.value)
    assert "2 problem(s)" in message
    assert "lonely_in.png: no mask lonely_gt.<ext>" in message
    assert "orphan_gt.png: mask without an image orphan_in.<ext>" in message


def test_size_mismatch_names_both_files(tmp_path):
    _write_pair(tmp_path / "a_in.png", tmp_path / "a_gt.png", size=(24, 16), mask_size=(24, 17))
    with pytest.raises(ValueError, match=r"a_in\.png is 24x16 \(WxH\) but its mask .*a_gt\.png is 24x17"):
        FolderPairs(tmp_path)


def test_duplicate_stems_and_corrupt_header(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    _write_pair(tmp_path / "img" / "a.png", tmp_path / "msk" / "a.png")
    Image.new("L", (24, 16)).save(tmp_path / "img" / "a.jpg")
    with pytest.raises(ValueError, match=r"a\.png: same name as a\.jpg|a\.jpg: same name as a\.png"):
        FolderPairs(tmp_path / "img", tmp_path / "msk")
    (tmp_path / "img" / "a.jpg").unlink()
    (tmp_path / "img" / "b.png").write_text("oops")
    (tmp_path / "msk" / "b.png").write_text("oops")
    with pytest.raises(ValueError, match=r"img/b\.png: not an image"):
        FolderPairs(tmp_path / "img", tmp_path / "msk")


def test_list_of_folders_prefixes_names(tmp_path):
    for year in ("2009", "2010"):
        (tmp_path / year).mkdir()
        _write_pair(tmp_path / year / "H01_in.png", tmp_path / year / "H01_gt.png")
    _write_pair(tmp_path / "2010" / "P01_in.png", tmp_path / "2010" / "P01_gt.png")
    pairs = FolderPairs([tmp_path / "2009", tmp_path / "2010"])
    assert pairs.names == ["2009_H01", "2010_H01", "2010_P01"]
    assert pairs.pairs[1][0] == tmp_path / "2010" / "H01_in.png"
    with pytest.raises(ValueError, match="given twice"):
        FolderPairs([tmp_path / "2009", tmp_path / "2009"])
    with pytest.raises(ValueError, match="one mask folder per image folder"):
        FolderPairs([tmp_path / "2009", tmp_path / "2010"], tmp_path / "2009")


@pytest.mark.needs_shared
def test_dibco_2013_layout(dibco_dir):
    manifest = (dibco_dir / "MANIFEST.tsv").read_text().splitlines()
    expected = sorted(line.split("\t")[1] for line in manifest[1:] if line.startswith("2013\t"))
    pairs = FolderPairs(dibco_dir / "2013", mask_foreground="black", cache=False)
    assert pairs.names == expected and len(pairs) == len(expected) > 0
    example = pairs[pairs.names.index("PR01")]
    image, mask = example["image"], example["mask"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 1
    assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 1}
    fg = mask.mean()
    assert 0.005 < fg < 0.3  # mostly background: ink is a small fraction of a page
    assert image[..., 0][mask == 1].mean() < image[..., 0][mask == 0].mean()  # ink is dark
