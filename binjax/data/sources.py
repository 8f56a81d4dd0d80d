"""Training and validation sources named by config.data.source."""

from __future__ import annotations

import operator

import ml_collections
import numpy as np

from binjax import contrast, page_context
from binjax.data import page_checks
from binjax.data.clutter import Clutter
from binjax.data.folder import FolderPairs
from binjax.data.synthetic import SyntheticDocuments

SOURCES = ("synthetic", "folder", "tfds", "collections", "mix")
REAL_SOURCES = ("folder", "tfds", "collections")  # what source='mix' mixes with synthetic pages

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


class MixedPages:
    """Real pages and synthetic ones in one random-access source, a set fraction synthetic.

    Indices [0, real_slots) are the real pages, each the same number of times (slot i is real
    page i mod len(real)); the rest are distinct synthetic pages. An epoch of the pipeline's
    shuffle visits every index once, so each epoch's pages are `synthetic_fraction` synthetic
    up to rounding, and every real page is seen equally often.
    """

    def __init__(self, real, synthetic, real_slots: int):
        if len(real) < 1 or len(synthetic) < 1 or real_slots < len(real) or real_slots % len(real):
            raise ValueError(f"MixedPages: need real and synthetic pages and real_slots a multiple of "
                             f"the {len(real)} real pages; got {len(synthetic)} synthetic, {real_slots} slots")
        self.real, self.synthetic, self.real_slots = real, synthetic, int(real_slots)

    @classmethod
    def with_fraction(cls, real, synthetic_fraction: float, synthetic_pages: int, make_synthetic) -> MixedPages:
        """Sizes the parts for `synthetic_fraction` in (0, 1): about `synthetic_pages` synthetic
        pages, the real ones repeated k times to match, then the synthetic count fitted to the
        fraction to within one page. make_synthetic(n) -> a source of n synthetic pages."""
        p = float(synthetic_fraction)
        if not 0.0 < p < 1.0:
            raise ValueError(f"MixedPages: synthetic_fraction must be in (0, 1), got {p}")
        repeats = max(1, round(synthetic_pages * (1 - p) / (p * len(real))))
        n_syn = max(1, round(len(real) * repeats * p / (1 - p)))
        return cls(real, make_synthetic(n_syn), len(real) * repeats)

    def __len__(self) -> int:
        return self.real_slots + len(self.synthetic)

    def is_synthetic(self, index: int) -> bool:
        return operator.index(index) % len(self) >= self.real_slots

    def __getitem__(self, index: int):
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"MixedPages: index {index} out of range for {len(self)} pages")
        i %= len(self)
        if i < self.real_slots:
            return self.real[i % len(self.real)]
        return self.synthetic[i - self.real_slots]

    def __repr__(self) -> str:
        return f"MixedPages({self.real_slots} real slots over {len(self.real)} pages, {self.synthetic!r})"


def _synthetic_source(cfg: ml_collections.ConfigDict, pages: int, seed: int) -> SyntheticDocuments:
    syn = cfg.synthetic
    return SyntheticDocuments(pages, syn.page_height, syn.page_width, channels=cfg.channels, seed=seed,
                              clutter=Clutter.from_config(syn.get("clutter")))


def _real_sources(cfg: ml_collections.ConfigDict, source: str):
    if source == "folder":
        return _folder_source(cfg, "train"), _folder_source(cfg, "val")
    if source == "tfds":
        return _tfds_sources(cfg)
    if source == "collections":
        return _collection_sources(cfg)
    raise ValueError(f"config.data.source={source!r} is unknown; known sources: {SOURCES}")


class _PreparedPages:
    """A source whose pages come out prepared for a model: `_prepare(image)` gives the keys a page
    gains or replaces, computed once per page on first use and kept (two reader threads may
    prepare one page at once and keep the same result). Prepared images are read-only: crops are
    views, and no reader may write into the cache.

    Synthetic pages are prepared on every read instead: they are drawn again from their seed each
    time (the generator keeps none), so keeping them prepared would hold every page of the run in
    memory (1 GB for 2000 pages of 512 x 512 with a context channel), while preparing one costs
    a fraction of drawing it.
    """

    def __init__(self, pages):
        self.pages = pages
        self.keep = not isinstance(pages, SyntheticDocuments)
        self._prepared: dict[int, dict] = {}  # page index -> the keys it gains or replaces

    def __len__(self) -> int:
        return len(self.pages)

    def __getitem__(self, index: int):
        element = self.pages[index]
        index = operator.index(index)
        prepared = self._prepared.get(index)
        if prepared is None:
            prepared = self._prepare(np.asarray(element["image"]))
            if "image" in prepared:
                prepared["image"].setflags(write=False)
            if self.keep:
                self._prepared[index] = prepared
        return {**element, **prepared}

    def _prepare(self, image: np.ndarray) -> dict:
        raise NotImplementedError


class ContrastPages(_PreparedPages):
    """A source whose pages come out prepared as binjax.contrast prepares a page for a model.

    mode 'stretch': {'image', 'mask'} pages come out with 'contrast_levels': (lo, hi) of the whole
    page, computed once per page from its histogram and kept; the patch sampler stretches each crop
    with them (binjax/data/pipeline.py), which is the crop of the stretched page at a fraction of
    the cost. mode 'flatten': the page's 'image' is binjax.contrast.flatten's (divided by its own
    paper, then stretched). Its paper estimate needs the whole page, so each page is flattened once,
    on first use, and kept read-only (192 million pixels for every page of ../shared/data, as large
    as the pages themselves); two reader threads may flatten one page at once and keep the same
    result. config.data.contrast wraps the training and validation sources in it, so the model
    learns on pages as binjax.contrast shows them to it at inference.
    """

    def __init__(self, pages, mode: str):
        if mode not in ("stretch", "flatten"):
            raise ValueError(f"ContrastPages prepares 'stretch' or 'flatten' pages, not {mode!r}")
        super().__init__(pages)
        self.mode = mode

    def _prepare(self, image: np.ndarray) -> dict:
        if self.mode == "stretch":
            return {"contrast_levels": contrast.percentile_levels(image)}
        return {"image": contrast.flatten(image)}

    def __repr__(self) -> str:
        return f"ContrastPages({self.pages!r}, {self.mode!r})"


class ContextPages(_PreparedPages):
    """A source whose pages come out as a model with page context takes them (binjax.page_context):
    'image' is the page prepared by `contrast_mode` (binjax.contrast.normalize) with its context
    channel after the image's. The context needs the whole page, so each real page is prepared
    once and kept (its pixels and one more channel: ~400 million values for ../shared/data).
    """

    def __init__(self, pages, contrast_mode: str, context: str):
        page_context.extra_channels(context)  # ConfigError for an unknown mode
        super().__init__(pages)
        self.contrast_mode, self.context = contrast_mode, context

    def _prepare(self, image: np.ndarray) -> dict:
        image = image[..., None] if image.ndim == 2 else image
        return {"image": page_context.add_context(contrast.normalize(image, self.contrast_mode), self.context)}

    def __repr__(self) -> str:
        return f"ContextPages({self.pages!r}, {self.contrast_mode!r}, {self.context!r})"


def make_sources(cfg: ml_collections.ConfigDict, seed: int):
    """Returns (train_source, val_source): random-access sources of {'image', 'mask'} pages."""
    return _make_sources(cfg, seed, _preparation(cfg))


def _preparation(cfg: ml_collections.ConfigDict):
    """What wraps each source of pages so that the model sees them as it will at inference
    (config.data.contrast, config.data.context). It wraps the real and synthetic sources before
    MixedPages joins them, so a real page repeated in the mix is prepared and kept once."""
    mode, context = cfg.get("contrast", "none"), cfg.get("context", "none")
    if page_context.extra_channels(context):
        return lambda pages: ContextPages(pages, mode, context)
    if mode in ("stretch", "flatten"):
        return lambda pages: ContrastPages(pages, mode)
    return lambda pages: pages


def _make_sources(cfg: ml_collections.ConfigDict, seed: int, prepare):
    if cfg.source == "synthetic":
        syn = cfg.synthetic
        return (prepare(_synthetic_source(cfg, syn.train_pages, seed)),
                prepare(_synthetic_source(cfg, syn.val_pages, seed + _VALIDATION_SEED_OFFSET)))
    if cfg.source == "mix":
        real = cfg.mix.real
        if real not in REAL_SOURCES:
            raise ValueError(f"config.data.mix.real={real!r}: must be one of {list(REAL_SOURCES)}")
        fraction = float(cfg.mix.synthetic_fraction)
        real_train, real_val = map(prepare, _real_sources(cfg, real))
        if fraction <= 0.0:
            return real_train, real_val
        if fraction >= 1.0:
            return prepare(_synthetic_source(cfg, cfg.synthetic.train_pages, seed)), real_val
        return MixedPages.with_fraction(real_train, fraction, cfg.synthetic.train_pages,
                                        lambda n: prepare(_synthetic_source(cfg, n, seed))), real_val
    return tuple(map(prepare, _real_sources(cfg, cfg.source)))
