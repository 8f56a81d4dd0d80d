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
  pre-check).

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


def _checked_params(method: str, params: Mapping[str, float]) -> dict[str, float]:
    spec = METHODS[method]
    valid = sorted(spec.defaults)
    for key, value in params.items():
        if key not in spec.defaults:
            raise ValueError(f"binarize_classic: method {method!r} has no parameter {key!r}; "
                             f"valid parameters: {valid if valid else 'none'}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"binarize_classic: method {method!r} parameter {key!r} must be a number, got {value!r}")
    merged = {**spec.defaults, **params}
    if "window" in merged and method not in ("su",) and int(merged["window"]) < 3:
        raise ValueError(f"binarize_classic: method {method!r} needs window >= 3, got {merged['window']}")
    if method == "su" and merged["minN"] == 0:
        merged["minN"] = merged["window"]  # doxapy's own default: minN follows the window
    # doxapy reads window / glyph / minN as integers; pass ints so a float like 75.0 can't be
    # read as something else.
    return {k: (int(v) if k in ("window", "glyph", "minN", "contrast-limit") else float(v))
            for k, v in merged.items()}


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


def binarize_classic(gray_u8: np.ndarray, method: str, **params: float) -> np.ndarray:
    """Binarize a grey page with a classic method.  Returns a bool H x W mask, ink = True.

    gray_u8: uint8 H x W (or H x W x 1), any strides (a contiguous copy goes to doxapy).
    method: one of ``list_methods()``.  params: that method's parameters (see
    ``METHODS[method].defaults``).  An unknown name raises ValueError listing the valid ones.
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
    gray = np.ascontiguousarray(gray).copy()  # contiguous, and doxapy never sees caller memory
    if method == "gatos":
        reason = _gatos_would_crash(gray, settings)
        if reason:
            raise ValueError(f"binarize_classic: doxapy's gatos would divide by zero (SIGFPE) here: {reason}")
    out = np.empty_like(gray)
    binarizer = doxapy.Binarization(getattr(doxapy.Binarization.Algorithms, METHODS[method].algorithm))
    binarizer.initialize(gray)
    binarizer.to_binary(out, settings)
    return out == 0
