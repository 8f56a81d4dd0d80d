"""Every benchmark collection binjax knows, as page sources: the DIBCO years and five others.

Generalization is measured across whole collections (train on some, test on another that no one
tuned on), so a collection is the unit here:

  'dibco2009' ... 'dibco2016'   one DIBCO / H-DIBCO year, through binjax.data.dibco's builder
  'bickley', 'monk_cuper', 'msi2015', 'nabuco', 'phibd'
                                the five collections of ../shared/data/extra, through the
                                `doc_collections/<name>` TFDS builder below (same style as
                                dibco: array_record, full pages, read without TensorFlow)

    prepare_collections(['dibco2013', 'bickley'], root='../shared/data', data_dir=...)
    collection_pages(['dibco2009', 'bickley'], root=..., data_dir=..., channels=1)
        -> one random-access source of {'image', 'mask'} pages, names '<collection>/<page>'

``root`` holds ``dibco/<year>/`` and ``extra/<name>/`` (the team's layout: ``<page>_in.png`` +
``<page>_gt.png``, ink = 0 in the ground truth). Each collection's ground truth follows its own
convention; ``EXTRA_COLLECTIONS`` records what each marks as ink and the pages left out, because a
collection that labels another thing as ink teaches that thing (see docs and issue #13).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from binjax.data import dibco
from binjax.data.folder import FolderPairs
from binjax.data.page_cache import CachedPages
from binjax.errors import ConfigError, DataError

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class Collection:
    """A benchmark collection other than DIBCO, as ../shared/data/extra/README.md describes it."""

    title: str
    ground_truth: str  # what the ground truth marks as ink, in a few words
    citation: str
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # page -> why it is left out


EXTRA_COLLECTIONS = {
    "bickley": Collection(
        "Bickley diary: handwritten English diary, grey low-contrast scans with stains",
        "all handwriting, drawn by hand",
        "F. Deng, Z. Lu, Z. Wu, M. S. Brown, BinarizationShop, JCDL 2010"),
    "monk_cuper": Collection(
        "Monk Cuper Set: 17th-18th century handwritten letters, colour, yellowed paper",
        "all handwriting, drawn by hand",
        "S. He, L. Schomaker, DeepOtsu, Pattern Recognition 91 (2019)"),
    "msi2015": Collection(
        "Synchromedia multispectral letters: one grey band of iron-gall ink letters",
        "handwritten ink only: printed text, stamps and pencil notes are background",
        "R. Hedjam et al., ICDAR 2015 MS-TEx contest; SMADI dataset",
        excluded={"H12": "rows 0-83 hold no image data (black) yet the ground truth marks ink there"}),
    "nabuco": Collection(
        "Nabuco: 1880s-1900s letters, 200 dpi colour JPEG scans, back-to-front interference",
        "machine-picked: the best of several binarization outputs, denoised (pencil notes are ink)",
        "M. Almeida et al., A New Binarization Algorithm for Historical Documents, J. Imaging 4(2), 2018"),
    "phibd": Collection(
        "PHIBD 2012: Persian manuscripts with bleed-through, stains and faded ink",
        "all script, drawn by hand",
        "S. M. Ayatollahi, H. Ziaei Nafchi, PHIBC 2012, PRIA 2013"),
}
DIBCO_COLLECTIONS = {f"dibco{year}": year for year in dibco.YEARS}
KNOWN = tuple(DIBCO_COLLECTIONS) + tuple(EXTRA_COLLECTIONS)


def parse_collections(value: str | Sequence[str], key: str = "collections") -> list[str]:
    """'dibco2009, bickley' -> ['dibco2009', 'bickley']; ConfigError naming `key` for unknown names."""
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ConfigError(f"{key}: unknown collection(s) {unknown}; known: {', '.join(KNOWN)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: a collection is named twice in {names}")
    return names


def split_collections(c) -> tuple[list[str], list[str], list[str]]:
    """(train, val, test) of a config.data.collections, checked: known names, train less
    `exclude`, train and val not empty, no collection in two of them (a collection is never split)."""
    key = "config.data.collections"
    excluded = parse_collections(c.exclude, f"{key}.exclude")
    train = [n for n in parse_collections(c.train, f"{key}.train") if n not in excluded]
    val = parse_collections(c.val, f"{key}.val")
    test = parse_collections(c.test, f"{key}.test")
    if not train or not val:
        raise ConfigError(f"{key}: give both train and val collections, e.g. {key}.train=dibco2009,bickley "
                          f"{key}.val=dibco2014")
    for (a, a_name), (b, b_name) in (((train, "train"), (val, "val")), ((train, "train"), (test, "test")),
                                     ((val, "val"), (test, "test"))):
        if set(a) & set(b):
            raise ConfigError(f"{key}: {sorted(set(a) & set(b))} in both {a_name} and {b_name}; "
                              "a collection is never split")
    return train, val, test


# ----------------------------------------------------------------------------- finding pages


def find_extra_pages(folder: PathLike, name: str) -> list[dibco.Page]:
    """The pairs of one extra collection's folder, less its excluded pages (headers checked)."""
    try:
        pairs = FolderPairs(folder, image_suffix="_in", mask_suffix="_gt", mask_foreground="black", cache=False)
    except ValueError as e:
        raise DataError(f"collection {name!r}: {e}") from None
    excluded = EXTRA_COLLECTIONS[name].excluded
    return [dibco.Page(0, stem, image, mask) for stem, (image, mask) in zip(pairs.names, pairs.pairs)
            if stem not in excluded]


class DocCollections(tfds.core.GeneratorBasedBuilder):
    """Benchmark collections beside DIBCO (Bickley, Monk Cuper, MSI 2015, Nabuco, PHIBD)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Full pages; image as published (1 or 3 channels), mask 1 = ink."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point manual_dir at a folder holding <collection>/<page>_in.<ext> and <page>_gt.<ext> "
        f"(ground truth ink = black), for the collections {', '.join(EXTRA_COLLECTIONS)}: the "
        "team's copy is ../shared/data/extra (see its README for each collection's source).")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=n, description=c.title) for n, c in EXTRA_COLLECTIONS.items()]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:  # see dibco.Dibco.code_path: no importlib_resources without TF
        return epath.Path(__file__)

    def __init__(self, *, file_format=None, **kwargs):
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        collection = EXTRA_COLLECTIONS[self.builder_config.name]
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{collection.title}. Ground truth: {collection.ground_truth}. image: uint8 "
                        "HxWxC as published (C = 1 or 3); mask: uint8 HxW, 1 = ink; name: the page.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(None, None, None), dtype=np.uint8, encoding="zlib"),
                "mask": tfds.features.Tensor(shape=(None, None), dtype=np.uint8, encoding="zlib"),
                "name": tfds.features.Text(),
            }),
            supervised_keys=("image", "mask"),
            citation=collection.citation,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        name = self.builder_config.name
        pages = find_extra_pages(pathlib.Path(dl_manager.manual_dir) / name, name)
        self.info.metadata["excluded"] = EXTRA_COLLECTIONS[name].excluded
        return {"test": self._generate_examples(pages)}

    def _generate_examples(self, pages: Sequence[dibco.Page]):
        for page in pages:
            yield page.name, {**dibco.read_page(page), "name": page.name}


def _data_dir(data_dir: PathLike | None) -> str | None:
    return os.fspath(data_dir) if data_dir else None


def extra_builder(name: str, data_dir: PathLike | None = None) -> DocCollections:
    return DocCollections(config=name, data_dir=_data_dir(data_dir))


def prepare_collections(names: Sequence[str], root: PathLike, data_dir: PathLike | None = None) -> None:
    """Builds every named collection not yet prepared in data_dir from the files under root."""
    root = pathlib.Path(root)
    for name in parse_collections(names):
        if name in DIBCO_COLLECTIONS:
            config = str(DIBCO_COLLECTIONS[name])
            if not dibco.is_prepared(config, data_dir):
                dibco.prepare(_existing(root / "dibco", name), data_dir, config)
            continue
        builder = extra_builder(name, data_dir)
        if not builder.is_prepared():
            manual = _existing(root / "extra", name)
            _existing(manual / name, name)
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual)),
                file_format="array_record")


def _existing(folder: pathlib.Path, name: str) -> pathlib.Path:
    if not folder.is_dir():
        raise DataError(f"collection {name!r}: {folder} is not a folder (root should hold dibco/<year>/ "
                        "and extra/<collection>/, as ../shared/data does)")
    return folder


# ----------------------------------------------------------------------------- reading


class ExtraPages(CachedPages):
    """Random-access pages of one prepared `doc_collections/<name>`, in page-name order."""

    _RESET_WHEN_PICKLED = ("_source",)

    def __init__(self, name: str, data_dir: PathLike | None, *, channels: int = 1, cache: bool = True):
        self.name, self.data_dir, self.channels, self.cache = name, _data_dir(data_dir), channels, cache
        builder = extra_builder(name, data_dir)
        if not builder.is_prepared():
            raise DataError(f"doc_collections/{name} is not prepared in {builder.data_dir}: "
                            "run binjax.data.collections.prepare_collections")
        index = builder.as_data_source(split="test", decoders={"image": tfds.decode.SkipDecoding(),
                                                               "mask": tfds.decode.SkipDecoding()})
        labels = [r["name"].decode() for r in index]
        self._order = sorted(range(len(labels)), key=lambda i: dibco.natural_key(labels[i]))
        self.names = [labels[i] for i in self._order]
        self._source = None
        self._init_cache()

    def _data_source(self):
        if self._source is None:
            with self._lock:
                if self._source is None:
                    self._source = extra_builder(self.name, self.data_dir).as_data_source(split="test")
        return self._source

    def __len__(self) -> int:
        return len(self._order)

    def _decode(self, index: int) -> dict[str, np.ndarray]:
        record = self._data_source()[self._order[index]]
        from binjax import imageio  # noqa: PLC0415

        return {"image": imageio.to_channels(np.asarray(record["image"]), self.channels),
                "mask": np.array(record["mask"], dtype=np.uint8)}


class ConcatPages:
    """Several page sources read as one; ``.names`` are '<collection>/<page>', ``.collections``
    each page's collection. Pickles (for grain workers) as its parts do."""

    def __init__(self, parts: dict[str, object]):
        if not parts:
            raise ConfigError("no collection given")
        self.parts = parts
        self._index = [(name, i) for name, part in parts.items() for i in range(len(part))]
        self.collections = [name for name, _ in self._index]
        self.names = [f"{name}/{_page_name(parts[name], i)}" for name, i in self._index]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        name, i = self._index[index]
        return self.parts[name][i]

    def __repr__(self) -> str:
        return f"ConcatPages({', '.join(f'{n}: {len(p)}' for n, p in self.parts.items())})"


def _page_name(part, index: int) -> str:
    name = part.names[index]
    return name.split("_", 1)[1] if isinstance(part, dibco.DibcoPages) else name  # '2013_HW01' -> 'HW01'


def collection_pages(names: str | Sequence[str], *, root: PathLike, data_dir: PathLike | None = None,
                     channels: int = 1, prepare: bool = True, key: str = "collections") -> ConcatPages:
    """One source over the named collections (DIBCO years and extra collections), prepared on
    first use from root when `prepare`."""
    names = parse_collections(names, key)
    if prepare:
        prepare_collections(names, root, data_dir)
    parts = {}
    for name in names:
        if name in DIBCO_COLLECTIONS:
            year = DIBCO_COLLECTIONS[name]
            parts[name] = dibco.DibcoPages(data_dir, str(year), "test", channels=channels)
        else:
            parts[name] = ExtraPages(name, data_dir, channels=channels)
    return ConcatPages(parts)
