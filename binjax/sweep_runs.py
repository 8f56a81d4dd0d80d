"""Training a sweep's runs: one after another in this process, or as parallel subprocesses.

Each run trains in its own workdir exactly as `launch/train.py` would, so an interrupted sweep
resumes where it stopped; a finished run gets a DONE marker (binjax.sweep.mark_done). An
``on_done(overrides)`` hook runs right after each run's marker, so that work depending on one run
(the protocol scores it) is not lost when a long sweep is stopped before its last run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from absl import logging

from binjax import sweep
from binjax.sweep import Overrides


def pending_runs(experiment: sweep.Sweep, runs: Sequence[Overrides], *, title: str) -> list[Overrides]:
    """The runs not done yet, after printing each run's status ('done', 'partial', 'todo')."""
    statuses = {sweep.run_name(r): experiment.status(r) for r in runs}
    plan = [r for r in runs if statuses[sweep.run_name(r)] != "done"]
    print(f"{title}: {len(runs)} runs in {experiment.root}; {len(runs) - len(plan)} done (skipped), "
          f"{sum(s == 'partial' for s in statuses.values())} to resume, "
          f"{sum(s == 'todo' for s in statuses.values())} to start.", flush=True)
    for overrides in runs:
        print(f"  {statuses[sweep.run_name(overrides)]:8s} {sweep.run_name(overrides)}", flush=True)
    return plan


OnDone = Callable[[Overrides], None]


def train_in_process(plan: Sequence[Overrides], experiment: sweep.Sweep, *,
                     on_done: OnDone | None = None, progress: bool = True) -> list[str]:
    """Trains each run of `plan` in this process, one after another (then `on_done(run)`);
    returns the names that failed. progress=False: no training progress bars."""
    from binjax import train  # after jax.distributed is up

    failed = []
    for i, overrides in enumerate(plan, 1):
        name, workdir = sweep.run_name(overrides), experiment.workdir(overrides)
        print(f"[{i}/{len(plan)}] {name}: training in {workdir}", flush=True)
        start = time.perf_counter()
        try:
            scores = train.train_and_evaluate(experiment.config(overrides), workdir, progress=progress)
        except Exception:  # one broken run must not stop the sweep; KeyboardInterrupt still does
            logging.exception("run %s failed", name)
            print(f"[{i}/{len(plan)}] {name}: FAILED (see log above); rerun to retry", flush=True)
            failed.append(name)
            continue
        sweep.mark_done(workdir, scores)
        print(f"[{i}/{len(plan)}] {name}: done in {time.perf_counter() - start:.0f}s, "
              f"val/f1 {scores.get('val/f1', float('nan')):.4f}", flush=True)
        if on_done is not None:
            on_done(overrides)
    return failed


def train_in_subprocesses(plan: Sequence[Overrides], experiment: sweep.Sweep, parallel: int, *,
                          on_done: OnDone | None = None) -> list[str]:
    """Trains `plan` as `launch.train` subprocesses, `parallel` at a time (logs in <run>/train.log;
    `on_done(run)` in this process as each one finishes, while the others train on); returns the
    names that failed. Interrupted, it stops its children: a rerun resumes them."""
    pending = list(enumerate(plan, 1))
    running: dict = {}  # Popen -> (index, overrides, log file, start time)
    failed = []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                i, overrides = pending.pop(0)
                workdir = experiment.workdir(overrides)
                workdir.mkdir(parents=True, exist_ok=True)
                log = open(workdir / "train.log", "a")
                cmd = experiment.command(overrides, python=sys.executable)
                print(f"[{i}/{len(plan)}] {sweep.run_name(overrides)}: started, log {workdir / 'train.log'}", flush=True)
                running[subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)] = (i, overrides, log, time.perf_counter())
            time.sleep(0.5)
            for proc in [p for p in running if p.poll() is not None]:
                i, overrides, log, start = running.pop(proc)
                log.close()
                name = sweep.run_name(overrides)
                if proc.returncode == 0:
                    sweep.mark_done(experiment.workdir(overrides), dict(returncode=0))
                    print(f"[{i}/{len(plan)}] {name}: done in {time.perf_counter() - start:.0f}s", flush=True)
                    if on_done is not None:
                        on_done(overrides)
                else:
                    failed.append(name)
                    print(f"[{i}/{len(plan)}] {name}: FAILED with exit status {proc.returncode}; "
                          f"see {experiment.workdir(overrides) / 'train.log'}", flush=True)
    finally:  # interrupted: stop our children; their last checkpoints let a rerun resume
        for proc in running:
            proc.terminate()
        for proc in running:
            proc.wait()
    return failed
