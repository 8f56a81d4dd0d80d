"""A data source of (image, mask) pairs read from folders: users' own data and DIBCO years.

Two naming rules:
  (a) ``masks_dir`` given: ``images_dir/<stem>.<ext>`` pairs with ``masks_dir/<stem>.<ext2>``
      (same stem, extensions may differ: scans as JPEG, masks as PNG).
  (b) ``masks_dir`` None: one folder holding ``<name><image_suffix>.<ext>`` and
      ``<name><mask_suffix>.<ext>`` (the DIBCO layout: ``HW01_in.png`` + ``HW01_gt.png``).
      Files matching neither suffix are ignored (e.g. predictions saved beside the pages) and
      listed in ``.ignored``.

Every problem the folders have (missing folder, no images, unpaired files, duplicate stems,
image and mask of different sizes, unreadable headers) is found at construction, from file
headers only, and reported together in one error naming the files, so a training run does not
die on page 73 an hour in.
"""

from __future__ import annotations

import collections
import os
import pathlib
from collections.abc import Sequence
from typing import Literal

import numpy as np

from binjax import documents, imageio
from binjax.data.page_cache import CachedPages

PathLike = str | os.PathLike
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_MAX_PROBLEMS_SHOWN = 20


class FolderPairs(CachedPages):
    """Random-access source of {'image': uint8 HxWxC, 'mask': uint8 HxW in {0, 1}} dicts.

    Args:
      images_dir: a folder, or a list of folders (e.g. several DIBCO years) read in order.
      masks_dir: None for rule (b); a folder (or a list as long as ``images_dir``) for rule (a).
      image_suffix, mask_suffix: stem suffixes for rule (b); unused in rule (a).
      mask_foreground: polarity of the mask files: 'white' (bright = foreground) or 'black'
        (dark = foreground, DIBCO ground truth).
      channels: 1 (grey) or 3 (RGB) for every image, whatever the file holds.
      cache: keep decoded pairs in memory after the first read. Random crops read every page
        many times per epoch and decoding a large PNG costs far more than cropping it. Each
        grain worker process holds its own copy (a DIBCO year is ~100-300 MB decoded); the
        cache is not pickled, so workers start empty. Cached arrays are read-only: transforms
        must not modify their input in place.

    ``.names`` are the pair names: the stem for one folder; with several folders, the stem
    prefixed by its folder name (``2009_H01``, ``2010_H01``) so names stay unique.
    ``.pairs`` are the (image, mask) paths, in the same order.
    """

    def __init__(
        self,
        images_dir: PathLike | Sequence[PathLike],
        masks_dir: PathLike | Sequence[PathLike] | None = None,
        *,
        image_suffix: str = "_in",
        mask_suffix: str = "_gt",
        mask_foreground: Literal["white", "black"] = "white",
        channels: int = 1,
        cache: bool = True,
    ):
        if mask_foreground not in ("white", "black"):
            raise ValueError(f"mask_foreground must be 'white' or 'black', got {mask_foreground!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if masks_dir is None and (not image_suffix or not mask_suffix or image_suffix == mask_suffix):
            raise ValueError("one-folder layout needs two different, non-empty suffixes; got "
                             f"image_suffix={image_suffix!r}, mask_suffix={mask_suffix!r}")
        image_dirs = _as_dir_list(images_dir)
        resolved = [d.resolve() for d in image_dirs]
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"the same image folder is given twice: {[str(d) for d in image_dirs]}")
        if masks_dir is None:
            mask_dirs: list[pathlib.Path | None] = [None] * len(image_dirs)
        else:
            mask_dirs = list(_as_dir_list(masks_dir))
            if len(mask_dirs) != len(image_dirs):
                raise ValueError(f"got {len(image_dirs)} image folders but {len(mask_dirs)} mask "
                                 "folders; give one mask folder per image folder")
        self.mask_foreground = mask_foreground
        self.channels = channels
        self.cache = cache

        problems: list[str] = []
        found: list[tuple[pathlib.Path, str, pathlib.Path, pathlib.Path]] = []
        self.ignored: list[pathlib.Path] = []
        for image_dir, mask_dir in zip(image_dirs, mask_dirs):
            if mask_dir is None:
                pairs = self._scan_one_folder(image_dir, image_suffix, mask_suffix, problems)
            else:
                pairs = self._scan_two_folders(image_dir, mask_dir, problems)
            found.extend((image_dir, stem, img, msk) for stem, (img, msk) in pairs)

        for _, _, img, msk in found:
            problem = size_problem(img, msk) or multipage_problem(img, msk)
            if problem:
                problems.append(problem)
        if problems:
            shown = problems[:_MAX_PROBLEMS_SHOWN]
            more = len(problems) - len(shown)
            raise ValueError(
                f"FolderPairs found {len(problems)} problem(s):\n  " + "\n  ".join(shown)
                + (f"\n  ... and {more} more" if more else "")
            )
        self.names = _unique_names([(d, stem) for d, stem, _, _ in found], prefix=len(image_dirs) > 1)
        self.pairs = [(img, msk) for _, _, img, msk in found]
        self._init_cache()

    # --------------------------------------------------------------------- scanning

    def _scan_one_folder(self, folder, image_suffix, mask_suffix, problems):
        files = _list_images(folder, problems)
        if files is None:
            return []
        images, masks = {}, {}
        for path in files:
            stem = path.stem
            if stem.endswith(image_suffix):
                _add_unique(images, stem[: -len(image_suffix)], path, problems)
            elif stem.endswith(mask_suffix):
                _add_unique(masks, stem[: -len(mask_suffix)], path, problems)
            else:
                self.ignored.append(path)
        if not images:
            problems.append(f"{folder}: no images named <name>{image_suffix}.<ext> "
                            f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
            return []
        return _match(images, masks, folder, folder, problems,
                      expected_mask=lambda name, img: f"{name}{mask_suffix}.<ext>",
                      expected_image=lambda name: f"{name}{image_suffix}.<ext>")

    def _scan_two_folders(self, image_folder, mask_folder, problems):
        image_files = _list_images(image_folder, problems)
        mask_files = _list_images(mask_folder, problems)
        if image_files is None or mask_files is None:
            return []
        images, masks = {}, {}
        for path in image_files:
            _add_unique(images, path.stem, path, problems)
        for path in mask_files:
            _add_unique(masks, path.stem, path, problems)
        if not images:
            problems.append(f"{image_folder}: no images (extensions {', '.join(IMAGE_EXTENSIONS)})")
            return []
        return _match(images, masks, image_folder, mask_folder, problems,
                      expected_mask=lambda name, img: f"{name}.<ext>",
                      expected_image=lambda name: f"{name}.<ext>")

    # --------------------------------------------------------------------- access

    def __len__(self) -> int:
        return len(self.pairs)

    def _decode(self, index: int) -> dict[str, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image = imageio.load_image(image_path, self.channels)
        mask = imageio.load_mask(mask_path, self.mask_foreground)
        if image.shape[:2] != mask.shape:  # headers agreed, so only an odd EXIF case gets here
            raise imageio.ImageError(f"{image_path}: decoded size {image.shape[:2]} differs from its "
                                     f"mask {mask_path} {mask.shape}")
        return {"image": image, "mask": mask}

    def __repr__(self) -> str:
        return (f"FolderPairs({len(self)} pairs, channels={self.channels}, "
                f"mask_foreground={self.mask_foreground!r}, cache={self.cache})")


# ------------------------------------------------------------------------- helpers


def _as_dir_list(dirs) -> list[pathlib.Path]:
    if isinstance(dirs, (str, os.PathLike)):
        return [pathlib.Path(dirs)]
    dirs = [pathlib.Path(d) for d in dirs]
    if not dirs:
        raise ValueError("got an empty list of folders")
    return dirs


def _list_images(folder: pathlib.Path, problems: list[str]) -> list[pathlib.Path] | None:
    if not folder.exists():
        problems.append(f"{folder}: folder does not exist")
        return None
    if not folder.is_dir():
        problems.append(f"{folder}: not a folder")
        return None
    # Hidden files are skipped: macOS writes '._page.png' resource forks that are not images.
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def _add_unique(table: dict, key: str, path: pathlib.Path, problems: list[str]) -> None:
    if key in table:
        problems.append(f"{path}: same name as {table[key].name} (duplicate stem {key!r}; "
                        "remove or rename one)")
    else:
        table[key] = path


def _match(images, masks, image_folder, mask_folder, problems, *, expected_mask, expected_image):
    pairs = []
    for name in sorted(images):
        if name in masks:
            pairs.append((name, (images[name], masks[name])))
        else:
            problems.append(f"{images[name]}: no mask {expected_mask(name, images[name])} in {mask_folder}")
    for name in sorted(set(masks) - set(images)):
        problems.append(f"{masks[name]}: mask without an image {expected_image(name)} in {image_folder}")
    return pairs


def size_problem(image_path: pathlib.Path, mask_path: pathlib.Path, *, mask_label: str = "mask") -> str | None:
    """Why an image and its mask cannot pair by size (read from headers only), or None."""
    try:
        image_size = imageio.image_size(image_path)
        mask_size = imageio.image_size(mask_path)
    except imageio.ImageError as e:
        return str(e)
    if image_size != mask_size:
        return (f"{image_path} is {image_size[0]}x{image_size[1]} (WxH) but its {mask_label} {mask_path} is "
                f"{mask_size[0]}x{mask_size[1]}")
    return None


def multipage_problem(*paths: pathlib.Path) -> str | None:
    """A multi-page TIFF among paths: pairs are single pages, and only page 1 would be read."""
    for path in paths:
        pages = documents.page_count(path)
        if pages > 1:
            return (f"{path} is a multi-page TIFF ({pages} pages); image/mask pairs are single pages: "
                    "save each page as its own file (and its mask likewise)")
    return None


def _unique_names(entries: list[tuple[pathlib.Path, str]], *, prefix: bool) -> list[str]:
    """Pair names: the stem for one folder; '<folder name>_<stem>' when several were given.

    With several folders every name is prefixed, not only the colliding ones (2009 and 2010
    both have H01): a table of per-page results then says which folder each page came from,
    and a name does not change when another folder is added to the list.
    """
    if not prefix:
        return [stem for _, stem in entries]
    names = [f"{folder.name}_{stem}" for folder, stem in entries]
    if len(set(names)) != len(names):  # two folders with the same name: use their full paths
        names = [str(folder / stem) for folder, stem in entries]
    if len(set(names)) != len(names):
        dupes = sorted(n for n, c in collections.Counter(names).items() if c > 1)
        raise ValueError(f"pair names are not unique even with folder prefixes: {dupes[:5]}")
    return names
