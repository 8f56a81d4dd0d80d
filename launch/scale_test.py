r"""The scale test: models and classic methods scored on collections resized x0.5, x1, x2.

Every page of each --collections is resized by each of --factors (area averaging down, bicubic up;
its ground truth with it, re-thresholded) and binarized at that size by each model, once per
--rescale_modes value (none: as it is; auto: resized to the training stroke width and back, see
binjax/text_scale.py; a number: that factor), and by the classic --methods. The DIBCO measures are
kept per page in <out>/x<factor>/<collection>/pages.csv; <out>/report.md holds FM per collection
and factor. Resumable: a (factor, collection) already scored is read back. With --stroke_widths,
the stroke-width estimator is checked instead: each page's estimate (from the input alone) against
its ground truth's stroke width, in <out>/stroke_widths.csv and .md.

  python -m launch.scale_test --out=/tmp/binjax/scale  # dibco_lite on DIBCO 2013, Bickley, PHIBD
  python -m launch.scale_test --collections=dibco2016 --factors=0.5,2 --rescale_modes=none,auto,2 \
      --out=/tmp/binjax/scale_2016
  python -m launch.scale_test --checkpoints=dibco_unet --methods=otsu --out=/tmp/binjax/scale_unet --report
  python -m launch.scale_test --stroke_widths --collections=dibco2009,dibco2010,dibco2011,dibco2012,dibco2013,\
dibco2014,dibco2016,bickley,monk_cuper,msi2015,nabuco,phibd --out=/tmp/binjax/widths
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import pathlib  # noqa: E402

from absl import app, flags  # noqa: E402
from binjax.binarizers import DEFAULT_OVERLAP  # noqa: E402
from launch import cli  # noqa: E402

_OUT = flags.DEFINE_string("out", None, "Output folder: per-page scores, report.md.")
_COLLECTIONS = flags.DEFINE_list(
    "collections", ["dibco2013", "bickley", "phibd"], "Collections to score (dibco2009 ... dibco2016, bickley, "
    "monk_cuper, msi2015, nabuco, phibd).")
_FACTORS = flags.DEFINE_list("factors", ["0.5", "1", "2"], "Resize factors of the test pages.")
_CHECKPOINTS = cli.define_checkpoints_flag(
    ["dibco_lite"], "Models (released names, export folders or training workdirs); 'none': only "
    "the --methods. A run folder with commas in its name (arg=bickley,seed=0) stays whole.")
_RESCALE_MODES = flags.DEFINE_list(
    "rescale_modes", ["none", "auto"], "Each model is scored once per value, as --rescale means it in "
    "launch.evaluate: none, auto or a factor.")
_METHODS = flags.DEFINE_list("methods", ["otsu", "sauvola", "su"], "Classic methods scored beside the models.")
_ROOT = flags.DEFINE_string("root", "../shared/data", "Holds dibco/<year>/ and extra/<collection>/.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "tfds data_dir the collections are prepared in ('' = tfds default).")
_TILE = flags.DEFINE_integer("tile", 512, "Model inference: tile size in pixels.")
_OVERLAP = flags.DEFINE_float("overlap", DEFAULT_OVERLAP, "Model inference: overlap between tiles, a fraction of the tile "
                              "(binjax's default; 0.5 to compare with tables measured before 2026-12-06).")
_REPORT = flags.DEFINE_bool("report", False, "Only write the report from what is scored so far.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_STROKE_WIDTHS = flags.DEFINE_bool(
    "stroke_widths", False, "Instead of scoring: the stroke-width estimator's error per page and collection "
    "(estimate from the input page / the ground truth's stroke width).")
flags.mark_flags_as_required(["out"])


def _binarizers():
    from binjax import binarizers, text_scale  # noqa: PLC0415

    checkpoints = [c for c in _CHECKPOINTS.value if c != "none"]
    modes = [text_scale.parse_rescale(m) for m in _RESCALE_MODES.value]  # ConfigError naming --rescale
    models = {}
    for checkpoint in checkpoints:
        for mode, spec in zip(modes, _RESCALE_MODES.value):
            name = binarizers.safe_name(f"binjax-{pathlib.Path(checkpoint).name}"
                                        + ("" if mode is None else f"-rescale_{spec}"))
            models[name] = binarizers.ModelBinarizer(checkpoint, name=name, tile=_TILE.value, overlap=_OVERLAP.value,
                                                          rescale=mode)
    return {**models, **(binarizers.make_binarizers((), _METHODS.value) if _METHODS.value else {})}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from binjax import scale_test  # noqa: PLC0415
    from binjax.data import collections  # noqa: PLC0415

    factors = scale_test.parse_factors(_FACTORS.value)
    names = collections.parse_collections(_COLLECTIONS.value, "--collections")
    out = pathlib.Path(_OUT.value)
    if _STROKE_WIDTHS.value:
        return _stroke_widths(names, out)
    if _REPORT.value:
        rows = [r for path in sorted(out.glob("x*/*/pages.csv")) for r in scale_test.read_rows(path)]
    else:
        if any(c != "none" for c in _CHECKPOINTS.value):
            common.initialize_runtime()
        binarizers = _binarizers()
        if not binarizers:
            raise app.UsageError("--checkpoints=none and no --methods: nothing to score")
        rows = scale_test.score_scales(binarizers, names, factors, root=_ROOT.value, out=out,
                                       data_dir=_DATA_DIR.value, progress=_PROGRESS.value)
    if not rows:
        raise app.UsageError(f"{out}: nothing scored yet; run without --report first")
    report = scale_test.report_markdown(rows)
    (out / "report.md").write_text("FM % per collection and scale (mean over pages)\n\n" + report)
    print(report)
    print(f"Files: {out / 'report.md'}, {out}/x<factor>/<collection>/pages.csv")


def _stroke_widths(names, out: pathlib.Path) -> None:
    import csv  # noqa: PLC0415

    from binjax import scale_test  # noqa: PLC0415

    rows = scale_test.stroke_width_rows(_ROOT.value, names)
    if not rows:
        raise app.UsageError(f"--root={_ROOT.value}: no <page>_gt.png pages of {', '.join(names)} there")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stroke_widths.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    table = scale_test.stroke_width_markdown(rows)
    (out / "stroke_widths.md").write_text(table)
    print(table)
    print(f"Files: {out / 'stroke_widths.csv'}, {out / 'stroke_widths.md'}")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
