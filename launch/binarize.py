r"""Binarizes scans: images, multi-page TIFFs and PDFs in, black-and-white PNG, TIFF or PDF out.

Runs one binarizer, the released default model (see --checkpoint) unless --checkpoint or --method
names another, over every input. Outputs keep the input's name (stem + suffix + new extension) and size; ink is
black by default (--foreground=white for masks with white foreground). Inputs with the same stem
(page.png, page.tif) keep their extension in the output name: page_png.png, page_tif.png. Every
page of a multi-page TIFF or PDF is binarized: to scan_p001.png, scan_p002.png, ... or, with
--format=tif, to one multi-page CCITT G4 TIFF scan.tif (--nomultipage_tiff: numbered TIFFs), or
with --format=pdf to one bilevel PDF scan.pdf (G4 pages), pages in order. PDF pages are rendered
at their scan's resolution (one image per page), else at --dpi; every output keeps its page's
resolution (PNG pHYs, TIFF tags, PDF page size). Bulk runs: --inputs_from=list.txt (one path a
line), --resume to skip pages whose outputs exist (outputs are renamed into place only when
complete, so a killed run is resumed where it stopped), and <out>/manifest.csv with one row per
page (source, page, output, seconds, quality) appended as pages finish. With
--suffix, inputs whose name ends in the suffix are taken for earlier outputs and left out. An
input file is never overwritten: if an output would replace an input the run is refused before
anything is written. Unreadable files or pages are skipped with a message naming them, and the
exit status is then 1. With a model and --out, <out>/quality.csv lists every page with its
ground-truth-free quality estimate (the F-measure predicted from the model's own probabilities),
the least confident pages first: the pages to look at before trusting a bulk run. It is written
from the manifest at the end, and when the run is stopped (Ctrl-C, an error), so it lists every
page done so far, with --resume the earlier runs' too.

  binjax-binarize data/samples/synthetic_00_grey_in.png --out=/tmp/binjax/bw  # the default model
  binjax-binarize scans/ --checkpoint=dibco_unet --out=/tmp/binjax/bw  # the released U-Net (~5x slower)
  binjax-binarize 'photos/*.jpg' --method=sauvola:window=51:k=0.3 --suffix=_bin --format=tif
  binjax-binarize scans/ --out=/tmp/binjax/bw --probability  # + <stem>_prob.png; quality.csv
  binjax-binarize --inputs_from=archive.txt --out=/tmp/binjax/g4 --format=pdf --resume  # rerun after a kill
"""

from launch import common  # noqa: F401  (first: splits the CPU into host devices before JAX loads)

import os  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

from absl import app, flags  # noqa: E402

from binjax import released  # noqa: E402  (JAX-free: the shipped models' names)
from launch import cli  # noqa: E402

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, f"A released model ({released.names_for_help()}), an export folder, a training workdir "
    f"(its best checkpoint, else its latest) or a step directory. Default: the released {released.DEFAULT_MODEL}.")
_METHOD = flags.DEFINE_string(
    "method", None, "A classic method instead of a model: otsu, sauvola, niblack, wolf, nick, su, gatos, isauvola, "
    "bataineh, bernsen, trsingh, wan; parameters after colons: sauvola:window=51:k=0.3.")
_OUT = flags.DEFINE_string("out", None, "Output folder (created if missing). Required unless --suffix is given.")
_SUFFIX = flags.DEFINE_string(
    "suffix", None, "Added to each output's stem, e.g. _bin; without --out, outputs go beside their inputs.")
_FORMAT = flags.DEFINE_enum(
    "format", "png", ["png", "tif", "pdf"], "Output file format: 1-bit PNG, CCITT G4 TIFF, or bilevel PDF "
    "(one per input document, G4 pages).")
_DPI = flags.DEFINE_float(
    "dpi", 300.0, "PDF inputs: the resolution of pages that are not one scanned image (born-digital pages); "
    "scanned pages render at their image's own resolution. Also the page size of PDF outputs from images that "
    "record no resolution.")
_INPUTS_FROM = flags.DEFINE_string(
    "inputs_from", None, "A text file listing inputs (files, folders or globs), one a line; blank lines and "
    "lines starting with # are left out. Added to those on the command line.")
_RESUME = flags.DEFINE_bool(
    "resume", False, "Skip pages whose outputs exist (a killed run's finished pages and documents) and append to "
    "the manifest. Without it every output is written again.")
_MANIFEST = flags.DEFINE_string(
    "manifest", None, "Where the per-page CSV goes: source, page, output, size, dpi, seconds, quality "
    "(default <out>/manifest.csv with --out; '' writes none).")
_MULTIPAGE_TIFF = flags.DEFINE_bool(
    "multipage_tiff", True, "With --format=tif, a multi-page input gives one multi-page TIFF (pages in order); "
    "otherwise, and always for PNG, numbered files <stem>_p001<suffix>.<ext>, ...")
_BITS = flags.DEFINE_enum(
    "bits", "1", ["1", "8"], "1 = bilevel (PNG 1-bit, TIFF and PDF CCITT G4); 8 = 8-bit grey 0/255.")
_FOREGROUND = flags.DEFINE_enum("foreground", "black", ["black", "white"], "Colour of the ink in the outputs.")
_DEVICE = flags.DEFINE_enum(
    "device", None, ["cpu", "gpu", "tpu"], "Where the model runs (default: JAX's choice). Classic methods use the CPU.")
_INFERENCE_OPTIONS = cli.define_inference_flags()
flags.adopt_module_key_flags(cli)  # list them in this launcher's --help
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")
_PROBABILITY = flags.DEFINE_bool(
    "probability", False, "Models only: also write <stem><suffix>_prob.png beside each output, the 8-bit ink "
    "probability shaded like the output (with ink black, 0 = surely ink, 255 = surely paper).")
_QUALITY_CSV = flags.DEFINE_string(
    "quality_csv", None, "Models only: where the per-page quality estimates go, least confident first "
    "(default <out>/quality.csv with --out; '' writes none). Written from the manifest (every page done, "
    "earlier runs' too with --resume); with --manifest='' from this run's pages only.")


def _select_device(name: str) -> None:
    """Points JAX at one platform before anything touches a backend."""
    import jax

    # 'gpu' is left to JAX's discovery (CUDA or ROCm, whichever plugin is installed); naming it
    # in jax_platforms would make JAX fail on the vendor that is absent.
    jax.config.update("jax_platforms", "" if name == "gpu" else name)
    try:
        device = jax.devices(name)[0]
    except RuntimeError as e:
        raise app.UsageError(f"--device={name}: JAX finds no {name} here ({e})") from None
    jax.config.update("jax_default_device", device)


def _read_input_list(path: str) -> list[str]:
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise app.UsageError(f"--inputs_from={path}: cannot read the list ({reason})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def main(argv):
    if flags.FLAGS.distributed:
        raise app.UsageError("--distributed: binarize runs on one host (all its devices); split the inputs "
                             "between hosts with --inputs_from, each host with its own --out (hosts sharing "
                             "one --out would overwrite each other's manifest and temporary files)")
    inputs = argv[1:] + (_read_input_list(_INPUTS_FROM.value) if _INPUTS_FROM.value else [])
    if not inputs:
        raise app.UsageError("give the images to binarize: files, folders or globs (or --inputs_from=LIST)")
    if not 10 <= _DPI.value <= 2400:
        raise app.UsageError(f"--dpi={_DPI.value}: give a resolution in [10, 2400] dots per inch")
    if _OUT.value is None and _SUFFIX.value is None:
        raise app.UsageError("give --out=FOLDER, or --suffix=_bin to write outputs beside the inputs")
    if _CHECKPOINT.value and _METHOD.value:
        raise app.UsageError("give --checkpoint or --method, not both")
    if _DEVICE.value and not _METHOD.value:  # a model runs: the checkpoint or the released default
        _select_device(_DEVICE.value)
    from binjax import binarize, binarizers

    checkpoints = [_CHECKPOINT.value] if _CHECKPOINT.value else []
    methods = [_METHOD.value] if _METHOD.value else []
    try:
        # With neither flag this is binarizers.default_binarizer: the released lite model.
        (binarizer,) = binarizers.make_binarizers(
            checkpoints, methods, **_INFERENCE_OPTIONS()).values()
    except (ValueError, FileNotFoundError) as e:  # no binarizer, unknown method, no checkpoint there
        raise app.UsageError(str(e)) from None

    files, problems, notes = binarize.expand_inputs(inputs, skip_stem_suffix=_SUFFIX.value or "")
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    for note in notes:
        print(note, file=sys.stderr)
    jobs, conflicts = binarize.plan_outputs(files, out_dir=_OUT.value, suffix=_SUFFIX.value or "",
                                            extension=f".{_FORMAT.value}", multipage_tiff=_MULTIPAGE_TIFF.value)
    if conflicts:
        print(f"refusing to run: {len(conflicts)} output(s) would overwrite input files or each other "
              "(nothing was written):", file=sys.stderr)
        for conflict in conflicts:
            print(f"  {conflict}", file=sys.stderr)
        sys.exit(2)

    from binjax import quality

    quality_csv = _QUALITY_CSV.value
    if quality_csv is None and _OUT.value is not None:
        quality_csv = os.path.join(_OUT.value, "quality.csv")
    manifest_csv = _MANIFEST.value
    if manifest_csv is None and _OUT.value is not None:
        manifest_csv = os.path.join(_OUT.value, "manifest.csv")
    report = None
    if quality.has_probability(binarizer) and (quality_csv or manifest_csv or _PROBABILITY.value):
        report = quality.PageReport(binarizer, probability_suffix="_prob" if _PROBABILITY.value else None,
                                    foreground=_FOREGROUND.value)
    elif _PROBABILITY.value or _QUALITY_CSV.value:
        raise app.UsageError("--probability and --quality_csv need a model, not a classic --method")
    pages = sum(job.pages for job in jobs)
    print(f"binarizing {len(jobs)} file(s), {pages} page(s), with {binarizer.description}", file=sys.stderr)
    options = dict(foreground=_FOREGROUND.value, bits=int(_BITS.value), progress=_PROGRESS.value, page_fn=report,
                   dpi=_DPI.value, resume=_RESUME.value)
    if manifest_csv:  # quality.csv is a view of the manifest, rewritten also when the run is stopped
        outcome = binarize.binarize_with_manifest(binarizer, jobs, manifest_path=manifest_csv,
                                                  quality_csv=quality_csv if report is not None else None, **options)
    else:
        outcome = binarize.binarize_files(binarizer, jobs, **options)
    if outcome.done_earlier:
        print(f"--resume: {outcome.done_earlier} page(s) were done by an earlier run (outputs exist)", file=sys.stderr)
    if report is not None and quality_csv and manifest_csv:
        print(f"quality estimates (least confident first): {quality_csv}", file=sys.stderr)
    elif report is not None and quality_csv and report.rows:  # no manifest: this run's pages only
        if _RESUME.value and os.path.exists(quality_csv):  # keep the rows of the pages not redone
            redone = {row["output"] for row in report.rows}
            report.rows[:0] = [row for row in quality.read_quality_csv(quality_csv) if row["output"] not in redone]
        print(f"quality estimates (least confident first): {report.write_csv(quality_csv)}", file=sys.stderr)
    skipped, written = problems + outcome.skipped, outcome.written
    where = _OUT.value or f"beside the inputs (suffix {_SUFFIX.value!r})"
    print(f"wrote {written} file(s) to {where}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} input(s) or page(s) skipped:", file=sys.stderr)
        for message in skipped:
            print(f"  {message}", file=sys.stderr)
        sys.exit(1)


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
