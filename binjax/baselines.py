"""Classic thresholding baselines (Otsu, Sauvola, Niblack, ...) through doxapy.

``binarize_classic(gray_u8, method, **params)`` returns a boolean ink mask (ink = True), the
same convention as every mask in binjax.  doxapy has three traps, and this module closes them:

* it silently ignores parameter names it does not know, so a typo runs with the defaults.
  We check each name against the method's own list and raise ``ValueError``;
* it reads the array buffer as if it were C-contiguous, so a strided view (``img[:, ::2]``)
  gives wrong answers without an error.  We always pass a contiguous uint8 copy;
* its Gatos kills the process (SIGFPE, an integer division by zero) on a page where its
  Sauvola pre-pass finds no ink, such as a blank or uniform page, or where a whole
  background window is ink.  We refuse such input with ``ValueError`` (a conservative
  pre-check);
* it is memory-unsafe on small pages and hangs on thin ones (``_pad_for_doxapy`` gives the
  conditions we measured, and the padding that avoids them).  Windowed methods therefore run
  on the page mirrored by half a window on every side and cropped back, with the window
  clamped to the page's shorter side: never a crash, and borders treated as scikit-image's
  ``threshold_sauvola`` treats them (mirrored), instead of doxapy's own border handling.

Defaults are doxapy's own (window 75, k 0.2, which Doxa's documentation uses for DIBCO
pages).  Three methods take their authors' values instead: Niblack (window 15, k -0.2; Trier &
Jain 1995), Wolf (k 0.5; Wolf & Jolion 2004) and NICK (window 19, k -0.1; Khurshid et al.
2009).  Each method records its reference in ``METHODS``.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np
from scipy import ndimage

import doxapy

from binjax.errors import ConfigError


class Method(NamedTuple):
    algorithm: str                 # name in doxapy.Binarization.Algorithms
    defaults: Mapping[str, float]  # every parameter doxapy reads for this method
    reference: str


METHODS: dict[str, Method] = {
    "otsu": Method("OTSU", {}, "N. Otsu, A threshold selection method from gray-level histograms, IEEE SMC 1979"),
    "sauvola": Method("SAUVOLA", {"window": 75, "k": 0.2},
                      "J. Sauvola, M. Pietikainen, Adaptive document image binarization, PR 2000"),
    "niblack": Method("NIBLACK", {"window": 15, "k": -0.2},
                      "W. Niblack, An Introduction to Digital Image Processing, 1986; "
                      "parameters from O. Trier, A. Jain, Goal-directed evaluation of binarization methods, PAMI 1995"),
    "wolf": Method("WOLF", {"window": 75, "k": 0.5},
                   "C. Wolf, J.-M. Jolion, Extraction and recognition of artificial text in multimedia documents, PAA 2004"),
    "nick": Method("NICK", {"window": 19, "k": -0.1},
                   "K. Khurshid et al., Comparison of Niblack inspired binarization methods for ancient documents, DRR 2009"),
    "su": Method("SU", {"window": 0, "minN": 0},
                 "B. Su, S. Lu, C. L. Tan, Binarization of historical document images using the local maximum and "
                 "minimum, DAS 2010 (window 0 = estimate from the stroke width; minN 0 = same as window)"),
    "gatos": Method("GATOS", {"window": 75, "k": 0.2, "glyph": 60},
                    "B. Gatos, I. Pratikakis, S. Perantonis, Adaptive degraded document image binarization, PR 2006"),
    "isauvola": Method("ISAUVOLA", {"window": 75, "k": 0.2},
                       "Z. Hadjadj et al., ISauvola: Improved Sauvola's algorithm for document image binarization, ICIAR 2016"),
    "bataineh": Method("BATAINEH", {},
                       "B. Bataineh, S. Abdullah, K. Omar, An adaptive local binarization method for document images based "
                       "on a novel thresholding method and dynamic windows, PRL 2011 (doxapy notes it as not fully reproducible)"),
    "bernsen": Method("BERNSEN", {"window": 75, "contrast-limit": 25},
                      "J. Bernsen, Dynamic thresholding of grey-level images, ICPR 1986"),
    "trsingh": Method("TRSINGH", {"window": 75, "k": 0.2},
                      "T. R. Singh et al., A new local adaptive thresholding technique in binarization, IJCSI 2011"),
    "wan": Method("WAN", {"window": 75, "k": 0.2},
                  "W. A. Mustafa, M. M. M. Abdul Kader, Binarization of document image using optimum threshold "
                  "modification, J. Phys. Conf. Ser. 2018"),
}


def list_methods() -> list[str]:
    """Names accepted by ``binarize_classic``, sorted."""
    return sorted(METHODS)


# What each parameter may be (doxapy checks none of them): (lowest, highest, integer?).
_PARAM_RANGES = {"window": (3, 100_001, True), "k": (-10.0, 10.0, False), "glyph": (1, 10_000, True),
                 "minN": (0, 100_001, True), "contrast-limit": (0, 255, True)}


def _checked_params(method: str, params: Mapping[str, float]) -> dict[str, float]:
    """The method's full settings, or ConfigError naming the bad parameter and its range."""
    spec = METHODS[method]
    valid = sorted(spec.defaults)
    for key, value in params.items():
        if key not in spec.defaults:
            raise ConfigError(f"--method={method}: method {method!r} has no parameter {key!r}; "
                              f"valid parameters: {valid if valid else 'none'}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"--method={method}: parameter {key!r} must be a number, got {value!r}")
        lo, hi, integer = _PARAM_RANGES[key]
        if method == "su" and key == "window":
            lo = 0  # Su: 0 = estimate the window from the stroke width
        if not np.isfinite(value) or not lo <= value <= hi or (integer and float(value) != int(value)):
            raise ConfigError(f"--method={method}: parameter {key}={value!r} is out of range; it must be "
                              f"{'an integer' if integer else 'a number'} in [{lo}, {hi}]")
    merged = {**spec.defaults, **params}
    if method == "su" and merged["window"] in (1, 2):
        raise ConfigError(f"--method=su: window must be 0 (estimated) or >= 3, got {merged['window']}")
    if method == "su" and merged["minN"] == 0:
        merged["minN"] = merged["window"]  # doxapy's own default: minN follows the window
    # doxapy reads window / glyph / minN as integers; pass ints so a float like 75.0 can't be
    # read as something else.
    return {k: (int(v) if k in ("window", "glyph", "minN", "contrast-limit") else float(v))
            for k, v in merged.items()}


def check_params(method: str, params: Mapping[str, float]) -> None:
    """Raises ConfigError for an unknown method, parameter name or value, before any page is read."""
    if method not in METHODS:
        raise ConfigError(f"--method: unknown classic method {method!r}; known methods: {list_methods()}")
    _checked_params(method, params)


def _gatos_would_crash(gray: np.ndarray, params: Mapping[str, float]) -> str | None:
    """Why doxapy's Gatos would die of SIGFPE on this image, or None.

    Doxa's Gatos divides by integer counts that can be zero in two places.  The first is
    the number of ink pixels its Sauvola pre-pass found; a blank or uniform page has none.
    The second is the number of non-ink pixels in a (2 glyph + 1)^2 background window
    around an ink pixel.  We run the pre-pass (Sauvola) on the raw image, but Gatos runs it
    on a 3x3 Wiener-filtered copy.  So the check keeps a margin: too little ink, or a
    window that comes within 2 pixels of all-ink, is refused.
    """
    out = np.empty_like(gray)
    b = doxapy.Binarization(doxapy.Binarization.Algorithms.SAUVOLA)
    b.initialize(gray)
    b.to_binary(out, {"window": int(params["window"]), "k": float(params["k"])})
    paper = out != 0
    if int((~paper).sum()) < max(16, gray.size // 2000):
        return "its Sauvola pre-pass finds (almost) no ink, e.g. a blank or uniform page"
    size = max(2 * int(params["glyph"]) + 1 - 4, 1)
    any_paper = ndimage.maximum_filter(paper, size=size, mode="constant", cval=False)
    if (~paper & ~any_paper).any():
        return "a background window holds only ink; use a larger 'glyph' or a smaller 'k'"
    return None


# doxapy 0.9.2's crash conditions, measured by running every algorithm in a forked child over a
# grid of page sizes (1 to 200 px a side) and windows (15, 75), with glibc's heap checks on:
# * every windowed method except Su (Sauvola, Niblack, Wolf, NICK, ISauvola, TRSingh, Bernsen,
#   WAN, Gatos) writes outside its buffers when the page's shorter side is less than half the
#   window: Sauvola died (SIGSEGV, or glibc aborts such as "free(): invalid pointer") on every
#   shorter side <= 36 with window 75 and <= 6 with window 15, i.e. side <= window // 2 - 1;
#   Bernsen and WAN one pixel more (side <= window // 2). Heap corruption need not crash at
#   once: it can kill the process pages later;
# * Bataineh (no parameters; it sizes its own windows) loops forever when the shorter side is
#   29 px or less (30 and up finished);
# * Otsu (global) and Su (window 75 or estimated) survived every size from 1 x 1.
# A page padded by half the window on each side is at least one window across, which no run of
# the grid crashed on; Bataineh's and Gatos's pages are also padded to _SAFE_SIDE.
_SAFE_SIDE = 64


def _pad_for_doxapy(gray: np.ndarray, method: str, settings: dict[str, float]) -> tuple[np.ndarray, tuple[int, int]]:
    """(page doxapy can safely binarize, (top, left) offset of the original in it).

    Clamps ``settings['window']`` in place to an odd size <= the page's shorter side (at least
    3): a window wider than the page has no meaning, and padding for it would cost memory without
    bound. The page is mirrored (numpy 'symmetric' = scipy.ndimage 'reflect', what
    scikit-image's threshold_sauvola uses) by half a window, so every pixel's window lies inside
    the padded page, then further to _SAFE_SIDE for Bataineh and Gatos.
    """
    h, w = gray.shape
    pad = 0
    window = int(settings.get("window", 0))
    if window:
        largest = max(3, min(h, w) if min(h, w) % 2 else min(h, w) - 1)
        window = min(window, largest)
        settings["window"] = window
        if method == "su" and settings.get("minN", 0) > window:
            settings["minN"] = window
        pad = window // 2
    floor = _SAFE_SIDE if method in ("bataineh", "gatos") else 0
    top = pad + (max(0, floor - (h + 2 * pad)) + 1) // 2  # half the shortfall on each side
    left = pad + (max(0, floor - (w + 2 * pad)) + 1) // 2
    if top == 0 and left == 0:
        return gray, (0, 0)
    # np.pad keeps a transposed input's Fortran order: doxapy needs C order.
    return np.ascontiguousarray(np.pad(gray, ((top, top), (left, left)), mode="symmetric")), (top, left)


def binarize_classic(gray_u8: np.ndarray, method: str, **params: float) -> np.ndarray:
    """Binarize a grey page with a classic method.  Returns a bool H x W mask, ink = True.

    gray_u8: uint8 H x W (or H x W x 1), any strides (a contiguous copy goes to doxapy), any size
    from 1 x 1. method: one of ``list_methods()``.  params: that method's parameters (see
    ``METHODS[method].defaults``); an unknown name or a value out of range raises ConfigError (a
    ValueError).  A window larger than the page's shorter side is clamped to the largest odd
    size that fits (at least 3); pages are mirrored at their borders (see ``_pad_for_doxapy``).
    """
    if method not in METHODS:
        raise ValueError(f"binarize_classic: unknown method {method!r}; known methods: {list_methods()}")
    gray = np.asarray(gray_u8)
    if gray.ndim == 3 and gray.shape[-1] == 1:
        gray = gray[..., 0]
    if gray.ndim != 2:
        raise ValueError(f"binarize_classic: expected a grey H x W (or H x W x 1) image, got shape {gray.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"binarize_classic: expected uint8 grey values, got dtype {gray.dtype}")
    if gray.size == 0:
        raise ValueError("binarize_classic: empty image")
    settings = _checked_params(method, params)
    h, w = gray.shape
    padded, (top, left) = _pad_for_doxapy(gray, method, settings)
    # Contiguous (doxapy reads strided views wrongly), and doxapy never sees caller memory.
    gray = padded if padded is not gray else np.array(gray, order="C")
    if method == "gatos":
        reason = _gatos_would_crash(gray, settings)
        if reason:
            raise ValueError(f"binarize_classic: doxapy's gatos would divide by zero (SIGFPE) here: {reason}")
    assert gray.dtype == np.uint8 and gray.flags.c_contiguous  # what doxapy reads without checking
    out = np.full_like(gray, 128)  # neither 0 nor 255: a pixel doxapy did not write shows up below
    binarizer = doxapy.Binarization(getattr(doxapy.Binarization.Algorithms, METHODS[method].algorithm))
    binarizer.initialize(gray)
    binarizer.to_binary(out, settings)
    out = out[top:top + h, left:left + w]
    ink = out == 0
    if not (ink | (out == 255)).all():
        raise RuntimeError(f"doxapy's {method} wrote values other than 0 and 255 on a {h} x {w} page")
    return ink
