r"""Binarizes images: files, folders or globs in, black-and-white PNG or TIFF files out.

Runs one binarizer, the released dibco_lite model unless --checkpoint or --method names another,
over every input. Outputs keep the input's name (stem + suffix + new extension) and size; ink is
black by default (--foreground=white for masks with white foreground). Inputs with the same stem
(page.png, page.tif) keep their extension in the output name: page_png.png, page_tif.png. Every
page of a multi-page TIFF is binarized: to scan_p001.png, scan_p002.png, ... or, with
--format=tif, to one multi-page TIFF scan.tif (--nomultipage_tiff: numbered TIFFs). With
--suffix, inputs whose name ends in the suffix are taken for earlier outputs and left out. An
input file is never overwritten: if an output would replace an input the run is refused before
anything is written. Unreadable files or pages are skipped with a message naming them, and the
exit status is then 1. With a model and --out, <out>/quality.csv lists every page with its
ground-truth-free quality estimate (the F-measure predicted from the model's own probabilities),
the least confident pages first: the pages to look at before trusting a bulk run.

  binjax-binarize data/samples/synthetic_00_grey_in.png --out=/tmp/binjax/bw  # released dibco_lite
  binjax-binarize scans/ --checkpoint=dibco_unet --out=/tmp/binjax/bw  # the released U-Net (~5x slower)
  binjax-binarize 'photos/*.jpg' --method=sauvola:window=51:k=0.3 --suffix=_bin --format=tif
  binjax-binarize scans/ --out=/tmp/binjax/bw --probability  # + <stem>_prob.png; quality.csv
"""

import os
import sys

from absl import app, flags

from launch import cli

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A released model (dibco_lite, dibco_unet), an export folder, a training workdir "
    "(its best checkpoint, else its latest) or a step directory. Default: the released dibco_lite.")
_METHOD = flags.DEFINE_string(
    "method", None, "A classic method instead of a model: otsu, sauvola, niblack, wolf, nick, su, gatos, isauvola, "
    "bataineh, bernsen, trsingh, wan; parameters after colons: sauvola:window=51:k=0.3.")
_OUT = flags.DEFINE_string("out", None, "Output folder (created if missing). Required unless --suffix is given.")
_SUFFIX = flags.DEFINE_string(
    "suffix", None, "Added to each output's stem, e.g. _bin; without --out, outputs go beside their inputs.")
_FORMAT = flags.DEFINE_enum("format", "png", ["png", "tif"], "Output file format.")
_MULTIPAGE_TIFF = flags.DEFINE_bool(
    "multipage_tiff", True, "With --format=tif, a multi-page input gives one multi-page TIFF (pages in order); "
    "otherwise, and always for PNG, numbered files <stem>_p001<suffix>.<ext>, ...")
_BITS = flags.DEFINE_enum("bits", "1", ["1", "8"], "1 = bilevel (PNG 1-bit, TIFF CCITT G4); 8 = 8-bit grey 0/255.")
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
    "(default <out>/quality.csv with --out; '' writes none).")


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


def main(argv):
    inputs = argv[1:]
    if not inputs:
        raise app.UsageError("give the images to binarize: files, folders or globs")
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
    report = None
    if quality.has_probability(binarizer) and (quality_csv or _PROBABILITY.value):
        report = quality.PageReport(binarizer, probability_suffix="_prob" if _PROBABILITY.value else None,
                                    foreground=_FOREGROUND.value)
    elif _PROBABILITY.value or _QUALITY_CSV.value:
        raise app.UsageError("--probability and --quality_csv need a model, not a classic --method")
    print(f"binarizing {len(jobs)} file(s) with {binarizer.description}", file=sys.stderr)
    outcome = binarize.binarize_files(
        binarizer, jobs, foreground=_FOREGROUND.value, bits=int(_BITS.value), progress=_PROGRESS.value,
        page_fn=report)
    if report is not None and quality_csv and report.rows:
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
