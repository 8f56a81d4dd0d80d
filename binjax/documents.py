"""Documents with pages: the unit that binarize reads and writes.

A scan is often one multi-page TIFF. ``page_count`` reads it from the header, ``iter_pages``
decodes one page at a time (a 300-page document never sits in memory at once), and
``save_tiff_pages`` writes masks as one multi-page TIFF, page by page, renamed into place only
when every page is written. Other formats are one-page documents here (an animated GIF or the
preview frame of a camera's MPO file is not a page of a document). PDF in and out (#17) belongs
here too: a new reader behind ``page_count`` / ``iter_pages`` and a writer beside
``save_tiff_pages``.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from binjax import imageio, temp_files

PathLike = str | os.PathLike
_MULTIPAGE_SUFFIXES = (".tif", ".tiff")


def page_count(path: PathLike) -> int:
    """Pages in the document at path, from its header: a TIFF's frames, 1 for anything else.

    A file whose header cannot be read counts as one page: reading it will report the problem.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() not in _MULTIPAGE_SUFFIXES:
        return 1
    try:
        with Image.open(path) as im:
            return max(1, int(getattr(im, "n_frames", 1)))
    except UnidentifiedImageError:
        try:
            import tifffile  # noqa: PLC0415 -- TIFFs that Pillow cannot identify (float64 ...)

            with tifffile.TiffFile(path) as tif:
                return max(1, len(tif.pages))
        except Exception:  # noqa: BLE001 -- unreadable: load_image will say why
            return 1
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return 1


def iter_pages(path: PathLike, channels: int, count: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, uint8 HxWxC page) for each page of the document, decoded one at a time.

    A page that cannot be decoded raises imageio.ImageError naming the file and the page; the
    caller may go on with the next index (``load_image(path, channels, page=i)``).
    """
    count = page_count(path) if count is None else count
    for index in range(count):
        yield index, load_page(path, channels, index, count)


def load_page(path: PathLike, channels: int, index: int, count: int) -> np.ndarray:
    """Page ``index`` of a ``count``-page document; errors name the page when there are several."""
    try:
        return imageio.load_image(path, channels, page=index)
    except imageio.ImageError as e:
        if count == 1:
            raise
        raise imageio.ImageError(f"{os.fspath(path)} page {index + 1} of {count}: "
                                 f"{str(e).removeprefix(os.fspath(path) + ': ')}") from None


def save_tiff_pages(path: PathLike, masks: Iterable[np.ndarray], *, foreground: Literal["white", "black"] = "black",
                    bits: int = 1) -> int:
    """Writes {0, 1} masks (1 = foreground) as the pages of one TIFF, in order; returns the count.

    ``masks`` may be a generator: each page is encoded and appended as it comes (CCITT G4 for
    1 bit, LZW for 8). The file appears under its name only when all pages are written; an
    exception from the generator leaves nothing behind (not even the temporary file).
    """
    path = pathlib.Path(path)
    tmp = temp_files.temp_path(path)
    pages = 0
    try:
        with TiffImagePlugin.AppendingTiffWriter(tmp, new=True) as tiff:
            for mask in masks:
                image = imageio.mask_image(path, mask, foreground=foreground, bits=bits)
                image.save(tiff, format="TIFF", compression=imageio.tiff_compression(bits))
                tiff.newFrame()
                pages += 1
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return pages
