"""The DIBCO competition files on disk: which years exist, how to lay out the manual download,
and finding, pairing and reading a year's pages (binjax.data.dibco builds records from them).

The official archives are named and nested differently every year, so nothing here depends on
their names: a folder belongs to the year its name carries, ground truths are told apart by a
GT suffix or a GT folder, and inputs and ground truths pair by page name.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Sequence

import numpy as np

from binjax import imageio
from binjax.data.folder import IMAGE_EXTENSIONS, size_problem

PathLike = str | os.PathLike

YEARS = (2009, 2010, 2011, 2012, 2013, 2014, 2016, 2017, 2018, 2019)

_MAX_SEARCH_DEPTH = 3  # levels of year-less folders searched below manual_dir

# Official archive names and what they extract to, for the instructions. Established from
# the MANIFEST of ../shared/data/dibco (2009, 2010, 2014 GT, 2016 GT) and from public
# download scripts (the other years); the builder does not depend on them: it recognises
# years, GT suffixes and GT folders, so renamed folders work too.
_ARCHIVES = """\
  2009  DIBC02009_Test_images-handwritten.rar, DIBCO2009_Test_images-printed.rar,
        DIBCO2009-GT-Test-images_handwritten.rar, DIBCO2009-GT-Test-images_printed.rar
        -> DIBC02009_Test_images-handwritten/H01.bmp + DIBCO2009-GT-Test-images_handwritten/H01.tiff
  2010  H_DIBCO2010_test_images.rar, H_DIBCO2010_GT.rar
        -> H_DIBCO2010_test_images/H01.tif + H_DIBCO2010_GT/H01_estGT.tiff (H01_skelGT ignored)
  2011  DIBCO11-handwritten.rar, DIBCO11-machine_printed.rar -> HW1.png + HW1_GT.tiff
  2012  H-DIBCO2012-dataset.rar -> H-DIBCO2012-dataset/H01.png + H01_GT.tif
  2013  DIBCO2013-dataset.rar -> OriginalImages/HW01.bmp + GTimages/HW01_estGT.tiff
  2014  original_images.rar, GT.rar -> H01.png + GT/H01_estGT.tiff
  2016  DIBCO2016_dataset-original.zip, DIBCO2016_dataset-GT.zip
        -> DIPCO2016_dataset/1.bmp + DIPCO2016_Dataset_GT/1_gt.bmp
  2017  DIBCO2017_Dataset.7z, DIBCO2017_GT.7z -> Dataset/1.bmp + GT/1_gt.bmp
  2018  dibco2018_Dataset.zip, dibco2018-GT.zip -> dataset/1.bmp + gt/1_gt.bmp
  2019  dibco2019_dataset_trackA.zip, dibco2019_gt_trackA.zip (and track B) -> Dataset/1.bmp + GT/1.bmp"""

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
DIBCO pages cannot be downloaded automatically (the competition sites move and serve .rar and
.7z archives). Point manual_dir (tfds.download.DownloadConfig(manual_dir=...) or
binjax.data.dibco.prepare(manual_dir, ...)) at a folder that holds, for each year you build:

  (a) <year>/<name>_in.<ext> and <year>/<name>_gt.<ext> (the binjax team's copy,
      ../shared/data/dibco: e.g. 2013/HW01_in.png + 2013/HW01_gt.png), or
  (b) the official archives of the year, extracted. Each year must sit in a folder whose name
      carries the year (e.g. 2013/, DIBCO2013/, H-DIBCO-2014/, or the archives' own folders
      when they carry it, as DIBC02009_Test_images-handwritten/ does); folders without a year
      are searched up to {_MAX_SEARCH_DEPTH} levels deep. Inside, input and ground truth are told
      apart by a GT suffix (_gt, _GT, _estGT) or a GT folder (GT, gt, GTimages, *-GT-*, *_GT),
      and paired by page name. Known official archives and what they extract to:
{_ARCHIVES}

Ground truths must have ink = black (0), as all official ones do. Inputs may be PNG, BMP, TIFF
or JPEG; every pair must have the same width and height.
"""

_MAX_PROBLEMS_SHOWN = 20
_GT_FOLDER_TOKENS = {"gt", "gtimages", "groundtruth"}
_GT_SUFFIX = re.compile(r"^(?P<base>.+?)[-_ ]?(?:est)?gt$", re.IGNORECASE)
_IN_SUFFIX = re.compile(r"[-_]in$", re.IGNORECASE)
_YEAR_4 = re.compile(r"(20(?:09|1[0-9]))(?![0-9])")
_YEAR_2 = re.compile(r"dibco[-_ ]?(09|1[0-9])(?![0-9])", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of the competition files: its input image and ground-truth file."""

    year: int
    name: str
    image: pathlib.Path
    mask: pathlib.Path

    @property
    def key(self) -> str:
        return f"{self.year}_{self.name}"


def year_of(folder_name: str) -> int | None:
    """The DIBCO year a folder name carries ('2009', 'DIBC02009_...', 'DIBCO11-...'), or None.

    None also when the name mentions several years: such a folder is searched deeper instead.
    """
    found = {int(y) for y in _YEAR_4.findall(folder_name)}
    found |= {2000 + int(y) for y in _YEAR_2.findall(folder_name)}
    found &= set(YEARS)
    return found.pop() if len(found) == 1 else None


def find_year_folders(manual_dir: PathLike) -> dict[int, list[pathlib.Path]]:
    """Year -> the folders under manual_dir that hold its files (see year_of).

    A folder whose name carries a year belongs to it with everything inside; folders without
    a year are searched up to _MAX_SEARCH_DEPTH levels deep. Hidden folders are skipped.
    """
    manual_dir = pathlib.Path(manual_dir)
    if not manual_dir.is_dir():
        raise ValueError(f"{manual_dir}: manual_dir is not a folder")
    found: dict[int, list[pathlib.Path]] = {}
    level = [manual_dir]
    for _ in range(_MAX_SEARCH_DEPTH):
        deeper = []
        for folder in level:
            for entry in sorted(folder.iterdir()):
                if not entry.is_dir() or _skipped(entry.name):
                    continue
                year = year_of(entry.name)
                if year is None:
                    deeper.append(entry)
                else:
                    found.setdefault(year, []).append(entry)
        level = deeper
    return dict(sorted(found.items()))


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"  # macOS zip artefacts


def _is_gt_folder(name: str) -> bool:
    return any(t.lower() in _GT_FOLDER_TOKENS for t in re.split(r"[^0-9A-Za-z]+", name))


def _page_name(stem: str, year: int) -> str:
    """'2011-HW1' -> 'HW1': drops a year prefix some converted copies put before the name."""
    return re.sub(rf"^(?:h-?)?(?:dibco)?[-_]?{year}[-_]", "", stem, flags=re.IGNORECASE)


def find_pages(year: int, folders: Sequence[PathLike]) -> list[Page]:
    """Pairs the input and ground-truth files of one year found in `folders` (recursively).

    A file is ground truth if its stem ends in a GT suffix (_gt, _GT, -GT, _estGT) or a folder
    on its path (from the year folder down) is a GT folder; skeleton GTs (*skel*) are skipped.
    Inputs lose an '_in' suffix. Pairs match by page name, case-insensitively. Every problem
    (unpaired file, duplicate name, size mismatch, unreadable header) is reported in one error.
    """
    images: dict[str, pathlib.Path] = {}
    masks: dict[str, pathlib.Path] = {}
    problems: list[str] = []
    for folder in map(pathlib.Path, folders):
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder.parent)
            if (path.suffix.lower() not in IMAGE_EXTENSIONS or any(_skipped(p) for p in rel.parts)
                    or "skel" in path.stem.lower() or not path.is_file()):
                continue
            gt_suffix = _GT_SUFFIX.match(path.stem)
            if gt_suffix or any(_is_gt_folder(p) for p in rel.parts[:-1]):
                table, stem = masks, gt_suffix["base"] if gt_suffix else path.stem
            else:
                table, stem = images, _IN_SUFFIX.sub("", path.stem)
            name = _page_name(stem, year)
            key = name.casefold()
            if key in table:
                problems.append(f"{path}: page {name!r} of {year} found twice (also {table[key]}); "
                                "keep one copy")
            else:
                table[key] = path
    pages = []
    for key in sorted(images):
        if key not in masks:
            problems.append(f"{images[key]}: no ground truth found for page {images[key].stem!r} of {year}")
            continue
        image, mask = images[key], masks[key]
        problem = size_problem(image, mask, mask_label="ground truth")
        if problem:
            problems.append(problem)
        pages.append(Page(year, _page_name(_IN_SUFFIX.sub("", image.stem), year), image, mask))
    for key in sorted(set(masks) - set(images)):
        problems.append(f"{masks[key]}: ground truth without an input image ({year})")
    if not images and not masks:
        problems.append(f"no image files for {year} in {[str(f) for f in folders]}")
    if problems:
        shown = problems[:_MAX_PROBLEMS_SHOWN]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ValueError(f"DIBCO {year}: {len(problems)} problem(s) in the manual files:\n  "
                         + "\n  ".join(shown) + more)
    return sorted(pages, key=lambda p: natural_key(p.name))


def natural_key(name: str) -> list:
    """Sort key putting '2' before '10' (DIBCO 2016-2019 pages are numbered 1..20)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def read_page(page: Page) -> dict[str, np.ndarray]:
    """Decodes one page as stored: image uint8 HxWxC (C = 1 for grey content), mask HxW {0,1}."""
    image = imageio.load_image(page.image, channels=3)
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]):
        image = np.ascontiguousarray(image[..., :1])  # grey page in an RGB file: lossless
    mask = imageio.load_mask(page.mask, foreground="black")  # DIBCO GT: ink = 0 -> 1
    if image.shape[:2] != mask.shape:
        raise imageio.ImageError(f"{page.image}: decoded size {image.shape[:2]} differs from its "
                                 f"ground truth {page.mask} {mask.shape}")
    return {"image": image, "mask": mask}
