"""Reading and writing document images and binary masks at the file boundary.

Everything inside binjax works on numpy arrays with one convention (see CONTRACT.md):
images are uint8 HxWxC with C in {1, 3}; masks are uint8 HxW with values {0, 1} and
1 = foreground (ink). This module is the only place that knows about file modes, bit
depths, alpha channels and mask polarity, and converts all of them to that convention.

Decoding goes through Pillow. Two things Pillow does not do the way we want are handled here:
- TIFFs with 16 bits per sample and more than one sample (48-bit RGB, 64-bit RGBA) are reduced
  by Pillow to 8 bits by keeping the high byte, and float TIFFs other than single-channel
  float32 are not opened at all. Such TIFFs are read with tifffile (installed with
  scikit-image) so that 16-bit data is scaled exactly like 16-bit grey: round(v / 257).
- 16-bit RGB PNGs have no 16-bit Pillow mode; Pillow keeps the high byte (v >> 8), which is at
  most one grey level away from round(v / 257). We accept that rather than decode PNG by hand.

Truncated files raise ImageError: we rely on Pillow's default
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = False`` and warn once if another library switched it on,
because then Pillow fills the missing rows with grey instead of failing.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from binjax import temp_files

PathLike = str | os.PathLike

# Extensions save_mask writes; reading accepts whatever Pillow (or tifffile) opens.
_SAVE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}
_TIFF_SUFFIXES = (".tif", ".tiff")
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
# Formats whose EXIF orientation we apply: camera/scanner formats, where it sits in the header.
# (PNG keeps EXIF in an optional chunk that Pillow can only find by decoding the whole file.)
_EXIF_FORMATS = {"JPEG", "MPO", "TIFF", "WEBP"}
_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """A file that cannot be read as an image or mask; the message starts with the path."""


def _fail(path: PathLike, what: str) -> ImageError:
    return ImageError(f"{os.fspath(path)}: {what}")


_warned_truncated_flag = False


def _check_truncation_flag() -> None:
    global _warned_truncated_flag
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned_truncated_flag:
        _warned_truncated_flag = True
        warnings.warn(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by another library): truncated "
            "image files will load with grey rows instead of raising ImageError.",
            stacklevel=3,
        )


# ----------------------------------------------------------------------------- decoding


def _decode(path: PathLike, page: int = 0) -> tuple[np.ndarray, str]:
    """Decodes one frame (page) of an image file without changing its sample values.

    Returns (array HxWxK, layout) with layout in {'L', 'LA', 'RGB', 'RGBA'} (K = 1, 2, 3, 4)
    and dtype uint8, uint16 or float32. EXIF orientation of JPEG/TIFF/WebP files is applied, so
    the array is the image as a viewer shows it (phone photos of pages store rotation in EXIF).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a regular file")
    _check_truncation_flag()
    try:
        with Image.open(path) as im:
            if page:
                try:
                    im.seek(page)
                except EOFError:
                    raise _fail(path, f"has no page {page + 1} (it has {getattr(im, 'n_frames', 1)})") from None
            if path.suffix.lower() in _TIFF_SUFFIXES and _needs_tifffile(im):
                return _decode_tiff(path, page)
            if im.format in _EXIF_FORMATS:
                im = ImageOps.exif_transpose(im)
            im.load()  # decode now, inside the try: truncation is detected here
            return _from_pillow(im, path)
    except ImageError:
        raise
    except UnidentifiedImageError:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            return _decode_tiff(path, page)  # float64 / float RGB TIFFs: Pillow cannot identify them
        raise _fail(path, "not an image file Pillow can identify (corrupt or wrong extension?)") from None
    except Image.DecompressionBombError as e:
        raise _fail(path, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        # Truncated data ('image file is truncated'), broken chunks/CRCs ('broken PNG file'),
        # zlib errors, unsupported compressions ...: all mean the file cannot be used as is.
        raise _fail(path, f"corrupt or truncated image ({type(e).__name__}: {e})") from None


def _needs_tifffile(im: Image.Image) -> bool:
    """True for 16-bit multi-sample TIFFs, which Pillow would reduce to their high byte."""
    bits = im.tag_v2.get(258, (8,)) if hasattr(im, "tag_v2") else (8,)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return len(bits) > 1 and max(bits) > 8


def _from_pillow(im: Image.Image, path: pathlib.Path) -> tuple[np.ndarray, str]:
    mode = im.mode
    if mode == "1":
        return np.asarray(im.convert("L"))[..., None], "L"  # 0 / 255
    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
        return (arr[..., None] if arr.ndim == 2 else arr), mode
    if mode.startswith("I;16"):  # I;16, I;16L, I;16B, I;16N: native byte order after asarray
        return np.asarray(im).astype(np.uint16)[..., None], "L"
    if mode == "I":
        # 32-bit integer mode: how Pillow opens some 16-bit PNG/TIFF files. Accept the 16-bit
        # range; larger values have no agreed meaning for an 8-bit grey page.
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise _fail(path, f"32-bit integer image with values in [{arr.min()}, {arr.max()}]; "
                        "only 8/16-bit ranges are supported")
        return arr.astype(np.uint16)[..., None], "L"
    if mode == "F":
        return np.asarray(im, dtype=np.float32)[..., None], "L"
    if mode in ("P", "PA"):
        # Palette colours are what the user sees; tRNS transparency becomes a real alpha.
        has_alpha = mode == "PA" or im.has_transparency_data
        target = "RGBA" if has_alpha else "RGB"
        return np.asarray(im.convert(target)), target
    if mode in ("La",):
        return np.asarray(im.convert("LA")), "LA"
    if mode in ("RGBa",):
        return np.asarray(im.convert("RGBA")), "RGBA"
    # CMYK, YCbCr, RGBX, LAB, HSV ...: Pillow's own conversion to RGB. CMYK is converted
    # without an ICC profile (naive 255 - C etc.), good enough to find dark ink on a page.
    try:
        return np.asarray(im.convert("RGB")), "RGB"
    except ValueError as e:
        raise _fail(path, f"unsupported image mode {mode!r} ({e})") from None


def _decode_tiff(path: pathlib.Path, page: int = 0) -> tuple[np.ndarray, str]:
    """Reads one page of a TIFF with tifffile (16-bit colour, float64, float RGB)."""
    try:
        import tifffile  # noqa: PLC0415 -- only needed for these rare TIFFs
    except ImportError:
        raise _fail(path, "TIFF that Pillow cannot decode exactly and tifffile is not installed") from None
    try:
        with tifffile.TiffFile(path) as tif:
            frame = tif.pages[page]
            arr = frame.asarray()
            photometric = int(frame.photometric)
            planar_separate = int(frame.planarconfig) == 2
    except Exception as e:  # tifffile raises many types (TiffFileError, ValueError, ...)
        raise _fail(path, f"corrupt or unsupported TIFF ({type(e).__name__}: {e})") from None
    if photometric not in (0, 1, 2):  # MINISWHITE, MINISBLACK, RGB
        raise _fail(path, f"TIFF photometric interpretation {photometric} (e.g. CMYK, YCbCr, "
                    "palette) is not supported at this bit depth; convert it to grey or RGB")
    if planar_separate and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise _fail(path, f"TIFF page with shape {arr.shape} is not a 2-D grey/RGB(A) image")
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    elif arr.dtype in (np.uint8, np.uint16):
        pass
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    else:
        raise _fail(path, f"TIFF sample type {arr.dtype} is not supported (use 8/16-bit or float)")
    if photometric == 0:  # MINISWHITE: 0 is white
        top = 1.0 if arr.dtype.kind == "f" else np.iinfo(arr.dtype).max
        arr = top - arr
    return arr, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]]


def _to_uint8(arr: np.ndarray, path: PathLike) -> np.ndarray:
    """Scales decoded samples to uint8: 16-bit by round(v / 257), float from [0, 1]."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        # (v + 128) // 257 == round(v / 257) for all 16-bit v; 65535 -> 255, 0 -> 0.
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype.kind == "f":
        if arr.size and not np.isfinite(arr).all():
            raise _fail(path, "float image contains NaN or infinite values")
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
        if lo < 0.0 or hi > 1.0:
            raise _fail(path, f"float image with values in [{lo:g}, {hi:g}]; only float images in "
                        "[0, 1] are supported (save 8- or 16-bit integers instead)")
        return np.rint(arr * 255.0).astype(np.uint8)
    raise _fail(path, f"unexpected sample type {arr.dtype}")


def _split_alpha(arr: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(colour, alpha or None, colour layout) from a decoded array."""
    if layout in ("LA", "RGBA"):
        return arr[..., :-1], arr[..., -1:], layout[:-1]
    return arr, None, layout


def _composite(colour8: np.ndarray, alpha8: np.ndarray | None, background: int) -> np.ndarray:
    """Drops alpha by compositing over a constant grey level (rounded integer arithmetic)."""
    if alpha8 is None:
        return colour8
    colour = colour8.astype(np.uint32)
    alpha = alpha8.astype(np.uint32)
    return ((colour * alpha + background * (255 - alpha) + 127) // 255).astype(np.uint8)


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of a uint8 HxWx3 array, bit-exact with Pillow's convert('L')."""
    rgb = rgb.astype(np.uint32)
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return luma.astype(np.uint8)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 HxWxC page with C = channels: RGB -> grey by ITU-R 601 luma , grey -> RGB."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3) or image.dtype != np.uint8:
        raise ValueError(f"expected an uint8 HxWx1 or HxWx3 page, got {image.dtype} {image.shape}")
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        return rgb_to_grey(image)[..., None]
    return np.repeat(image, 3, axis=-1)


def _grey_u8(colour8: np.ndarray, layout: str) -> np.ndarray:
    """HxW uint8 grey from an alpha-free 'L' (HxWx1) or 'RGB' (HxWx3) array."""
    return colour8[..., 0] if layout == "L" else rgb_to_grey(colour8)


# ----------------------------------------------------------------------------- public API


def image_size(path: PathLike) -> tuple[int, int]:
    """(width, height) as load_image would return it, read from the header only (cheap).

    EXIF orientations that rotate by 90 degrees swap the two, like load_image does.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a regular file")
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1) if im.format in _EXIF_FORMATS else 1
    except UnidentifiedImageError:
        if path.suffix.lower() not in _TIFF_SUFFIXES:
            raise _fail(path, "not an image file Pillow can identify (corrupt or wrong extension?)") from None
        return _tiff_size(path)
    except Image.DecompressionBombError as e:
        raise _fail(path, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise _fail(path, f"corrupt image header ({type(e).__name__}: {e})") from None
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return width, height


def _tiff_size(path: pathlib.Path) -> tuple[int, int]:
    try:
        import tifffile  # noqa: PLC0415

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return int(page.imagewidth), int(page.imagelength)
    except Exception as e:
        raise _fail(path, f"corrupt or unsupported TIFF ({type(e).__name__}: {e})") from None


def load_image(path: PathLike, channels: int, page: int = 0) -> np.ndarray:
    """Reads an image file (one page of it: 0 = the first) as uint8 HxWxC, C = channels (1 = grey, 3 = RGB).

    - 16-bit samples are scaled by round(v / 257); float images must lie in [0, 1].
    - Alpha (RGBA, LA, palette with transparency) is composited over WHITE: scanned or
      exported pages with transparent areas show a white sheet in every viewer, and white is
      what document binarization treats as background, so transparent = paper.
    - Palette images become RGB through their palette; 1-bit images become 0 / 255.
    - channels=1 from colour uses ITU-R 601 luma (as Pillow's convert('L')); channels=3 from
      grey repeats the grey level in R, G and B.

    Raises ImageError (a ValueError) naming the file for missing, corrupt, truncated or
    non-image files and for sample ranges that have no 8-bit meaning.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    colour, alpha, layout = _split_alpha(*_decode(path, page))
    alpha8 = None if alpha is None else _to_uint8(alpha, path)
    rgb_or_l = _composite(_to_uint8(colour, path), alpha8, background=255)
    if channels == 1:
        out = _grey_u8(rgb_or_l, layout)[..., None]
    elif layout == "L":
        out = np.repeat(rgb_or_l, 3, axis=-1)
    else:
        out = rgb_or_l
    # Arrays made from Pillow buffers are read-only views; callers get their own writable copy.
    return np.require(out, np.uint8, ["C_CONTIGUOUS", "WRITEABLE", "OWNDATA"])


def load_mask(path: PathLike, foreground: Literal["white", "black"]) -> np.ndarray:
    """Reads a mask file as uint8 HxW with values {0, 1}, 1 = foreground.

    foreground='black' means dark pixels are foreground (DIBCO ground truth: ink = 0);
    'white' means bright pixels are (most segmentation datasets).

    - The file is reduced to grey (16-bit scaled by /257, colour by 601 luma) and thresholded
      at half range: grey >= 128 is white. Masks with intermediate levels (JPEG artefacts,
      anti-aliased edges) are thresholded too; a warning names the file.
    - Label images whose integer values are all in {0, 1} (common 'index' masks) are read as
      such before any scaling: 1 is the brighter value, so with foreground='white' the
      pixels equal to 1 are foreground.
    - Transparent pixels are BACKGROUND whatever the polarity: alpha is composited over the
      background colour (white for foreground='black', black for 'white'). Annotation tools
      export masks as opaque strokes on a transparent layer; compositing always over white
      would erase white strokes.
    - A warning is also given when a file with several grey levels thresholds to a constant
      mask (e.g. values {0, 255} stored in a 16-bit file would all fall below 128 after
      scaling), since that is almost always a format mistake rather than an empty mask.
    """
    if foreground not in ("white", "black"):
        raise ValueError(f"foreground must be 'white' or 'black', got {foreground!r}")
    colour, alpha, layout = _split_alpha(*_decode(path))
    if colour.dtype.kind == "u" and colour.size and int(colour.max()) <= 1:
        colour8 = colour.astype(np.uint8) * 255  # {0, 1} label image: 1 is the bright value
    else:
        colour8 = _to_uint8(colour, path)
    alpha8 = None if alpha is None else _to_uint8(alpha, path)
    background = 255 if foreground == "black" else 0
    grey = _grey_u8(_composite(colour8, alpha8, background=background), layout)
    white = grey >= 128
    _warn_if_suspicious(path, grey, white)
    mask = ~white if foreground == "black" else white
    return mask.astype(np.uint8)


def _warn_if_suspicious(path: PathLike, grey: np.ndarray, white: np.ndarray) -> None:
    """One warning for masks that are probably not what their author meant."""
    counts = np.bincount(grey.ravel(), minlength=256)
    levels = np.count_nonzero(counts)
    if levels >= 2 and (white.all() or not white.any()):
        side = "at or above" if white.all() else "below"
        warnings.warn(
            f"{os.fspath(path)}: mask has {levels} grey levels but all of them are {side} the "
            "threshold 128, so the mask is constant; is its bit depth or polarity what you expect?",
            stacklevel=3,
        )
        return
    between = int(counts[1:255].sum())
    if between:
        warnings.warn(
            f"{os.fspath(path)}: mask is not binary ({levels} grey levels, "
            f"{between / grey.size:.2%} of pixels strictly between 0 and 255, e.g. JPEG "
            "artefacts or anti-aliasing); thresholded at 128",
            stacklevel=3,
        )


def save_mask(
    path: PathLike,
    mask01: np.ndarray,
    *,
    foreground: Literal["white", "black"] = "black",
    bits: int = 1,
    overwrite: bool = True,
    dpi: tuple[float, float] | None = None,
) -> None:
    """Writes a {0, 1} mask (1 = foreground) as PNG or TIFF, chosen by the file extension.

    foreground='black' writes foreground as 0 (DIBCO convention), 'white' as 255.
    bits=1 writes a bilevel image (mode '1'; TIFFs use CCITT Group 4, the usual compression
    for bilevel document scans); bits=8 writes 8-bit grey with values {0, 255}.
    The file is written next to its destination and renamed into place, so an interrupted
    run never leaves a half-written mask. overwrite=False raises FileExistsError instead of
    replacing an existing file. dpi: the (x, y) resolution to record (PNG pHYs, TIFF tags).
    """
    path = pathlib.Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise _fail(path, f"cannot save a mask with extension {path.suffix!r}; use .png, .tif or .tiff")
    im = mask_image(path, mask01, foreground=foreground, bits=bits)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path}: already exists and overwrite=False")
    options = {"dpi": tuple(dpi)} if dpi else {}
    if fmt == "TIFF":
        options["compression"] = tiff_compression(bits)
    elif fmt == "PNG":
        options["optimize"] = False
    with temp_files.atomic_write(path) as tmp:
        im.save(tmp, format=fmt, **options)


def tiff_compression(bits: int) -> str:
    return "group4" if bits == 1 else "tiff_lzw"


def mask_image(path: PathLike, mask01: np.ndarray, *, foreground: Literal["white", "black"] = "black",
               bits: int = 1) -> Image.Image:
    """The Pillow image save_mask writes for a {0, 1} mask (path only names it in errors)."""
    if foreground not in ("white", "black"):
        raise ValueError(f"foreground must be 'white' or 'black', got {foreground!r}")
    if bits not in (1, 8):
        raise ValueError(f"bits must be 1 or 8, got {bits!r}")
    mask01 = np.asarray(mask01)
    if mask01.ndim == 3 and mask01.shape[-1] == 1:
        mask01 = mask01[..., 0]
    if mask01.ndim != 2:
        raise _fail(path, f"mask to save must be HxW (or HxWx1), got shape {mask01.shape}")
    if mask01.dtype != np.bool_:
        if mask01.size and not np.isin(mask01, (0, 1)).all():
            raise _fail(path, f"mask to save must contain only 0 and 1, got values {np.unique(mask01)[:8]}")
        mask01 = mask01.astype(bool)
    white = ~mask01 if foreground == "black" else mask01
    if bits == 1:
        # fromarray(bool) gives mode '1' directly; convert('1') from 'L' would dither.
        return Image.fromarray(np.ascontiguousarray(white))
    return Image.fromarray(white.astype(np.uint8) * 255, mode="L")
