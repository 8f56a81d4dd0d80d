r"""Runs the cross-collection protocol: every fold trained, scored on collections it never saw.

Each fold of the protocol's sweep file trains (as launch/train.py would) on some whole
collections, selects its checkpoint on another, and is scored with the DIBCO measures on its test
collections beside Otsu, Sauvola and Su; the report gives each collection, the mean of
collections and the worst collection. The baselines are scored first, then each run right after
it trains, and the report is rewritten every time: a protocol stopped part-way keeps and reports
every run it finished. Resumable: rerun the same command after an interruption; trained runs,
scored runs and scored baselines are skipped. Overnight, in the background:

  nohup nice python -m launch.protocol --config=configs/cross_collection.py \
      --workdir=$HOME/binjax/protocol > $HOME/binjax/protocol.log 2>&1 &
  python -m launch.protocol --config=configs/cross_collection.py:smoke --workdir=/tmp/protocol_smoke
  python -m launch.protocol --config=configs/cross_collection.py --workdir=$HOME/binjax/protocol --report
  python -m launch.protocol --config=configs/cross_collection.py --workdir=/tmp/p --only='arg=bickley'
  python -m launch.protocol --config=configs/cross_collection.py --workdir=/tmp/p --notrain \
      --checkpoints=dibco_lite,dibco_unet  # the baselines and the released models, no training

Writes <workdir>/report.md (FM per collection, mean and worst collection; every measure's mean),
report.json and pages.csv (every page of every binarizer); each run's scores in
<workdir>/<run>/protocol/ and the baselines' in <workdir>/baselines/<collection>/.
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import functools  # noqa: E402
import re  # noqa: E402

from absl import flags  # noqa: E402

from binjax import protocol, released, sweep, sweep_runs  # noqa: E402
from launch import cli  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Protocol sweep file: configs/cross_collection.py[:variant].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Protocol root: each run trains in <workdir>/<run name>.")
_PARALLEL = flags.DEFINE_integer("parallel", 0, "0: train the runs one after another in this process; N: N "
                                 "`launch.train` subprocesses at a time (logs in <run>/train.log).")
_REPORT = flags.DEFINE_bool("report", False, "Only write the report from the runs scored so far, and exit.")
_TRAIN = flags.DEFINE_bool("train", True, "Train the runs not done yet; --notrain scores the baselines and the "
                           "runs trained so far, then reports.")
_ONLY = flags.DEFINE_string("only", None, "Only train and score the runs whose name matches this regular expression, "
                            "e.g. 'arg=bickley'; the report still shows every run scored so far.")
_METHODS = flags.DEFINE_list("methods", list(protocol.BASELINES), "Classic methods scored beside the models.")
_CHECKPOINTS = cli.define_checkpoints_flag(
    [], "Models trained outside the protocol, also scored on every test collection: released "
    f"models ({released.names_for_help()}) or workdirs. They may have seen some collections: say which in "
    "the report. A run folder with commas in its name (arg=bickley,seed=0) stays whole.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars while training (in this process) and scoring; "
                               "--noprogress keeps a background run's log to its lines.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    experiment = sweep.Sweep(_CONFIG.value, _WORKDIR.value)
    # --only picks the runs to train and score; the report keeps every run of the sweep scored so
    # far (a protocol run fold by fold must not shrink its report to the last fold).
    runs = [r for r in experiment.runs if not _ONLY.value or re.search(_ONLY.value, sweep.run_name(r))]
    if not _REPORT.value:
        common.initialize_runtime()
        plan = sweep_runs.pending_runs(experiment, runs, title=f"Protocol {_CONFIG.value}")
        # The references first, then each run scored (and the report rewritten) as soon as it has
        # trained: a protocol takes many hours, and one stopped before its last run keeps the
        # scores of every run it finished.
        print(f"Scoring the baselines ({', '.join(_METHODS.value)}) on every test collection", flush=True)
        protocol.score_baselines(experiment, methods=_METHODS.value, progress=_PROGRESS.value)
        if _CHECKPOINTS.value:
            print(f"Scoring {', '.join(_CHECKPOINTS.value)} on every test collection", flush=True)
            protocol.score_models(experiment, _CHECKPOINTS.value, progress=_PROGRESS.value)
        # Runs trained earlier (a resumed protocol, launch.train, a sweep) but not scored yet; the
        # report is written once at the end, not once per run already scored.
        unscored = [o for o in runs if experiment.status(o) == "done" and not protocol.is_scored(experiment, o)]
        for overrides in unscored:
            print(f"Scoring {sweep.run_name(overrides)} on its test collections", flush=True)
            protocol.score_run(experiment, overrides, progress=_PROGRESS.value)
        if unscored:
            protocol.write_report(experiment)
        on_done = functools.partial(_score_and_report, experiment)
        if not _TRAIN.value:
            failed = []
        elif _PARALLEL.value > 0:
            failed = sweep_runs.train_in_subprocesses(plan, experiment, _PARALLEL.value, on_done=on_done)
        else:
            failed = sweep_runs.train_in_process(plan, experiment, on_done=on_done, progress=_PROGRESS.value)
        if failed:
            print(f"failed runs (rerun to retry): {', '.join(failed)}", flush=True)
    paths = protocol.write_report(experiment)
    print(paths["md"].read_text())
    print(f"Files: {paths['md']}, {paths['json']}, {paths['pages']}")


def _score_and_report(experiment: sweep.Sweep, overrides) -> None:
    """Scores one trained run on its test collections (once) and rewrites the report."""
    print(f"Scoring {sweep.run_name(overrides)} on its test collections", flush=True)
    protocol.score_run(experiment, overrides, progress=_PROGRESS.value)
    paths = protocol.write_report(experiment)
    print(f"Report so far: {paths['md']}", flush=True)


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
