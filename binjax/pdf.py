"""PDF in and out: pages rendered one at a time with PDFium, bilevel PDFs of CCITT G4 pages.

Reading (``PdfDocument``): pypdfium2, the maintained binding of Chrome's PDFium, opens a page
when it is asked for, so memory holds one page whatever the document's length. A scanned page
(one image covering the page; an OCR layer of invisible text may lie over it) gives its image's
own pixels at their resolution (decoded by PDFium, /Decode arrays and colour spaces applied,
turned by the page's /Rotate; nothing is resampled). A scan whose image cannot be taken as it is
(a /ImageMask stencil, whose samples say where the fill colour is painted, not what colour the
page is; or anything PDFium cannot hand over: JBIG2, JPX or CMYK decoders that fail, bitmap
formats PIL does not know) is rendered as a viewer shows it, at the scan's resolution. Any
other page (born-digital text, several images) is rendered at the caller's dpi (DEFAULT_DPI
unless told).

Writing (``save_pdf_pages``): img2pdf embeds each page's CCITT G4 stream as it is, without
decoding or re-encoding it (lossless, as small as the bilevel TIFF), with the page size in inches
= pixels / dpi. The PDF appears under its name only when every page is in it (temporary file +
rename), as documents.save_tiff_pages does for TIFFs.
"""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Iterable
from typing import Literal

import numpy as np
from absl import logging

from binjax import imageio, temp_files

PathLike = str | os.PathLike
Resolution = tuple[float, float]

DEFAULT_DPI = 300.0  # the usual resolution of archive scans, and of OCR engines' expectations
# A page counts as scanned when one image covers at least this share of it (scanners' margins
# and rounding of the page box leave a little uncovered).
_SCANNED_COVER = 0.9
# Kinds of failure of the direct image path already logged: a 500-page JBIG2 archive says why once.
_FALLBACKS_LOGGED: set[str] = set()


def page_count(path: PathLike) -> int:
    """Pages of the PDF, from its cross-reference table; 1 when it cannot be opened (reading will
    then report why)."""
    try:
        with PdfDocument(path) as pdf:
            return max(1, len(pdf))
    except imageio.ImageError:
        return 1


class PdfDocument:
    """An open PDF whose pages render one at a time: ``with PdfDocument(path) as pdf: pdf.render(i, 1)``.

    Raises imageio.ImageError naming the file when it is not a PDF, is damaged or is encrypted.
    """

    def __init__(self, path: PathLike):
        import pypdfium2 as pdfium  # noqa: PLC0415 -- only runs that read PDFs load PDFium

        self.path = pathlib.Path(path)
        try:
            self._pdf = pdfium.PdfDocument(self.path)
        except pdfium.PdfiumError as e:
            message = str(e)
            if "password" in message.lower():
                message = "encrypted PDF (it needs a password): decrypt it first, e.g. qpdf --decrypt"
            else:  # "Failed to load document (PDFium: Data format error)." -> the reason
                reason = message[message.find("(") + 1:message.rfind(")")] if "(" in message else message
                # PDFium refuses a PDF with no pages too, with whatever error code it last set.
                message = f"corrupt, not a PDF or without pages ({reason})"
            raise imageio.ImageError(f"{self.path}: {message}") from None
        except OSError as e:
            raise imageio.ImageError(f"{self.path}: cannot read ({e.strerror or e})") from None
        if len(self._pdf) == 0:
            self._pdf.close()
            raise imageio.ImageError(f"{self.path}: no pages")

    def __len__(self) -> int:
        return len(self._pdf)

    def __enter__(self) -> PdfDocument:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pdf.close()

    def render(self, index: int, channels: int, dpi: float = DEFAULT_DPI) -> tuple[np.ndarray, Resolution]:
        """(uint8 HxWxC page, its resolution): a scanned page's own pixels at its resolution (or,
        when they cannot be taken as they are, the page rendered at that resolution), any other
        page rendered at ``dpi``."""
        import pypdfium2 as pdfium  # noqa: PLC0415

        try:
            page = self._pdf[index]
            try:
                scan = scanned_image(page)
                image = None
                if scan is not None and _upright(scan[0]):
                    image = _direct_scan_pixels(page, scan[0], channels, f"{self.path} page {index + 1}")
                resolution = scan[1] if scan is not None else float(dpi)
                if image is None:
                    image = _render(page, resolution, channels)
            finally:
                page.close()
        except (pdfium.PdfiumError, MemoryError, ValueError) as e:
            raise imageio.ImageError(f"{self.path} page {index + 1} of {len(self)}: cannot render it ({e})") from None
        if image.ndim == 2:
            image = image[:, :, None]
        elif image.shape[2] == 4:  # BGRA/RGBA renders: the page is opaque, drop the alpha
            image = image[:, :, :3]
        return np.require(image, np.uint8, ["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"]), (resolution, resolution)


def _upright(image) -> bool:
    """The image is drawn unrotated and unmirrored (its rows are the page's, top first)."""
    m = image.get_matrix()
    return m.b == 0 and m.c == 0 and m.a > 0 and m.d > 0


def _direct_scan_pixels(page, image, channels: int, where: str) -> np.ndarray | None:
    """_scan_pixels, or None when the image cannot be taken as it is: the caller renders the page.

    Any exception counts, not only PdfiumError: an image PDFium decodes but cannot hand to PIL
    raises KeyError (a bitmap format without a PIL mode), OSError or NotImplementedError, and
    the rendered page shows the same image as a viewer does.
    """
    try:
        return _scan_pixels(page, image, channels)
    except Exception as e:  # noqa: BLE001 -- rendering is the answer to every way this fails
        kind = type(e).__name__
        if kind not in _FALLBACKS_LOGGED:
            _FALLBACKS_LOGGED.add(kind)
            logging.debug("%s: its scanned image is rendered, not taken as it is (%s: %s); said once per "
                          "kind of failure", where, kind, e)
        return None


def _scan_pixels(page, image, channels: int) -> np.ndarray:
    """A scanned page's image as it is stored: PDFium's renderer would resample it (it sizes the
    bitmap by ceil(points x scale), one pixel too many, and stretches the scan over it), so the
    scan's own pixels are taken and turned by the page's /Rotate."""
    import pypdfium2.raw as pdfium_c  # noqa: PLC0415

    # PDFium hands a stencil mask over as its coverage (255 where painted): ink would come out
    # white. A stencil is the only image without a colour space, apart from a JPX that keeps
    # its own, which rendering decodes as well.
    if image.get_metadata().colorspace == pdfium_c.FPDF_COLORSPACE_UNKNOWN:
        raise ValueError("an /ImageMask stencil, or an image without a colour space")
    pil = image.get_bitmap(render=False).to_pil()
    array = np.asarray(pil.convert("L" if channels == 1 else "RGB"))
    return np.rot90(array, k=-(page.get_rotation() // 90))  # /Rotate turns the page clockwise


def _render(page, resolution: float, channels: int) -> np.ndarray:
    scale = resolution / 72.0
    bitmap = page.render(scale=scale, grayscale=channels == 1, rev_byteorder=True)
    image = np.array(bitmap.to_numpy(), np.uint8)  # a copy: the bitmap's memory goes with it
    # PDFium sizes the bitmap by ceil(points x scale): a 48 px page at 150 dpi is 23.04 pt, which
    # the rounding of the scale makes 49 px. Crop back to the page's size at this resolution.
    width_pt, height_pt = page.get_size()
    size = (round(height_pt * scale), round(width_pt * scale))
    if page.get_rotation() in (90, 270):
        size = size[::-1]
    return image[:max(1, size[0]), :max(1, size[1])]


def embedded_dpi(page) -> float | None:
    """The resolution of a scanned page's image, or None when the page is not a scan."""
    scan = scanned_image(page)
    return None if scan is None else scan[1]


def scanned_image(page):
    """(image object, dpi) when the page is one image covering the page (a scan; the larger
    density of its two axes, rounded to a whole dpi), else None."""
    import pypdfium2.raw as pdfium_c  # noqa: PLC0415

    images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))
    if len(images) != 1:
        return None
    image = images[0]
    width_pt, height_pt = page.get_size()
    left, bottom, right, top = image.get_bounds()
    if width_pt <= 0 or height_pt <= 0 or (right - left) * (top - bottom) < _SCANNED_COVER * width_pt * height_pt:
        return None
    px_w, px_h = image.get_px_size()
    if px_w <= 0 or px_h <= 0:
        return None
    # An image turned by its matrix swaps the axes: take the larger density, so that no axis is
    # rendered below its scan's resolution.
    dpi = max(px_w, px_h) / (max(right - left, top - bottom) / 72.0)
    return image, float(round(dpi))


def _page_stream(mask: np.ndarray, dpi: Resolution, *, foreground: Literal["white", "black"], bits: int) -> bytes:
    """One page as the image file img2pdf embeds as it is: a G4 TIFF (1 bit) or a PNG (8 bits)."""
    image = imageio.mask_image("page", mask, foreground=foreground, bits=bits)
    buffer = io.BytesIO()
    if bits == 1:
        image.save(buffer, format="TIFF", compression="group4", dpi=dpi)
    else:
        image.save(buffer, format="PNG", dpi=dpi)
    return buffer.getvalue()


def save_pdf_pages(path: PathLike, pages: Iterable[tuple[np.ndarray, Resolution | None]], *,
                   foreground: Literal["white", "black"] = "black", bits: int = 1, dpi: float = DEFAULT_DPI) -> int:
    """Writes (mask, dpi) pages (1 = foreground) as one PDF, in order; returns the page count.

    Each page is encoded as it comes (CCITT G4 for 1 bit, Flate for 8) and only its compressed
    stream is kept (a 300 dpi A4 text page is ~50-150 KB), so memory holds one decoded page. A
    page without a resolution gets ``dpi`` (its size in the PDF). The file appears only when
    complete; an exception from ``pages`` leaves nothing behind.
    """
    import img2pdf  # noqa: PLC0415

    path = pathlib.Path(path)
    streams = [_page_stream(mask, resolution or (dpi, dpi), foreground=foreground, bits=bits)
               for mask, resolution in pages]
    if not streams:
        raise ValueError(f"{path}: no pages to write")
    with temp_files.atomic_write(path) as tmp, open(tmp, "wb") as f:
        img2pdf.convert(streams, outputstream=f)
    return len(streams)
