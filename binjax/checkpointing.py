"""The one home of Orbax: saving and restoring training runs.

A checkpoint holds the train state (parameters, BatchNorm statistics, optimizer state, step),
the data iterator state (so a resumed run sees the same batches) and the config. Two managers
live under the workdir:

  checkpoints/<step>/   the latest `keep` checkpoints, written every `every_steps`
  best/<step>/          the single best one by a validation metric (F-measure by default)

Saves are asynchronous: device arrays are copied to host before `save` returns, then written in
the background; Orbax writes to a temporary directory and renames it when complete, so a run
killed mid-save (even kill -9) resumes from the last complete checkpoint. A run that stops on
an error finishes its pending saves first (`finish`), or removes what they left half-written.

Restoring tries checkpoints newest first and falls back to the newest one that restores, saying
which it skipped and why (truncated array file, missing manifest, cut JSON, empty folder); when
none restores, one CheckpointError lists what was tried. Orbax's API moves fast, which is why
no other module imports it.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import pathlib
import re
import shutil
import time
from typing import Any, Callable, TypeVar

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from binjax.errors import BinjaxError, CheckpointError, ConfigError

T = TypeVar("T")

LATEST_DIR = "checkpoints"
BEST_DIR = "best"
SKIPPED_DIR = "skipped_checkpoints"  # where resume moves checkpoints newer than the one it used
_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # Orbax's name for a save in progress


class Checkpointer:
    """Saves and restores (train state, data iterator state, config) under a workdir."""

    def __init__(
        self,
        workdir: str | pathlib.Path,
        *,
        every_steps: int,
        keep: int = 2,
        best_metric: str | None = "val/f1",
        best_mode: str | None = None,
    ):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            # Orbax reads max_to_keep=0 as "keep none": each save would delete the one before
            raise ConfigError(f"keep_checkpoints={keep!r}: must be an integer >= 1")
        workdir = pathlib.Path(workdir).absolute()
        self.workdir = workdir
        _quiet_save_failure_tracebacks()
        self.every_steps = every_steps
        self.best_metric = best_metric
        if best_mode is None:
            best_mode = "min" if best_metric and best_metric.endswith("loss") else "max"
        # cleanup_tmp_directories: a save cut short by kill -9 leaves <step>.orbax-checkpoint-tmp.
        # Each manager names its own multi-host barriers: both save the last step at once, and
        # Orbax keys a save's barriers by the step alone ('async_commit_complete.4'), so two
        # managers' background threads would wait on one barrier name; under load one process then
        # fails the save ('Timed out while waiting for async_commit_complete barrier') while the
        # other waits for ever.
        self._latest = ocp.CheckpointManager(
            workdir / LATEST_DIR,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=LATEST_DIR)),
        )
        self._open = True  # until finish() closes the managers
        self._best = None
        if best_metric:
            self._best = ocp.CheckpointManager(
                workdir / BEST_DIR,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=1,
                    create=True,
                    cleanup_tmp_directories=True,
                    best_fn=lambda metrics: float(metrics[best_metric]),
                    best_mode=best_mode,
                    multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=BEST_DIR),
                ),
            )

    def _managers(self):
        return [m for m in (self._latest, self._best) if m is not None]

    @staticmethod
    def _save_args(train_state, data_state, config) -> ocp.args.Composite:
        return ocp.args.Composite(
            state=ocp.args.StandardSave(train_state),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(json.loads(config.to_json_best_effort())),
        )

    def maybe_save(self, step: int, train_state, data_state, config, *, force: bool = False) -> bool:
        """Saves to the latest-N manager every `every_steps` steps (or when forced)."""
        if not force and step % self.every_steps:
            return False
        if step in self._latest.all_steps():
            return False
        _check_free_space(self._latest.directory, train_state)
        try:  # raises a failure of the previous (background) save too
            self._latest.save(step, args=self._save_args(train_state, data_state, config), force=True)
        except Exception as e:  # noqa: BLE001 -- Orbax and tensorstore raise many types
            raise _save_failure(e, self._latest.directory) from None
        return True

    def save_if_best(self, step: int, train_state, data_state, config, metrics: dict) -> None:
        """Offers a validated state to the best-checkpoint manager, which keeps the best one."""
        if self._best is None or step in self._best.all_steps():
            return
        metrics = {k: float(v) for k, v in metrics.items()}
        _check_free_space(self._best.directory, train_state)
        try:
            self._best.save(step, args=self._save_args(train_state, data_state, config), metrics=metrics, force=True)
        except Exception as e:  # noqa: BLE001
            raise _save_failure(e, self._best.directory) from None

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def best_step(self) -> int | None:
        return None if self._best is None else self._best.best_step()

    def _restore_args(self, abstract_train_state) -> ocp.args.Composite:
        return ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_train_state),
            data=ocp.args.JsonRestore(),
            config=ocp.args.JsonRestore(),
        )

    def restore(self, abstract_train_state, step: int | None = None, *, best: bool = False):
        """Restores (train_state, data_state, config_dict) into the given abstract target.

        The target's shardings decide the layout, so a checkpoint written on 8 devices restores
        onto 1 (or any other mesh).
        """
        manager = self._best if best else self._latest
        if step is None:
            step = manager.best_step() if best else manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {manager.directory}")
        restored = manager.restore(step, args=self._restore_args(abstract_train_state))
        return restored.state, restored.data, restored.config

    def has_checkpoint(self) -> bool:
        """Whether checkpoints/ holds anything resume should try (even a broken step folder)."""
        return bool(step_dirs(self.workdir / LATEST_DIR))

    def restore_newest(self, abstract_train_state, check_config: Callable[[Any], None] = lambda c: None):
        """(train_state, data_state, config_dict) of the newest checkpoint in checkpoints/ that restores.

        Each one tried has its saved config passed to `check_config` first, which raises (a
        BinjaxError, not skipped) when the run may not resume from it. Checkpoints newer than the
        one restored are moved to skipped_checkpoints/, so the resumed run can save those steps
        again; nothing is deleted.
        """
        candidates = step_dirs(self.workdir / LATEST_DIR)

        def restore(step_dir: pathlib.Path):
            check_config(_json_item(step_dir, "config"))
            restored = self._latest.restore(int(step_dir.name), args=self._restore_args(abstract_train_state))
            return restored.state, restored.data, restored.config

        used, result = restore_first(candidates, restore)
        newer = candidates[: candidates.index(used)]
        if newer and jax.process_index() == 0:
            parking = self.workdir / SKIPPED_DIR / time.strftime("%Y%m%d-%H%M%S")
            parking.mkdir(parents=True, exist_ok=True)
            for step_dir in newer:
                shutil.move(str(step_dir), str(parking / step_dir.name))
            logging.warning("moved the checkpoint(s) that did not restore to %s", parking)
        if newer:
            self._latest.reload()
        return result

    def finish(self, *, raise_errors: bool = False) -> str:
        """Waits for pending saves, then removes any that could not finish; says what is on disk.

        Called on every way out of training (normal end, error, Ctrl-C, full disk); only the
        first call does anything. A failed save is raised as a CheckpointError with
        raise_errors, else logged: then the error that stopped training is the one to report.
        """
        managers, self._open = (self._managers() if self._open else []), False
        failure = None
        for manager in managers:
            try:
                manager.wait_until_finished()
            except BaseException as e:  # noqa: BLE001 -- a second Ctrl-C abandons the save
                failure = failure or _save_failure(e, manager.directory)
                logging.warning("a checkpoint save did not finish: %s", failure)
            try:
                manager.close()
            except BaseException as e:  # noqa: BLE001
                logging.warning("closing the checkpoints in %s: %s", manager.directory, _one_line(e))
        if jax.process_index() == 0:
            for manager_dir in (self.workdir / LATEST_DIR, self.workdir / BEST_DIR):
                for leftover in manager_dir.glob(f"*{_TMP_SUFFIX}*"):
                    shutil.rmtree(leftover, ignore_errors=True)
                    logging.warning("removed the unfinished checkpoint save %s", leftover)
        if failure is not None and raise_errors:
            raise failure
        return self.on_disk()

    def on_disk(self) -> str:
        """'last complete checkpoint: step N (<dir>)' (and the best one), as the disk says now."""
        latest = step_dirs(self.workdir / LATEST_DIR)
        best = step_dirs(self.workdir / BEST_DIR)
        text = f"last complete checkpoint: step {latest[0].name} ({latest[0]})" if latest else (
            f"no complete checkpoint in {self.workdir / LATEST_DIR}")
        return text + (f", best: step {best[0].name}" if best else "")

    def wait_until_finished(self) -> None:
        for manager in self._managers():
            manager.wait_until_finished()

    def close(self) -> None:
        for manager in self._managers():
            manager.close()


class _NoSaveFailureTracebacks:
    """Drops the tracebacks Orbax's threads, and asyncio at shutdown, log for a failed save.

    One failed write (a full disk) logged hundreds of traceback lines from each thread of the
    save. binjax raises that failure itself as one CheckpointError line; --verbosity=1 (or
    more) keeps every traceback.
    """

    def filter(self, record) -> bool:
        noisy = record.exc_info and any(p in record.pathname for p in ("/orbax/", "/asyncio/"))
        return not noisy or logging.get_verbosity() >= 1


_QUIET = _NoSaveFailureTracebacks()


def _quiet_save_failure_tracebacks() -> None:
    handler = logging.get_absl_handler()
    if _QUIET not in handler.filters:
        handler.addFilter(_QUIET)


_SPACE_MARGIN = 2**20  # bytes beyond the arrays: metadata, JSON items, the file system's blocks


def _check_free_space(directory, train_state) -> None:
    """Refuses to start a save the disk cannot hold.

    A save that runs out of space fails in Orbax's background threads, which then print
    tracebacks from each of them; checking first ends the run in one line, with every earlier
    checkpoint intact.
    """
    needed = sum(getattr(leaf, "nbytes", 0) for leaf in jax.tree.leaves(train_state)) + _SPACE_MARGIN
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise CheckpointError(
            f"not enough space to save a checkpoint in {directory}: {free / 2**20:.1f} MiB free, about "
            f"{needed / 2**20:.1f} MiB needed; free some space and rerun the same command to resume")


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _disk_full_errno(error: BaseException) -> int | None:
    """ENOSPC, EDQUOT or EFBIG if any exception in the chain is one (tensorstore's errors carry
    the errno only as text: "... [os_error_code='28']")."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return error.errno
        match = re.search(r"os_error_code='?(\d+)", str(error))
        if match and int(match.group(1)) in _DISK_FULL_ERRNOS:
            return int(match.group(1))
        error = error.__cause__ or error.__context__
    return None


def _save_failure(error: BaseException, directory) -> BaseException:
    """The one-line CheckpointError for a failed save (a KeyboardInterrupt stays itself).

    The failed save's tracebacks are dropped and its coroutines collected now: left to
    interpreter shutdown, their cleanup code imports modules after imports are gone and prints
    hundreds of lines ending in "ImportError: sys.meta_path is None".
    """
    if not isinstance(error, Exception):
        return error
    code = _disk_full_errno(error)
    reason = (f"{os.strerror(code)}: the disk is full or a file size limit was reached" if code
              else _one_line(error))
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
    gc.collect()
    return CheckpointError(f"a checkpoint save in {directory} failed: {reason}")


def _one_line(error: BaseException, limit: int = 200) -> str:
    """'TypeName: first line of the message', cut to `limit` characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def step_dirs(manager_dir: pathlib.Path) -> list[pathlib.Path]:
    """The step folders of one manager directory, newest first (unfinished saves left out)."""
    if not manager_dir.is_dir():
        return []
    steps = [p for p in manager_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(steps, key=lambda p: int(p.name), reverse=True)


def restore_first(candidates: list[pathlib.Path], restore: Callable[[pathlib.Path], T]) -> tuple[pathlib.Path, T]:
    """(step_dir, restore(step_dir)) for the first candidate that restores.

    Each one skipped is logged with why. A BinjaxError from `restore` (a config that does not
    fit) is raised at once: that is no broken checkpoint. None restoring is one CheckpointError
    that lists every folder tried and why it failed.
    """
    tried = []
    for step_dir in candidates:
        try:
            result = restore(step_dir)
        except BinjaxError:
            raise
        except Exception as e:  # noqa: BLE001 -- Orbax and tensorstore raise many types
            tried.append(f"{step_dir}: {_one_line(e)}")
            logging.warning("skipping checkpoint %s, it does not restore: %s", step_dir, _one_line(e))
            continue
        if tried:
            logging.warning("restored %s after skipping %d newer checkpoint(s)", step_dir, len(tried))
        return step_dir, result
    if not candidates:
        raise CheckpointError("no checkpoint to restore")
    raise CheckpointError(f"no checkpoint restores; tried {len(tried)}: " + "; ".join(tried))


def checkpoint_candidates(path: str | pathlib.Path, *, prefer_best: bool = True) -> list[pathlib.Path]:
    """The step directories a workdir, manager directory or step directory offers, in the order
    to try them: best/ newest first, then checkpoints/ newest first (the other way round with
    prefer_best=False). A step directory is the only candidate: it was asked for by name."""
    path = pathlib.Path(path).absolute()
    if (path / "_CHECKPOINT_METADATA").exists() or (path / "state").is_dir():
        return [path]
    managers = [path / BEST_DIR, path / LATEST_DIR] if prefer_best else [path / LATEST_DIR, path / BEST_DIR]
    candidates = [step for manager_dir in managers + [path] for step in step_dirs(manager_dir)]
    if not candidates:
        raise FileNotFoundError(f"{path}: no binjax checkpoint found (looked for {BEST_DIR}/ and {LATEST_DIR}/)")
    return candidates


def find_checkpoint(path: str | pathlib.Path, *, prefer_best: bool = True) -> pathlib.Path:
    """Resolves a workdir, a manager directory or a step directory to one step directory
    (the first candidate; `restore_any` falls back to the others when it does not restore)."""
    return checkpoint_candidates(path, prefer_best=prefer_best)[0]


def restore_any(path: str | pathlib.Path, restore: Callable[[pathlib.Path], T], *,
                prefer_best: bool = True) -> tuple[pathlib.Path, T]:
    """(step_dir, restore(step_dir)) for the first of `checkpoint_candidates(path)` that restores:
    what inference and warm starts load, skipping (and naming) broken checkpoints."""
    return restore_first(checkpoint_candidates(path, prefer_best=prefer_best), restore)


def _json_item(step_dir: pathlib.Path, name: str) -> Any:
    path = pathlib.Path(step_dir) / name / "metadata"  # where ocp.args.JsonSave puts an item
    if not path.exists():
        raise FileNotFoundError(f"{step_dir}: checkpoint has no {name} ({path} missing)")
    return json.loads(path.read_text())


def load_config(step_dir: pathlib.Path) -> ml_collections.ConfigDict:
    """The config a checkpoint was trained with."""
    return ml_collections.ConfigDict(_json_item(step_dir, "config"))


def load_data_state(step_dir: pathlib.Path) -> Any:
    """The data iterator state saved with a checkpoint (process 0's, the same on every process)."""
    return _json_item(step_dir, "data")


def restore_state(step_dir: pathlib.Path, abstract_train_state) -> Any:
    """Restores only the train state of one step directory (for evaluation and inference)."""
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(step_dir / "state", abstract_train_state)
