"""Training and validation sources named by config.data.source."""

from __future__ import annotations

import ml_collections

from binjax.data import page_checks
from binjax.data.folder import FolderPairs
from binjax.data.synthetic import SyntheticDocuments

SOURCES = ("synthetic", "folder", "tfds", "collections")

# Validation pages come from a different seed stream than training pages.
_VALIDATION_SEED_OFFSET = 1_000_003


def _folder_list(value: str) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _folder_source(cfg: ml_collections.ConfigDict, which: str) -> FolderPairs:
    dirs = _folder_list(cfg.folder[which])
    if not dirs:
        raise ValueError(f"config.data.folder.{which} is empty: give a folder of image/mask pairs")
    masks = _folder_list(cfg.folder[f"{which}_masks"])  # one mask folder per image folder, or none
    source = FolderPairs(
        dirs if len(dirs) > 1 else dirs[0],
        (masks if len(masks) > 1 else masks[0]) if masks else None,
        image_suffix=cfg.folder.image_suffix,
        mask_suffix=cfg.folder.mask_suffix,
        mask_foreground=cfg.folder.mask_foreground,
        channels=cfg.channels,
    )
    page_checks.check_pages(source, f"config.data.folder.{which}")  # decode all now, not in a reader
    return source


def _tfds_sources(cfg: ml_collections.ConfigDict):
    """DIBCO from its tfds builder (binjax.data.dibco), prepared on first use if manual_dir is set."""
    from binjax.data import dibco  # noqa: PLC0415 -- imports tensorflow_datasets (~1 s): only when used

    t = cfg.tfds
    config_name = dibco.config_from_name(t.name)
    if t.prepare and t.manual_dir and not dibco.is_prepared(config_name, t.data_dir):
        dibco.prepare(t.manual_dir, t.data_dir, config_name)
    train_years, val_years = _years(t.train_years, "train_years"), _years(t.val_years, "val_years")
    if t.train_split == t.val_split and (train_years is None or val_years is None or set(train_years) & set(val_years)):
        raise ValueError(
            f"config.data.tfds: train and validation both read split {t.train_split!r}; give disjoint "
            f"train_years and val_years (got {t.train_years!r} and {t.val_years!r}) so no page is in both")

    def make(split, years):
        return dibco.DibcoPages(t.data_dir, config_name, split, years=years, channels=cfg.channels)

    return make(t.train_split, train_years), make(t.val_split, val_years)


def _years(value: str, field: str) -> list[int] | None:
    """'2009,2010' -> [2009, 2010]; '' -> None (every year of the split)."""
    parts = _folder_list(value)
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"config.data.tfds.{field}={value!r}: expected comma-separated years such as '2009,2010'")
    return [int(p) for p in parts] or None


def _collection_sources(cfg: ml_collections.ConfigDict):
    """Whole benchmark collections (binjax.data.collections): train on some, validate on others."""
    from binjax.data import collections  # noqa: PLC0415 -- imports tensorflow_datasets: only when used

    c = cfg.collections
    train, val, _ = collections.split_collections(c)

    def make(names, key):
        return collections.collection_pages(names, root=c.root, data_dir=c.data_dir, channels=cfg.channels,
                                            prepare=c.prepare, key=key)

    return make(train, "config.data.collections.train"), make(val, "config.data.collections.val")


def make_sources(cfg: ml_collections.ConfigDict, seed: int):
    """Returns (train_source, val_source): random-access sources of {'image', 'mask'} pages."""
    if cfg.source == "synthetic":
        syn = cfg.synthetic
        make = lambda pages, s: SyntheticDocuments(  # noqa: E731
            pages, syn.page_height, syn.page_width, channels=cfg.channels, seed=s
        )
        return make(syn.train_pages, seed), make(syn.val_pages, seed + _VALIDATION_SEED_OFFSET)
    if cfg.source == "folder":
        return _folder_source(cfg, "train"), _folder_source(cfg, "val")
    if cfg.source == "tfds":
        return _tfds_sources(cfg)
    if cfg.source == "collections":
        return _collection_sources(cfg)
    raise ValueError(f"config.data.source={cfg.source!r} is unknown; known sources: {SOURCES}")
