"""OCR-aware evaluation: does a binarization help Tesseract read the page?

Tesseract (the engine inside ``tesserocr``'s wheel, ``pip install 'binjax[ocr]'``, with the
language data of Debian's ``tesseract-ocr-eng``, found under /usr/share/tesseract-ocr or
``$TESSDATA_PREFIX``) reads the input page, every binarizer's output and the ground-truth mask; each
reading is scored against a reference text with the character and word error rates

    CER = edit distance in characters / reference length, WER = the same in words,

both in percent (they can exceed 100 when Tesseract invents text). The reference is:

* the page's true text when a transcript lies beside the image (``<name>_text.json``, written
  by data/make_samples.py from the synthetic generator: its printed lines and their boxes).
  Only the boxes of the lines wholly on the page are read: everything else (handwriting, which
  is pen trajectories without letters, scribbles, lines cut by the page edge) is set to paper
  in every image read alike, since no reference holds its text;
* otherwise (real pages without transcripts, such as DIBCO) Tesseract's own reading of the
  ground-truth mask: a **proxy**, labelled so in the report. It asks "does the output read like
  the perfect binarization reads", not "is the text right", and the ground truth scores 0 by
  construction.

Why tesserocr and not pytesseract: tesserocr calls libtesseract in-process and keeps the loaded
model between readings, where pytesseract starts a ``tesseract`` process (and loads the model)
per reading. Measured 2026-12-02 on the 2-core dev machine under a load of ~12: 2.0 s vs 7.0 s
per reading of a 384x512 page, 3.2 s vs 7.5 s for a 1557x965 DIBCO page (medians of 3). Its
manylinux wheel bundles libtesseract (5.5.4 in tesserocr 2.13): no headers or compiler needed,
and the version recorded in the report is that engine's, not the system binary's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PathLike = str | os.PathLike

INPUT, GROUND_TRUTH = "input", "ground_truth"  # the two readings that are not a binarizer's
TRANSCRIPT_SUFFIX = "_text.json"
BOX_MARGIN = 2  # pixels around a recorded line box: the resampled glyphs spill about one


@dataclasses.dataclass(frozen=True)
class OcrSettings:
    """Tesseract's settings: language(s), page segmentation mode (3 = automatic page layout),
    engine mode (1 = the LSTM recogniser only)."""

    lang: str = "eng"
    psm: int = 3
    oem: int = 1


# Where distributions put Tesseract's language data; $TESSDATA_PREFIX, when set, is the only place looked.
_TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
                  "/usr/share/tessdata", "/usr/local/share/tessdata", "/opt/homebrew/share/tessdata")
_apis = threading.local()  # one loaded engine per thread and settings: the model loads once


def tessdata_dir(lang: str = "eng") -> str | None:
    """The folder holding <lang>.traineddata for every language of ``lang`` ('eng+lat'), or None."""
    candidates = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else _TESSDATA_DIRS
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, f"{code}.traineddata")) for code in lang.split("+")):
            return folder
    return None


def missing_reason(lang: str = "eng") -> str | None:
    """Why Tesseract cannot run here (None when it can)."""
    try:
        import tesserocr  # noqa: F401, PLC0415
    except ImportError:
        return "tesserocr is not installed (pip install 'binjax[ocr]')"
    if tessdata_dir(lang) is None:
        where = (f"TESSDATA_PREFIX={os.environ['TESSDATA_PREFIX']}" if os.environ.get("TESSDATA_PREFIX")
                 else ", ".join(_TESSDATA_DIRS))
        return (f"no {lang} language data ({lang}.traineddata) in {where} (Debian/Ubuntu: apt-get install "
                "tesseract-ocr-eng; or set TESSDATA_PREFIX)")
    return None


def tesseract_version() -> str:
    import tesserocr  # noqa: PLC0415

    return tesserocr.tesseract_version().split()[1]  # 'tesseract 5.5.4\n leptonica-...'


def _engine(settings: OcrSettings):
    import tesserocr  # noqa: PLC0415

    engines = _apis.__dict__.setdefault("engines", {})
    if settings not in engines:
        engines[settings] = tesserocr.PyTessBaseAPI(path=tessdata_dir(settings.lang), lang=settings.lang,
                                                    psm=settings.psm, oem=settings.oem)
    return engines[settings]


def read_text(image: np.ndarray, settings: OcrSettings = OcrSettings()) -> str:
    """Tesseract's reading of an uint8 HxW or HxWxC page (or a bool ink mask: ink black)."""
    from PIL import Image  # noqa: PLC0415

    engine = _engine(settings)
    engine.SetImage(Image.fromarray(as_page_image(image)))
    return engine.GetUTF8Text()


def as_page_image(image: np.ndarray) -> np.ndarray:
    """uint8 HxW or HxWx3 as Tesseract should see it: masks become ink black on white paper."""
    image = np.asarray(image)
    if image.dtype == bool:
        return np.where(image, 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    return image


# ------------------------------------------------------------------------------- error rates


def normalize(text: str) -> str:
    """Whitespace runs (line breaks included) become one space: layout is not what is scored."""
    return " ".join(text.split())


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions cost 1) of two sequences of
    characters or of hashable tokens.

    One row of the dynamic programme at a time in numpy: substitutions and deletions are
    elementwise, and insertions, which chain along the row, are a running minimum of
    (row - j) + j. O(len(a) * len(b)) work, O(min) memory.
    """
    if len(a) < len(b):
        a, b = b, a
    if len(b) == 0:
        return len(a)
    ids: dict[Any, int] = {}
    a_ids = np.array([ids.setdefault(x, len(ids)) for x in a], np.int64)
    b_ids = np.array([ids.setdefault(x, len(ids)) for x in b], np.int64)
    j = np.arange(len(b) + 1, dtype=np.int64)
    row = j.copy()
    for i, ai in enumerate(a_ids, start=1):
        best = np.empty_like(row)
        best[0] = i
        np.minimum(row[:-1] + (b_ids != ai), row[1:] + 1, out=best[1:])
        row = np.minimum.accumulate(best - j) + j
    return int(row[-1])


def error_counts(hypothesis: str, reference: str) -> dict[str, int]:
    """Character and word edit counts of a reading against a reference, and their lengths."""
    hyp, ref = normalize(hypothesis), normalize(reference)
    return {"char_edits": edit_distance(hyp, ref), "ref_chars": len(ref),
            "word_edits": edit_distance(hyp.split(), ref.split()), "ref_words": len(ref.split())}


def rates(counts: Mapping[str, int]) -> dict[str, float]:
    """CER and WER in percent (nan when the reference is empty)."""
    def ratio(edits: int, length: int) -> float:
        return 100.0 * edits / length if length else math.nan
    return {"cer": ratio(counts["char_edits"], counts["ref_chars"]),
            "wer": ratio(counts["word_edits"], counts["ref_words"])}


# ------------------------------------------------------------------------------- references


def transcript_path(image_path: PathLike, name: str) -> pathlib.Path:
    return pathlib.Path(image_path).parent / f"{name}{TRANSCRIPT_SUFFIX}"


def read_transcript(path: PathLike) -> tuple[str, list[tuple[int, int, int, int]]]:
    """(reference text, boxes to read) of a transcript: the lines wholly on the page, one per
    line in reading order, and their integer boxes grown by BOX_MARGIN pixels."""
    from binjax.errors import DataError  # noqa: PLC0415

    try:
        record = json.loads(pathlib.Path(path).read_text())
        lines = record["lines"]
        text = "\n".join(line["text"] for line in lines if line["inside"])
        keep = [tuple(int(math.floor(v)) - BOX_MARGIN if k < 2 else int(math.ceil(v)) + BOX_MARGIN
                      for k, v in enumerate(line["box"])) for line in lines if line["inside"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a transcript (JSON with 'lines' of text, box, inside): {e}") from None
    return text, keep


def keep_boxes(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]] | None) -> np.ndarray:
    """The page (or mask) with everything outside the boxes set to paper; None keeps the whole page.

    Paper is False for masks, and the page's median colour for images: on a white fill the
    boxes of a grey page stand out as picture regions, and Tesseract then reads nothing.
    """
    if boxes is None:
        return image
    image = np.asarray(image)
    if image.dtype == bool:
        out = np.zeros_like(image)
    else:
        paper = np.median(image.reshape(*image.shape[:2], -1), axis=(0, 1)).astype(image.dtype)
        out = np.empty_like(image)
        out[...] = paper if image.ndim == 3 else paper[0]
    h, w = image.shape[:2]
    for x0, y0, x1, y1 in boxes:
        region = (slice(max(0, y0), max(0, min(h, y1))), slice(max(0, x0), max(0, min(w, x1))))
        out[region] = image[region]
    return out


# ------------------------------------------------------------------------------- scoring a set


class OcrScorer:
    """Scores Tesseract's readings page by page for binjax.evaluate.evaluate_pages.

    ``start_page`` reads the input and the ground truth and fixes the page's reference;
    ``score_output`` reads one binarizer's output and returns its CSV columns (ocr_cer, ocr_wer);
    ``summary`` gives the set figures. Readings are kept under ``text_dir`` (one .txt per page
    and source) when given, to see what Tesseract saw.
    """

    def __init__(self, settings: OcrSettings = OcrSettings(), *, text_dir: PathLike | None = None):
        reason = missing_reason(settings.lang)
        if reason is not None:
            from binjax.errors import ConfigError  # noqa: PLC0415

            raise ConfigError(f"OCR evaluation needs Tesseract: {reason}")
        self.settings, self.version = settings, tesseract_version()
        self.text_dir = pathlib.Path(text_dir) if text_dir is not None else None
        self.pages: dict[str, dict[str, Any]] = {}  # page -> reference kind, text and counts per source
        self._page: dict[str, Any] | None = None

    def _read(self, page: str, source: str, image: np.ndarray) -> str:
        text = read_text(keep_boxes(image, self._page["keep"]), self.settings)
        if self.text_dir is not None:
            folder = self.text_dir / _file_name(page)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{_file_name(source)}.txt").write_text(text)
        return text

    def start_page(self, page: str, image: np.ndarray, gt_ink: np.ndarray, image_path: PathLike | None = None) -> None:
        path = transcript_path(image_path, page) if image_path is not None else None
        if path is not None and path.is_file():
            reference, keep = read_transcript(path)
            self._page = {"reference": "transcript", "keep": keep, "counts": {}}
        else:
            self._page = {"reference": "proxy", "keep": None, "counts": {}}
            reference = None
        self.pages[page] = self._page
        gt_text = self._read(page, GROUND_TRUTH, np.asarray(gt_ink, bool))
        if reference is None:
            reference = gt_text
        self._page["reference_text"] = reference
        self._page["counts"][GROUND_TRUTH] = error_counts(gt_text, reference)
        self._page["counts"][INPUT] = error_counts(self._read(page, INPUT, image), reference)

    def score_output(self, source: str, page: str, pred_ink: np.ndarray) -> dict[str, float]:
        if self._page is not self.pages.get(page):
            raise ValueError(f"score_output({source!r}, {page!r}) before start_page({page!r})")
        counts = error_counts(self._read(page, source, np.asarray(pred_ink, bool)), self._page["reference_text"])
        self._page["counts"][source] = counts
        return {f"ocr_{k}": v for k, v in rates(counts).items()}

    def summary(self) -> dict[str, Any]:
        """Settings, reference kinds and per-source set figures: CER/WER from edits summed over
        the pages (pages with an empty reference add nothing), and the mean of per-page CER."""
        kinds = sorted({p["reference"] for p in self.pages.values()})
        sources: dict[str, dict[str, float]] = {}
        for source in dict.fromkeys(s for p in self.pages.values() for s in p["counts"]):
            # A page whose reference is empty (Tesseract reads nothing from a handwritten ground
            # truth) has no error rate: its invented text would count against no reference.
            counts = [p["counts"][source] for p in self.pages.values()
                      if source in p["counts"] and p["counts"][source]["ref_chars"]]
            total = {k: sum(c[k] for c in counts) for k in ("char_edits", "ref_chars", "word_edits", "ref_words")}
            per_page = [rates(c)["cer"] for c in counts]
            sources[source] = {**rates(total), "mean_page_cer": float(np.mean(per_page)) if per_page else math.nan,
                               "pages": len(counts), **total}
        return {"tesseract": self.version, "tessdata": tessdata_dir(self.settings.lang), "lang": self.settings.lang, "psm": self.settings.psm,
                "oem": self.settings.oem, "reference": kinds[0] if len(kinds) == 1 else "mixed",
                "reference_pages": {k: sum(p["reference"] == k for p in self.pages.values()) for k in kinds},
                "sources": sources,
                "per_page": {page: {s: {**rates(c), **c} for s, c in p["counts"].items()}
                             for page, p in self.pages.items()}}


def _file_name(name: str) -> str:
    from binjax.binarizers import safe_name  # noqa: PLC0415

    return safe_name(name)


def summary_markdown(ocr: Mapping[str, Any]) -> list[str]:
    """The OCR section of summary.md."""
    proxy = ocr["reference"] != "transcript"
    lines = ["## OCR (Tesseract)", "",
             f"Tesseract {ocr['tesseract']}, lang={ocr['lang']}, psm={ocr['psm']}, oem={ocr['oem']}. "
             f"Reference: {ocr['reference']} ({', '.join(f'{k}: {v} pages' for k, v in ocr['reference_pages'].items())})."]
    if proxy:
        lines.append("**Proxy**: where no transcript exists the reference is Tesseract's reading of the "
                     "ground-truth mask, so ground_truth scores 0 by construction and the figures say how "
                     "close a reading comes to the perfect binarization's, not whether the text is right.")
    lines += ["", "| source | CER % | WER % | mean page CER % | reference chars |", "|---|---:|---:|---:|---:|"]
    for source, s in ocr["sources"].items():
        lines.append(f"| {source} | {s['cer']:.2f} | {s['wer']:.2f} | {s['mean_page_cer']:.2f} | {s['ref_chars']} |")
    lines += ["", "CER, WER: edit distance / reference length, summed over the pages (a page whose "
              "reference is empty adds nothing). Per-page ocr_cer / ocr_wer are in each per_image.csv; "
              "Tesseract's readings in ocr_text/<page>/<source>.txt.", ""]
    return lines
