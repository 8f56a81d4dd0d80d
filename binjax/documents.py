"""Documents with pages: the unit that binarize reads and writes.

A scan is often one multi-page TIFF or a PDF. ``page_count`` reads the count from the header
(a PDF's from its cross-reference table), ``open_document`` gives pages one at a time with their
resolution (a 300-page document never sits in memory at once; PDFs render through binjax.pdf),
and ``save_tiff_pages`` / ``pdf.save_pdf_pages`` write masks as one multi-page TIFF or PDF, page
by page, renamed into place only when every page is written. Other formats are one-page
documents here (an animated GIF or the preview frame of a camera's MPO file is not a page of a
document).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from binjax import imageio, pdf, temp_files

PathLike = str | os.PathLike
Resolution = tuple[float, float]
_MULTIPAGE_SUFFIXES = (".tif", ".tiff")
PDF_SUFFIX = ".pdf"


def page_count(path: PathLike) -> int:
    """Pages in the document at path, from its header: a TIFF's frames, 1 for anything else.

    A file whose header cannot be read counts as one page: reading it will report the problem.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == PDF_SUFFIX:
        return pdf.page_count(path)
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


class Document:
    """The pages of one input file, one at a time: ``with open_document(path, 1) as doc: doc.page(i)``.

    ``page(i)`` gives (uint8 HxWxC page, (x, y) dpi or None when the file records none); errors
    are imageio.ImageError naming the file and, for documents of several pages, the page.
    """

    def __init__(self, path: PathLike, channels: int, *, count: int | None = None, dpi: float = pdf.DEFAULT_DPI):
        self.path, self.channels, self.dpi = pathlib.Path(path), channels, dpi
        self._pdf = pdf.PdfDocument(self.path) if self.path.suffix.lower() == PDF_SUFFIX else None
        self.pages = len(self._pdf) if self._pdf is not None else (page_count(path) if count is None else count)

    def page(self, index: int) -> tuple[np.ndarray, Resolution | None]:
        if self._pdf is not None:
            return self._pdf.render(index, self.channels, self.dpi)
        return load_page(self.path, self.channels, index, self.pages), image_dpi(self.path, index)

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_document(path: PathLike, channels: int, *, count: int | None = None,
                  dpi: float = pdf.DEFAULT_DPI) -> Document:
    """Opens a document; a PDF that cannot be opened (corrupt, encrypted) raises ImageError now,
    an image file when its page is read. dpi: the resolution of PDF pages that are not scans."""
    return Document(path, channels, count=count, dpi=dpi)


def image_dpi(path: PathLike, index: int = 0) -> Resolution | None:
    """The (x, y) resolution an image file records for page ``index`` (PNG pHYs, TIFF or JPEG
    tags), or None when it records none or cannot say."""
    try:
        with Image.open(path) as im:
            if index:
                im.seek(index)
            dpi = im.info.get("dpi")
    except Exception:  # noqa: BLE001 -- reading the page itself reports what is wrong
        return None
    if not dpi or len(dpi) != 2 or not all(float(v) > 0 for v in dpi):
        return None
    return float(dpi[0]), float(dpi[1])


def save_tiff_pages(path: PathLike, masks: Iterable[np.ndarray | tuple[np.ndarray, Resolution | None]], *,
                    foreground: Literal["white", "black"] = "black", bits: int = 1) -> int:
    """Writes {0, 1} masks (1 = foreground) as the pages of one TIFF, in order; returns the count.

    ``masks`` may be a generator: each page is encoded and appended as it comes (CCITT G4 for
    1 bit, LZW for 8). An item may be (mask, dpi): the page's resolution tags. The file appears
    under its name only when all pages are written; an exception from the generator leaves
    nothing behind (not even the temporary file).
    """
    path = pathlib.Path(path)
    pages = 0
    with temp_files.atomic_write(path) as tmp, TiffImagePlugin.AppendingTiffWriter(tmp, new=True) as tiff:
        for item in masks:
            mask, dpi = item if isinstance(item, tuple) else (item, None)
            image = imageio.mask_image(path, mask, foreground=foreground, bits=bits)
            options = {"dpi": dpi} if dpi else {}
            image.save(tiff, format="TIFF", compression=imageio.tiff_compression(bits), **options)
            tiff.newFrame()
            pages += 1
    return pages
