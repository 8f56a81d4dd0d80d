r"""Scores binarizers on pages with ground truth: released or trained models beside classic methods.

Each binarizer binarizes every page of --data (a folder of <name>_in.png / <name>_gt.png pairs,
images and masks in two folders, or a prepared DIBCO TFDS dataset) and is scored with the DIBCO
measures (FM, pseudo-FM, PSNR, DRD, NRM, MPM). Writes <out>/summary.md (+ summary.json) and, per
binarizer, per_image.csv, binary/<page>.png (1-bit, ink black) and compare/<page>.png (input,
output, ground truth, error map). With no --checkpoints the released default model is scored.
With --ocr, Tesseract's character and word error rates on the input, each output and the ground
truth are added; with --quality, each model's ground-truth-free estimate of its FM.

  binjax-evaluate --methods=otsu,sauvola --data=data/samples --out=/tmp/binjax/eval_samples
  binjax-evaluate --checkpoints=dibco_unet,dibco_lite --data=../shared/data/dibco/2013 \
      --out=/tmp/binjax/eval_2013
  python -m launch.evaluate --checkpoints=/tmp/binjax/default --methods=otsu --data=my_pages/ \
      --masks=my_masks/ --mask_foreground=white --out=/tmp/binjax/eval_mine
  binjax-evaluate --checkpoints=dibco_lite --methods=otsu,sauvola --ocr --data=data/samples \
      --out=/tmp/binjax/eval_ocr  # + Tesseract's CER/WER (pip install '.[ocr]')
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)
from binjax import released  # noqa: E402  (JAX-free: the shipped models' names)
from launch import cli  # noqa: E402

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

_CHECKPOINT = cli.define_checkpoints_flag(
    [], "Model(s) to score, comma-separated: training workdirs (best checkpoint, else latest), "
    f"step directories, export folders or released models ({released.names_for_help()}). Default: the "
    f"released {released.DEFAULT_MODEL}; 'none' scores only the --method(s). A run folder with commas in its name "
    "(arg=bickley,seed=0) stays whole.")
_METHOD = flags.DEFINE_list(
    "methods", [], "Classic method(s) beside the model, comma-separated: otsu, sauvola, niblack, wolf, nick, su, "
    "gatos, isauvola, bataineh, bernsen, trsingh, wan; parameters after colons: sauvola:window=51:k=0.3.")
_DATA = flags.DEFINE_string(
    "data", None, "A folder of image/mask pairs (DIBCO layout <name>_in.png + <name>_gt.png by default), or "
    "tfds:dibco/<config>[:<split>] (e.g. tfds:dibco/2013).")
_MASKS = flags.DEFINE_string("masks", None, "Folder of masks named like the images (then --data holds only images).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tfds data_dir of a prepared DIBCO dataset (tfds: data only).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "DIBCO competition files (e.g. ../shared/data/dibco): build the tfds dataset if missing.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_MASK_FOREGROUND = flags.DEFINE_enum(
    "mask_foreground", "black", ["black", "white"], "Polarity of the mask files: black = dark pixels are ink (DIBCO).")
_IMAGE_SUFFIX = flags.DEFINE_string("image_suffix", "_in", "Stem suffix of the images in a one-folder layout.")
_MASK_SUFFIX = flags.DEFINE_string("mask_suffix", "_gt", "Stem suffix of the masks in a one-folder layout.")
_INFERENCE_OPTIONS = cli.define_inference_flags()
flags.adopt_module_key_flags(cli)  # list them in this launcher's --help
_LIMIT = flags.DEFINE_integer("limit", None, "Evaluate only the first N pages.")
_PREVIEWS = flags.DEFINE_bool("previews", True, "Write the compare/<page>.png side-by-side pictures.")
_PREVIEW_SIZE = flags.DEFINE_integer("preview_size", 1024, "Longest side of a side-by-side picture (pixels).")
_WEIGHTS_CACHE = flags.DEFINE_string(
    "weights_cache", None, "Folder caching the pseudo-F weights of each ground truth across runs (optional).")
_OCR = flags.DEFINE_bool(
    "ocr", False, "Also score Tesseract's reading (CER, WER) of the input, each output and the ground truth, "
    "against <name>_text.json beside a page when there is one, else against the reading of the ground truth "
    "(a proxy). Needs tesserocr (pip install 'binjax[ocr]') and Tesseract's language data (apt-get install "
    "tesseract-ocr-eng).")
_OCR_LANG = flags.DEFINE_string("ocr_lang", "eng", "--ocr: Tesseract language(s), e.g. eng or eng+lat.")
_OCR_PSM = flags.DEFINE_integer("ocr_psm", 3, "--ocr: Tesseract page segmentation mode (3 = automatic).")
_OCR_OEM = flags.DEFINE_integer("ocr_oem", 1, "--ocr: Tesseract engine mode (1 = LSTM only).")
_QUALITY = flags.DEFINE_bool(
    "quality", False, "Add each model's ground-truth-free quality estimate (predicted FM; binjax.quality) "
    "to its per_image.csv, beside the true FM.")
# The singular names, deprecated: in binarize and export --checkpoint / --method name one model.
flags.DEFINE_alias("checkpoint", "checkpoints")
flags.FLAGS["checkpoint"].help = "Deprecated: the old name of --checkpoints."
flags.DEFINE_alias("method", "methods")
flags.FLAGS["method"].help = "Deprecated: the old name of --methods."
flags.mark_flags_as_required(["data", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    checkpoints = [c for c in _CHECKPOINT.value if c != "none"]
    if _CHECKPOINT.value and not checkpoints and not _METHOD.value:
        raise app.UsageError("--checkpoints=none scores no model: name classic methods with --methods=otsu,...")
    if not _CHECKPOINT.value:
        checkpoints = ["default"]  # the released default model, beside any --method
    if checkpoints:
        common.initialize_runtime()  # JAX only when a model is evaluated
    from binjax import binarizers as binarizers_lib
    from binjax import evaluate

    try:
        if checkpoints == ["default"]:
            default = binarizers_lib.default_binarizer(**_INFERENCE_OPTIONS())
            classic = binarizers_lib.make_binarizers((), _METHOD.value) if _METHOD.value else {}
            binarizers = {default.name: default, **classic}
        else:
            binarizers = binarizers_lib.make_binarizers(checkpoints, _METHOD.value, **_INFERENCE_OPTIONS())
    except (ValueError, FileNotFoundError) as e:  # no binarizer, unknown method, no checkpoint there
        raise app.UsageError(str(e)) from None
    try:
        pages = evaluate.open_pages(
            _DATA.value, channels=evaluate.pages_channels(binarizers), masks_dir=_MASKS.value,
            image_suffix=_IMAGE_SUFFIX.value, mask_suffix=_MASK_SUFFIX.value,
            mask_foreground=_MASK_FOREGROUND.value, data_dir=_DATA_DIR.value, manual_dir=_MANUAL_DIR.value)
    except (ValueError, FileNotFoundError) as e:  # missing folder, unpaired files, unprepared dataset
        sys.exit(f"error: {e}")
    scorer = None
    if _OCR.value:
        import os

        from binjax import ocr

        scorer = ocr.OcrScorer(ocr.OcrSettings(_OCR_LANG.value, _OCR_PSM.value, _OCR_OEM.value),
                               text_dir=os.path.join(_OUT.value, "ocr_text"))
    logging.info("evaluating %s on %d pages of %s", list(binarizers), len(pages), _DATA.value)
    summary = evaluate.evaluate_pages(
        binarizers, pages, _OUT.value, limit=_LIMIT.value, previews=_PREVIEWS.value,
        preview_size=_PREVIEW_SIZE.value, weights_cache=_WEIGHTS_CACHE.value, dataset=_DATA.value,
        quality=_QUALITY.value, ocr=scorer)

    print()
    print(evaluate.summary_markdown(summary).split("\n## ")[0].rstrip())  # the table and its notes
    if "ocr" in summary:
        print("\n" + "\n".join(ocr.summary_markdown(summary["ocr"])).rstrip())
    print(f"\nFiles in {_OUT.value}:")
    print(f"  summary       {summary['files']['summary_md']} (+ summary.json)")
    for name, entry in summary["binarizers"].items():
        print(f"  {name:<13} {entry['files']['csv']}, binary/ and compare/ beside it")
    sys.stdout.flush()
    if summary["skipped_pages"]:  # named as they happened and in the summary; the others are scored
        sys.exit(f"error: {len(summary['skipped_pages'])} page(s) could not be scored: "
                 + ", ".join(s["page"] for s in summary["skipped_pages"]))


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
