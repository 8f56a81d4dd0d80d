"""DIBCO / H-DIBCO as a TensorFlow Datasets builder, read by grain without TensorFlow.

    prepare(manual_dir, data_dir, 'fixed')          decode the competition files once into
                                                    array_record files under data_dir
    DibcoPages(data_dir, 'fixed', 'train', channels=1)
                                                    random-access source for binjax.data.pipeline
    tfds.data_source('dibco/fixed', data_dir=..., split='test')
                                                    the same records, from any process, no TF

Records hold FULL pages (training crops patches on the fly, evaluation scores whole pages):
  image  uint8 HxWxC, C = 1 or 3 as the competition published it. An RGB file whose three
         channels are equal is stored with one channel (lossless, and the team's PNG copy
         in ../shared/data/dibco made the same choice, so both layouts give identical records).
  mask   uint8 HxW in {0, 1}, 1 = ink. The files' polarity (ink = 0) is converted here.
  name   the competition's page name ('H01', 'HW5', '7'), year int32.
Both arrays are stored as zlib-compressed tfds Tensors: `tfds.features.Image` needs TF to
encode arrays, while a zlib Tensor encodes and decodes with numpy alone and keeps C per page.

Configs (``tfds.builder('dibco/<config>')``):
  '2009' ... '2019'  one competition year, split 'test' (every official DIBCO page is a test
                     page; there is no 2015 config). 2017-2019 build for users who have them.
  'fixed'            train = 2009-2012, 2014, 2016; test = 2013 (the common protocol).
  'loyo_<year>'      leave one year out: test = <year>, train = every other year found in
                     manual_dir. The years used are saved in info.metadata['years'].
Percent slices of a split work as in tfds ('train[:85%]', 'train[85%:]'): records are stored
in tfds's hash order, so a slice is a fixed pseudo-random subset of pages.

manual_dir layouts (both may be mixed; see MANUAL_DOWNLOAD_INSTRUCTIONS):
  - the team's copy: <year>/<name>_in.png + <name>_gt.png;
  - the official archives, extracted: any folder whose name carries the year (2009, DIBCO2013,
    H-DIBCO-2014, DIBCO11-handwritten, DIPCO2016_dataset, ...) holds that year's files, in any
    sub-folders. Ground truths are recognised by a GT suffix (H01_estGT.tiff, HW1_GT.tiff,
    1_gt.bmp) or a GT folder (DIBCO2009-GT-Test-images_handwritten/, H_DIBCO2010_GT/,
    GTimages/, GT/, gt/); skeleton GTs (*_skelGT) are skipped.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from binjax import imageio
from binjax.data.dibco_files import (  # noqa: F401  (also this module's API: dibco.find_pages, ...)
    MANUAL_DOWNLOAD_INSTRUCTIONS, YEARS, Page, find_pages, find_year_folders, natural_key, read_page,
    year_of)
from binjax.data.page_cache import CachedPages

PathLike = str | os.PathLike

FIXED_TRAIN_YEARS = (2009, 2010, 2011, 2012, 2014, 2016)
FIXED_TEST_YEARS = (2013,)
# Pages in each official release; a year with another count is built with a warning
# (the team's copy of 2013 lacks HW08).
OFFICIAL_PAGES = {2009: 10, 2010: 10, 2011: 16, 2012: 14, 2013: 16, 2014: 10, 2016: 10,
                  2017: 20, 2018: 10, 2019: 20}

COMPETITIONS = {  # year: (short name, authors, title, conference, venue)
    2009: ("DIBCO 2009", "B. Gatos and K. Ntirogiannis and I. Pratikakis",
           "ICDAR 2009 Document Image Binarization Contest (DIBCO 2009)", "ICDAR 2009",
           "International Conference on Document Analysis and Recognition (ICDAR)"),
    2010: ("H-DIBCO 2010", "I. Pratikakis and B. Gatos and K. Ntirogiannis",
           "H-DIBCO 2010 - Handwritten Document Image Binarization Competition", "ICFHR 2010",
           "International Conference on Frontiers in Handwriting Recognition (ICFHR)"),
    2011: ("DIBCO 2011", "I. Pratikakis and B. Gatos and K. Ntirogiannis",
           "ICDAR 2011 Document Image Binarization Contest (DIBCO 2011)", "ICDAR 2011",
           "International Conference on Document Analysis and Recognition (ICDAR)"),
    2012: ("H-DIBCO 2012", "I. Pratikakis and B. Gatos and K. Ntirogiannis",
           "ICFHR 2012 Competition on Handwritten Document Image Binarization (H-DIBCO 2012)",
           "ICFHR 2012", "International Conference on Frontiers in Handwriting Recognition (ICFHR)"),
    2013: ("DIBCO 2013", "I. Pratikakis and B. Gatos and K. Ntirogiannis",
           "ICDAR 2013 Document Image Binarization Contest (DIBCO 2013)", "ICDAR 2013",
           "International Conference on Document Analysis and Recognition (ICDAR)"),
    2014: ("H-DIBCO 2014", "K. Ntirogiannis and B. Gatos and I. Pratikakis",
           "ICFHR2014 Competition on Handwritten Document Image Binarization (H-DIBCO 2014)",
           "ICFHR 2014", "International Conference on Frontiers in Handwriting Recognition (ICFHR)"),
    2016: ("H-DIBCO 2016", "I. Pratikakis and K. Zagoris and G. Barlas and B. Gatos",
           "ICFHR2016 Handwritten Document Image Binarization Contest (H-DIBCO 2016)", "ICFHR 2016",
           "International Conference on Frontiers in Handwriting Recognition (ICFHR)"),
    2017: ("DIBCO 2017", "I. Pratikakis and K. Zagoris and G. Barlas and B. Gatos",
           "ICDAR2017 Competition on Document Image Binarization (DIBCO 2017)", "ICDAR 2017",
           "International Conference on Document Analysis and Recognition (ICDAR)"),
    2018: ("H-DIBCO 2018", "I. Pratikakis and K. Zagoris and P. Kaddas and B. Gatos",
           "ICFHR 2018 Competition on Handwritten Document Image Binarization (H-DIBCO 2018)",
           "ICFHR 2018", "International Conference on Frontiers in Handwriting Recognition (ICFHR)"),
    2019: ("DIBCO 2019", "I. Pratikakis and K. Zagoris and X. Karagiannis and L. Tsochatzidis "
           "and T. Mondal and I. Marthot-Santaniello",
           "ICDAR 2019 Competition on Document Image Binarization (DIBCO 2019)", "ICDAR 2019",
           "International Conference on Document Analysis and Recognition (ICDAR)"),
}



# ----------------------------------------------------------------------------- protocols


def config_years(config_name: str, available: Iterable[int]) -> dict[str, list[int]]:
    """Split name -> years for a config, given the years found in manual_dir (a pure function).

    Per-year configs: {'test': [year]}. 'fixed': 2009-2012, 2014, 2016 / 2013; every one of
    them must be available. 'loyo_<year>': test = [year], train = all other available years.
    Raises ValueError naming the missing years.
    """
    available = sorted(set(int(y) for y in available))
    if config_name.isdigit():
        wanted = {"test": [int(config_name)]}
    elif config_name == "fixed":
        wanted = {"train": list(FIXED_TRAIN_YEARS), "test": list(FIXED_TEST_YEARS)}
    elif config_name.startswith("loyo_") and config_name[5:].isdigit():
        held_out = int(config_name[5:])
        wanted = {"train": [y for y in available if y != held_out], "test": [held_out]}
        if not wanted["train"]:
            raise ValueError(f"config {config_name!r}: no training year found besides {held_out} "
                             f"(found {available})")
    else:
        raise ValueError(f"unknown DIBCO config {config_name!r}; known: {CONFIG_NAMES}")
    if any(y not in YEARS for ys in wanted.values() for y in ys):
        raise ValueError(f"config {config_name!r}: DIBCO years are {YEARS}")
    missing = sorted({y for ys in wanted.values() for y in ys} - set(available))
    if missing:
        raise ValueError(f"config {config_name!r} needs DIBCO year(s) {missing}, not found in "
                         f"manual_dir (found {available or 'none'}); see the manual download "
                         "instructions in binjax/data/dibco_files.py")
    return wanted


def _static_years(config_name: str) -> list[int]:
    """Years a config can draw from, for its description and citation (before building)."""
    if config_name.isdigit():
        return [int(config_name)]
    if config_name == "fixed":
        return sorted(FIXED_TRAIN_YEARS + FIXED_TEST_YEARS)
    return list(YEARS)


# ----------------------------------------------------------------------------- the builder


def _bibtex(year: int) -> str:
    _, authors, title, _, venue = COMPETITIONS[year]
    return (f"@inproceedings{{dibco{year},\n  author = {{{authors}}},\n  title = {{{title}}},\n"
            f"  booktitle = {{{venue}}},\n  year = {{{year}}}\n}}")


def _config_description(name: str) -> str:
    if name.isdigit():
        year = int(name)
        short, _, _, conference, _ = COMPETITIONS[year]
        return (f"{short} ({conference}): the {OFFICIAL_PAGES[year]} pages of the official "
                "release, split 'test'.")
    if name == "fixed":
        return ("Common fixed protocol: train = DIBCO 2009-2012, 2014, 2016; test = DIBCO 2013.")
    return (f"Leave one year out: test = DIBCO {name[5:]}; train = every other year found in "
            "manual_dir (saved in info.metadata['years']).")


CONFIG_NAMES = tuple([str(y) for y in YEARS] + ["fixed"] + [f"loyo_{y}" for y in YEARS])


class Dibco(tfds.core.GeneratorBasedBuilder):
    """DIBCO / H-DIBCO document binarization benchmarks, full pages with ink masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Full pages; image as published (1 or 3 channels), mask 1 = ink."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=n, description=_config_description(n))
                       for n in CONFIG_NAMES]
    DEFAULT_BUILDER_CONFIG_NAME = "fixed"

    # tfds 4.9.10 finds a builder's file through `importlib_resources` when the builder lives in
    # a package, and that module is not installed without TensorFlow's dependencies; the plain
    # file path is all it needs (checksums and metadata are looked up beside it).
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def __init__(self, *, file_format=None, **kwargs):
        # array_record by default: the only format tfds reads without TensorFlow.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo built directly: dataset_info_from_configs() needs a registered module.
        years = _static_years(self.builder_config.name)
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Degraded historical document pages (handwritten and printed) with pixel-level "
                "ground truth from the DIBCO / H-DIBCO competitions. image: uint8 HxWxC with C = 1 "
                "(grey) or 3 (colour) as published; mask: uint8 HxW, 1 = ink, 0 = background; "
                "name: the competition's page name; year: the competition year."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(None, None, None), dtype=np.uint8, encoding="zlib"),
                "mask": tfds.features.Tensor(shape=(None, None), dtype=np.uint8, encoding="zlib"),
                "name": tfds.features.Text(),
                "year": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("image", "mask"),
            citation="\n\n".join(_bibtex(y) for y in years),
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        manual_dir = pathlib.Path(dl_manager.manual_dir)
        folders = find_year_folders(manual_dir)
        splits = config_years(self.builder_config.name, folders)
        self.info.metadata["years"] = splits
        generators = {}
        for split, years in splits.items():
            pages = []
            for year in years:
                found = find_pages(year, folders[year])
                if len(found) != OFFICIAL_PAGES[year]:
                    logging.warning("DIBCO %d: %d pages found in %s, the official release has %d",
                                    year, len(found), [str(f) for f in folders[year]], OFFICIAL_PAGES[year])
                pages.extend(found)
            generators[split] = self._generate_examples(pages)
        return generators

    def _generate_examples(self, pages: Sequence[Page]):
        for page in pages:
            example = read_page(page)
            yield page.key, {**example, "name": page.name, "year": page.year}


# ----------------------------------------------------------------------------- preparing


def config_from_name(name: str) -> str:
    """'dibco/fixed' or 'fixed' -> 'fixed' (checked against the known configs)."""
    dataset, _, config = name.rpartition("/")
    if dataset not in ("", "dibco") or ":" in config or config not in CONFIG_NAMES:
        raise ValueError(f"{name!r} is not a DIBCO dataset; use 'dibco/<config>' with a config in "
                         f"{CONFIG_NAMES}")
    return config


def _data_dir(data_dir: PathLike | None) -> str | None:
    return os.fspath(data_dir) if data_dir else None  # None / '': tfds's default folder


def builder(config_name: str = "fixed", data_dir: PathLike | None = None) -> Dibco:
    return Dibco(config=config_from_name(config_name), data_dir=_data_dir(data_dir))


def is_prepared(config_name: str, data_dir: PathLike | None = None) -> bool:
    return builder(config_name, data_dir).is_prepared()


def prepare(manual_dir: PathLike, data_dir: PathLike | None = None, config_name: str = "fixed",
            *, overwrite: bool = False) -> Dibco:
    """Builds `dibco/<config_name>` from the files in manual_dir into data_dir; returns the builder.

    A prepared dataset is reused (tfds's default) unless overwrite=True: after changing the
    files in manual_dir, rebuild with overwrite=True. Prepare once before starting several
    training processes: concurrent builds into one data_dir race each other.
    """
    dataset = builder(config_name, data_dir)
    modes = tfds.download.GenerateMode
    config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir),
        download_mode=modes.REUSE_CACHE_IF_EXISTS if overwrite else modes.REUSE_DATASET_IF_EXISTS)
    dataset.download_and_prepare(download_config=config, file_format="array_record")
    return dataset


# ----------------------------------------------------------------------------- reading


def _skip_arrays() -> dict:
    return {"image": tfds.decode.SkipDecoding(), "mask": tfds.decode.SkipDecoding()}


class DibcoPages(CachedPages):
    """Random-access source of {'image': uint8 HxWxC, 'mask': uint8 HxW in {0, 1}} pages.

    Reads a prepared `dibco/<config_name>` split through tfds's array_record data source (no
    TensorFlow). Pages are ordered by (year, name), whatever tfds's storage order;
    ``.names`` are '<year>_<name>' ('2013_HW01'), ``.years`` their years.

    Args:
      data_dir: the tfds data_dir the dataset was prepared in ('' / None: tfds's default).
      config_name: 'fixed', 'loyo_2013', '2009', ... (or 'dibco/fixed').
      split: 'train', 'test', or a tfds slice such as 'train[:85%]'.
      years: keep only pages of these competition years (None: all). With it one prepared
        split serves as training and validation source: 'fixed' train with years
        2009-2012 to train and 2014 to validate, say.
      channels: 1 (grey, ITU-R 601 luma as binjax.imageio) or 3 (grey repeated), per page.
      cache: keep decoded pages after the first read, as FolderPairs does (the 'fixed' train
        split holds ~130 MB of grey pages and masks, ~260 MB with RGB). Not pickled: every
        grain worker starts empty. Cached arrays are read-only.
    """

    _RESET_WHEN_PICKLED = ("_source",)  # the array_record reader is reopened in each worker

    def __init__(self, data_dir: PathLike | None, config_name: str = "fixed", split: str = "test",
                 *, years: Iterable[int] | None = None, channels: int = 1, cache: bool = True):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.data_dir = _data_dir(data_dir)
        self.config_name = config_from_name(config_name)
        self.split = split
        self.channels = channels
        self.cache = cache
        dataset = builder(self.config_name, self.data_dir)
        if not dataset.is_prepared():
            raise FileNotFoundError(
                f"dibco/{self.config_name} is not prepared in {dataset.data_dir}: run "
                f"binjax.data.dibco.prepare(manual_dir, {self.data_dir!r}, {self.config_name!r}) "
                "(or set config.data.tfds.manual_dir)")
        index = dataset.as_data_source(split=split, decoders=_skip_arrays())  # name/year only
        labels = [(int(r["year"]), r["name"].decode()) for r in index]
        kept = range(len(labels))
        if years is not None:
            wanted = {int(y) for y in years}
            found = {year for year, _ in labels}
            if not wanted <= found:
                raise ValueError(f"dibco/{self.config_name} split {split!r} has no page of year(s) "
                                 f"{sorted(wanted - found)}; its years are {sorted(found)}")
            kept = [i for i in kept if labels[i][0] in wanted]
        self._order = sorted(kept, key=lambda i: (labels[i][0], natural_key(labels[i][1])))
        self.years = [labels[i][0] for i in self._order]
        self.names = [f"{labels[i][0]}_{labels[i][1]}" for i in self._order]
        self._source = None
        self._init_cache()

    def _data_source(self):
        if self._source is None:  # opened lazily: also after unpickling in a grain worker
            with self._lock:
                if self._source is None:
                    self._source = builder(self.config_name, self.data_dir).as_data_source(split=self.split)
        return self._source

    def __len__(self) -> int:
        return len(self._order)

    def _decode(self, index: int) -> dict[str, np.ndarray]:
        record = self._data_source()[self._order[index]]
        image = imageio.to_channels(np.asarray(record["image"]), self.channels)
        mask = np.array(record["mask"], dtype=np.uint8)  # decoded buffers are read-only
        return {"image": image, "mask": mask}

    def __repr__(self) -> str:
        return (f"DibcoPages(dibco/{self.config_name}, split={self.split!r}, {len(self)} pages, "
                f"channels={self.channels})")

