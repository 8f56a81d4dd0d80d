"""Validates the ground-truth-free page-quality estimate (binjax.quality) on real pages.

  python -m launch.validate_quality --out=docs/quality              # dibco_lite, all collections
  python -m launch.validate_quality --checkpoint=dibco_unet --collections=dibco/2013,dibco/2016 \
      --out=/tmp/quality_unet

For every collection (a folder of <name>_in.png + <name>_gt.png under --data_root) the model and
Otsu are evaluated with quality estimates (launch/evaluate.py --quality; their outputs are kept
under --work and reused when present, so an interrupted run resumes), then the estimates are
compared with the true F-measure: Spearman's rank correlation per collection and overall, and
how well the lowest estimates flag the pages where the model scores below Otsu. Writes
<out>/validation.md (the tables), <out>/validation.csv (the same as data) and <out>/pages.csv.
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)
from launch import cli  # noqa: E402

import csv  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

# The released models were trained on DIBCO 2009-2012 and selected on 2014: those years are
# not a test of them.
SEEN = ("dibco/2009", "dibco/2010", "dibco/2011", "dibco/2012", "dibco/2014")
DEFAULT_COLLECTIONS = ("dibco/2013", "dibco/2016", "extra/bickley", "extra/monk_cuper", "extra/msi2015",
                       "extra/nabuco", "extra/phibd", *SEEN)

_CHECKPOINT = flags.DEFINE_string("checkpoint", "dibco_lite", "The model whose quality is estimated.")
_DATA_ROOT = flags.DEFINE_string("data_root", "../shared/data", "Folder holding the collections.")
_COLLECTIONS = flags.DEFINE_list("collections", list(DEFAULT_COLLECTIONS),
                                 "Collections under --data_root, in the order they are run.")
_WORK = flags.DEFINE_string("work", "/tmp/binjax/quality", "Evaluation outputs (reused when present).")
_OUT = flags.DEFINE_string("out", None, "Where validation.md, validation.csv and pages.csv go.")
_WEIGHTS_CACHE = flags.DEFINE_string("weights_cache", None, "Pseudo-F weights cache (see launch/evaluate.py).")
_INFERENCE_OPTIONS = cli.define_inference_flags()
flags.adopt_module_key_flags(cli)
flags.mark_flags_as_required(["out"])


def _collection_pages(model_name: str, collection: str) -> list[dict]:
    from binjax import binarizers as binarizers_lib
    from binjax import evaluate

    folder = pathlib.Path(_WORK.value) / collection.replace("/", "_")
    model_csv, otsu_csv = folder / model_name / "per_image.csv", folder / "otsu" / "per_image.csv"
    if not (model_csv.exists() and otsu_csv.exists()):
        binarizers = binarizers_lib.make_binarizers([_CHECKPOINT.value], ["otsu"], **_INFERENCE_OPTIONS())
        binarizers = {model_name if isinstance(b, binarizers_lib.ModelBinarizer) else k: b
                      for k, b in binarizers.items()}
        pages = evaluate.open_pages(os.path.join(_DATA_ROOT.value, collection),
                                    channels=evaluate.pages_channels(binarizers))
        logging.info("evaluating %s on %s (%d pages)", model_name, collection, len(pages))
        evaluate.evaluate_pages(binarizers, pages, folder, previews=False, weights_cache=_WEIGHTS_CACHE.value,
                                dataset=collection, quality=True)
    otsu = {r["page"]: r["fm"] for r in evaluate.read_csv(otsu_csv)}
    return [{"collection": collection, "test": collection not in SEEN, **r, "otsu_fm": otsu[r["page"]]}
            for r in evaluate.read_csv(model_csv)]


def _table(rows: list[dict]) -> list[str]:
    from binjax import quality

    head = ("| collection | pages | mean FM | Spearman (expected FM) | Spearman (unsure/ink) | "
            "Spearman (ink fraction) | below Otsu | AUC | lowest-k P | lowest-k R |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [r["group"], str(r["pages"]), f"{r['mean_fm']:.2f}",
                 *(f"{r[f'spearman_{k}']:.3f}" for k in quality.ESTIMATE_KEYS), str(r["below_otsu"]),
                 *(f"{r[k]:.2f}" for k in ("flag_auc", "lowest_k_precision", "lowest_k_recall"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    common.initialize_runtime()
    from binjax import quality, released

    model_name = (f"binjax-{_CHECKPOINT.value}" if _CHECKPOINT.value in released.released_models() else "model")
    pages = []
    for collection in _COLLECTIONS.value:
        pages += _collection_pages(model_name, collection)
    out = pathlib.Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["collection", "test", "page", "fm", "otsu_fm", "quality", *quality.ESTIMATE_KEYS]
    with open(out / "pages.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(pages)
    by_collection = quality.validation_rows(pages)
    for page in pages:
        page["split"] = "test (unseen: 2013, 2016, extra)" if page["test"] else "seen (train 2009-2012, selection 2014)"
    by_split = [r for r in quality.validation_rows(pages, group_key="split") if r["group"] != "all"]
    with open(out / "validation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(by_collection[0]))
        writer.writeheader()
        writer.writerows(by_collection + by_split)
    lines = [f"# Page-quality estimate vs true F-measure: {model_name}", "",
             f"Quality = `{quality.QUALITY_KEY}` (binjax/quality.py), computed from the model's own "
             "probabilities, no ground truth. Spearman: rank correlation with the page's true DIBCO FM "
             "(unsure/ink is expected to correlate negatively). Below Otsu: pages where the model's FM is "
             "lower than Otsu's; AUC: the chance that such a page has a lower quality than another page; "
             "lowest-k P/R: precision and recall of the k lowest-quality pages, k = the number below Otsu.", "",
             "## By split", "", *_table(by_split), "", "## By collection", "", *_table(by_collection), ""]
    (out / "validation.md").write_text("\n".join(lines))
    print("\n".join(lines))
    sys.stdout.flush()


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
