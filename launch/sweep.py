r"""Runs an ablation sweep (a config file's get_sweep()) run by run, then reports on it.

Each run trains in WORKDIR/<run name> exactly as launch/train.py would, so an interrupted sweep
resumes where it stopped: rerun the same command; finished runs (DONE marker, or a validation at
config.num_steps) are skipped. --print_commands and --slurm_array hand the runs to a scheduler
instead; --report writes a CSV, a mean +- std table and plots of the runs so far.

  python -m launch.sweep --config=configs/ablations/loss.py:smoke --workdir=/tmp/binjax/ablate_loss
  python -m launch.sweep --config=configs/ablations/loss.py --workdir=workdirs/ablate --parallel=2
  python -m launch.sweep --config=configs/ablations/loss.py --workdir=workdirs/ablate --report
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import os  # noqa: E402
import re  # noqa: E402

from absl import flags  # noqa: E402

from binjax import sweep, sweep_runs  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Sweep file with get_config() and get_sweep(): configs/ablations/<name>.py[:variant].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep root: each run trains in <workdir>/<run name>.")
_PARALLEL = flags.DEFINE_integer("parallel", 0, "0: train the runs one after another in this process; N: N `launch.train` subprocesses at a time (logs in <run>/train.log).")
_PRINT = flags.DEFINE_bool("print_commands", False, "Print one launch/train.py command per run (all runs; finished ones resume and exit at once) and exit.")
_SLURM = flags.DEFINE_string("slurm_array", None, "Write an sbatch job-array script to this path (task i trains run i of --print_commands, from the current directory; logs in <workdir>/slurm/) and exit. Resources go on the sbatch command line.")
_PYTHON = flags.DEFINE_string("python", "python", "Interpreter named in --print_commands and --slurm_array output.")
_REPORT = flags.DEFINE_bool("report", False, "Write <workdir>/report.csv, report.md and plots/*.png from the runs so far, and exit.")
_ONLY = flags.DEFINE_string("only", None, "Only runs whose name matches this regular expression (re.search), e.g. 'name=dice,|seed=0'.")
_LIMIT = flags.DEFINE_integer("limit", None, "Only the first N runs (after --only).")
flags.mark_flags_as_required(["config", "workdir"])


def _selected(runs):
    if _ONLY.value:
        runs = [r for r in runs if re.search(_ONLY.value, sweep.run_name(r))]
    return runs[: _LIMIT.value] if _LIMIT.value is not None else runs


def main(argv):
    del argv
    experiment = sweep.Sweep(_CONFIG.value, _WORKDIR.value)
    runs = _selected(experiment.runs)

    if _PRINT.value:
        for overrides in runs:
            print(sweep.shell_command(experiment.command(overrides, python=_PYTHON.value)))
        return

    if _SLURM.value:
        script = sweep.slurm_array_script(experiment, runs, python=_PYTHON.value, cwd=os.getcwd())
        (experiment.root / "slurm").mkdir(parents=True, exist_ok=True)  # sbatch fails on a missing log dir
        with open(_SLURM.value, "w") as f:
            f.write(script)
        print(f"Wrote {_SLURM.value}: a SLURM array of {len(runs)} runs (tasks 0-{len(runs) - 1}); "
              f"submit with: sbatch [resources] {_SLURM.value}")
        return

    if _REPORT.value:
        experiment.runs = runs
        paths = sweep.write_report(experiment)
        print(f"Report on {len(runs)} runs of {_CONFIG.value}:")
        print(f"  table per run   {paths['csv']}")
        print(f"  mean ± std      {paths['md']}")
        print(f"  plots           {paths['md'].parent / 'plots'}/ (<metric>_by_run.png, val_curves.png)")
        return

    common.initialize_runtime()
    plan = sweep_runs.pending_runs(experiment, runs, title=f"Sweep {_CONFIG.value}")
    if _PARALLEL.value > 0:
        failed = sweep_runs.train_in_subprocesses(plan, experiment, _PARALLEL.value)
    else:
        failed = sweep_runs.train_in_process(plan, experiment)
    print(f"Sweep finished: {len(plan) - len(failed)} trained now, {len(runs) - len(plan)} skipped, "
          f"{len(failed)} failed. Report: python -m launch.sweep --config={_CONFIG.value} "
          f"--workdir={_WORKDIR.value} --report", flush=True)
    if failed:
        raise SystemExit(f"failed runs: {', '.join(failed)}")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
