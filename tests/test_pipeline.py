"""binjax.data.pipeline: shapes, determinism, resumable state, sharding, aligned augmentation."""

import itertools
import pickle

import grain
import numpy as np
import pytest

from binjax.data import pipeline

P = 32


class ListSource:
    """The smallest source: a list of {'image', 'mask'} dicts."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]


def _page(seed, height=64, width=80, channels=1, blobs=6):
    """Dark ink blobs (the mask) on a light, slightly textured page."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(blobs):
        y, x = rng.integers(0, height - 6), rng.integers(0, width - 9)
        mask[y:y + 5, x:x + 8] = 1
    image = np.where(mask == 1, 40, 210).astype(np.uint8)[..., None]
    image = image + rng.integers(0, 10, image.shape, dtype=np.uint8)
    return {"image": np.repeat(image, channels, -1), "mask": mask}


def _config(**augment):
    cfg = pipeline.default_data_config()
    cfg.patch_size = P
    cfg.read_threads = 2
    cfg.prefetch = 2
    cfg.augment.update(augment)
    return cfg


def _take(ds, n):
    return list(itertools.islice(iter(ds), n))


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])


SOURCE = ListSource([_page(i) for i in range(5)])


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_dtypes(channels):
    source = ListSource([_page(i, channels=channels) for i in range(3)])
    (batch,) = _take(pipeline.train_dataset(source, _config(), seed=0, batch_size=4), 1)
    assert batch["image"].shape == (4, P, P, channels) and batch["image"].dtype == np.uint8
    assert batch["mask"].shape == (4, P, P, 1) and batch["mask"].dtype == np.uint8
    assert set(np.unique(batch["mask"])) <= {0, 1}


def test_deterministic_for_a_seed_and_different_across_seeds():
    cfg = _config()
    first = _take(pipeline.train_dataset(SOURCE, cfg, seed=3, batch_size=4), 3)
    again = _take(pipeline.train_dataset(SOURCE, cfg, seed=3, batch_size=4), 3)
    other = _take(pipeline.train_dataset(SOURCE, cfg, seed=4, batch_size=4), 3)
    _assert_same(first, again)
    assert any(not np.array_equal(a["image"], b["image"]) for a, b in zip(first, other))


def test_checkpointed_iterator_state_resumes_identically():
    ds = pipeline.train_dataset(SOURCE, _config(), seed=7, batch_size=2)
    it = iter(ds)
    for _ in range(5):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(3)]
    resumed = iter(pipeline.train_dataset(SOURCE, _config(), seed=7, batch_size=2))
    resumed.set_state(state)
    _assert_same(expected, [next(resumed) for _ in range(3)])


def test_fg_patch_fraction_one_always_has_foreground():
    empty_page = {"image": np.full((40, 40, 1), 200, np.uint8), "mask": np.zeros((40, 40), np.uint8)}
    sparse = ListSource([_page(i, height=96, width=96, blobs=1) for i in range(3)] + [empty_page])
    # Geometric augmentation on (scale, flips), photometric off: grey 200 marks the empty page.
    cfg = _config(contrast=None, brightness=None, gamma=None, blur_prob=0.0, noise_std=0.0)
    cfg.patch_size = 16

    def fg_per_patch(fraction):
        cfg.fg_patch_fraction = fraction
        batches = _take(pipeline.train_dataset(sparse, cfg, seed=0, batch_size=8), 4)
        images = np.concatenate([b["image"] for b in batches]).reshape(32, -1)
        masks = np.concatenate([b["mask"] for b in batches]).reshape(32, -1)
        from_empty_page = (images == 200).all(1)
        return masks.any(1), from_empty_page

    has_fg, from_empty_page = fg_per_patch(1.0)
    assert 0 < from_empty_page.sum() < 32  # the empty page was sampled, and gave no error
    assert has_fg[~from_empty_page].all()
    assert not has_fg[from_empty_page].any()
    has_fg_uniform, from_empty_page = fg_per_patch(0.0)
    assert has_fg_uniform[~from_empty_page].mean() < 0.8  # one 5x8 blob in 96x96: mostly missed


def test_fg_forced_crop_contains_the_chosen_pixel_exactly():
    page = _page(0, height=200, width=300, blobs=1)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        _, mask = pipeline.sample_crop(page["image"], page["mask"], 24, 1.0, rng)
        assert mask.any()


def test_process_shards_tile_the_global_batches_and_resume_from_one_state():
    """k processes reading batches of B together read what one process reading k*B reads.

    That is what makes a multi-host run train like a single-host one (tests/test_distributed.py),
    and their iterator states are equal, so the one state a checkpoint keeps resumes them all.
    """
    whole = _take(pipeline.train_dataset(SOURCE, _config(), seed=3, batch_size=6), 3)  # 3+ epochs of 5 pages
    shards = [iter(pipeline.train_dataset(SOURCE, _config(), seed=3, batch_size=2, shard_index=i, shard_count=3))
              for i in range(3)]
    per_shard = [[next(it) for _ in range(3)] for it in shards]
    for b in range(3):
        _assert_same([{k: np.concatenate([s[b][k] for s in per_shard]) for k in ("image", "mask")}],
                     [whole[b]])
    states = [it.get_state() for it in shards]
    assert states[1] == states[0] == states[2]
    for i, it in enumerate(shards):
        resumed = iter(pipeline.train_dataset(SOURCE, _config(), seed=3, batch_size=2, shard_index=i, shard_count=3))
        resumed.set_state(states[0])
        _assert_same([next(resumed)], [next(it)])
    with pytest.raises(ValueError, match="shard_index"):
        pipeline.train_dataset(SOURCE, _config(), seed=0, batch_size=2, shard_index=2, shard_count=2)


def test_epochs_are_reshuffled_permutations():
    ds = pipeline.EpochShuffle(grain.MapDataset.range(7), seed=1)
    epochs = [[ds[e * 7 + i] for i in range(7)] for e in range(3)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1


def _ink_is_mask_source():
    """Pages whose image is exactly 255 * (1 - mask), with an asymmetric pattern."""
    pages = []
    for i in range(3):
        mask = np.zeros((70, 90), np.uint8)
        mask[10:50, 12:16] = 1  # a vertical bar
        mask[10:14, 12:60] = 1  # a top stroke: the shape of a '7' mirrored, not symmetric
        mask[30 + i:40 + i, 40:44] = 1
        pages.append({"image": ((1 - mask) * 255).astype(np.uint8)[..., None], "mask": mask})
    return ListSource(pages)


def test_geometric_augmentations_keep_image_and_mask_aligned():
    cfg = _config(contrast=None, brightness=None, gamma=None, blur_prob=0.0, noise_std=0.0,
                  scale_range=(0.6, 1.6))
    cfg.fg_patch_fraction = 0.5
    batches = _take(pipeline.train_dataset(_ink_is_mask_source(), cfg, seed=1, batch_size=8), 3)
    image = np.concatenate([b["image"] for b in batches])
    mask = np.concatenate([b["mask"] for b in batches])
    # Bilinear is linear: the resized image is 255 minus the resized mask, so the thresholds
    # agree except at rounding ties on edges.
    assert ((image < 128) == (mask == 1)).mean() > 0.995
    assert mask.any() and (mask == 0).any()


def test_photometric_augmentations_keep_ink_darker_than_background():
    cfg = _config(blur_prob=1.0, noise_prob=1.0, noise_std=0.05)
    batches = _take(pipeline.train_dataset(_ink_is_mask_source(), cfg, seed=2, batch_size=8), 2)
    image = np.concatenate([b["image"] for b in batches]).astype(float)
    mask = np.concatenate([b["mask"] for b in batches])
    assert image[mask == 1].mean() + 100 < image[mask == 0].mean()


def test_small_pages_padded_with_background_and_mask_zero():
    mask = np.zeros((10, 12), np.uint8)
    mask[3:6, 4:9] = 1
    image = np.where(mask == 1, 20, 180).astype(np.uint8)[..., None]
    source = ListSource([{"image": image, "mask": mask}])
    cfg = _config(enabled=False)
    (batch,) = _take(pipeline.train_dataset(source, cfg, seed=0, batch_size=4), 1)
    for patch, patch_mask in zip(batch["image"][..., 0], batch["mask"][..., 0]):
        assert patch_mask.sum() == mask.sum()  # the whole page is inside, ink preserved
        assert (patch[patch_mask == 1] == 20).all()
        assert (patch[patch_mask == 0] == 180).all()  # padding = median background colour


def test_validation_patches_fixed_and_unaugmented():
    cfg = _config()
    a = pipeline.validation_patches(SOURCE, cfg, seed=0, num_patches=7)
    b = pipeline.validation_patches(SOURCE, cfg, seed=0, num_patches=7)
    assert a["image"].shape == (7, P, P, 1) and a["mask"].shape == (7, P, P, 1)
    np.testing.assert_array_equal(a["image"], b["image"])
    # No photometric change: ink pixels keep the page's ink values (40..49).
    ink = a["image"][a["mask"] == 1]
    assert ink.size and ink.min() >= 40 and ink.max() <= 49


def test_val_fg_patch_fraction_keeps_validation_patches_fixed_across_fg_patch_fraction():
    # The foreground ablation (configs/ablations/foreground.py) changes fg_patch_fraction only;
    # with val_fg_patch_fraction set, every run must score the same validation patches.
    def patches(train_fraction, val_fraction):
        cfg = _config()
        cfg.fg_patch_fraction, cfg.val_fg_patch_fraction = train_fraction, val_fraction
        return pipeline.validation_patches(SOURCE, cfg, seed=0, num_patches=7)["image"]

    np.testing.assert_array_equal(patches(0.0, 0.33), patches(0.66, 0.33))
    np.testing.assert_array_equal(patches(0.66, None), patches(0.0, 0.66))  # None: follow training
    assert not np.array_equal(patches(0.0, None), patches(1.0, None))
    with pytest.raises(ValueError, match="val_fg_patch_fraction"):
        patches(0.33, 1.5)


def test_config_errors_and_pickling():
    cfg = _config()
    cfg.augment.flip = True  # typo of hflip/vflip
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['flip'\]"):
        pipeline.train_dataset(SOURCE, cfg, seed=0, batch_size=2)
    cfg = _config(scale_range=(1.3, 0.7))
    with pytest.raises(ValueError, match="scale_range"):
        pipeline.train_dataset(SOURCE, cfg, seed=0, batch_size=2)
    transform = pipeline.RandomPatch(P, 0.3, pipeline.Augment())
    restored = pickle.loads(pickle.dumps(transform))
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    np.testing.assert_array_equal(transform.random_map(SOURCE[0], rng_a)["image"],
                                  restored.random_map(SOURCE[0], rng_b)["image"])
    shuffled = pipeline.EpochShuffle(grain.MapDataset.source(SOURCE), seed=0)
    assert pickle.loads(pickle.dumps(shuffled))[3]["mask"].shape == (64, 80)
