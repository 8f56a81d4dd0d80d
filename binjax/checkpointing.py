"""The one home of Orbax: saving and restoring training runs.

A checkpoint holds the train state (parameters, BatchNorm statistics, optimizer state, step),
the data iterator state (so a resumed run sees the same batches) and the config. Two managers
live under the workdir:

  checkpoints/<step>/   the latest `keep` checkpoints, written every `every_steps`
  best/<step>/          the single best one by a validation metric (F-measure by default)

Saves are asynchronous: device arrays are copied to host before `save` returns, then written in
the background; Orbax writes to a temporary directory and renames it when complete, so a run
killed mid-save (even kill -9) resumes from the last complete checkpoint. Orbax's API moves
fast, which is why no other module imports it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

LATEST_DIR = "checkpoints"
BEST_DIR = "best"


class Checkpointer:
    """Saves and restores (train state, data iterator state, config) under a workdir."""

    def __init__(
        self,
        workdir: str | pathlib.Path,
        *,
        every_steps: int,
        keep: int = 2,
        best_metric: str | None = "val/f1",
        best_mode: str = "max",
    ):
        workdir = pathlib.Path(workdir).absolute()
        self.every_steps = every_steps
        self.best_metric = best_metric
        self._latest = ocp.CheckpointManager(
            workdir / LATEST_DIR,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )
        self._best = None
        if best_metric:
            self._best = ocp.CheckpointManager(
                workdir / BEST_DIR,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=1,
                    create=True,
                    best_fn=lambda metrics: float(metrics[best_metric]),
                    best_mode=best_mode,
                ),
            )

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
        self._latest.save(step, args=self._save_args(train_state, data_state, config), force=True)
        return True

    def save_if_best(self, step: int, train_state, data_state, config, metrics: dict) -> None:
        """Offers a validated state to the best-checkpoint manager, which keeps the best one."""
        if self._best is None or step in self._best.all_steps():
            return
        metrics = {k: float(v) for k, v in metrics.items()}
        self._best.save(step, args=self._save_args(train_state, data_state, config), metrics=metrics, force=True)

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def best_step(self) -> int | None:
        return None if self._best is None else self._best.best_step()

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
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_train_state),
                data=ocp.args.JsonRestore(),
                config=ocp.args.JsonRestore(),
            ),
        )
        return restored.state, restored.data, restored.config

    def wait_until_finished(self) -> None:
        self._latest.wait_until_finished()
        if self._best is not None:
            self._best.wait_until_finished()

    def close(self) -> None:
        self._latest.close()
        if self._best is not None:
            self._best.close()


def find_checkpoint(path: str | pathlib.Path, *, prefer_best: bool = True) -> pathlib.Path:
    """Resolves a workdir, a manager directory or a step directory to one step directory."""
    path = pathlib.Path(path).absolute()
    if (path / "_CHECKPOINT_METADATA").exists() or (path / "state").is_dir():
        return path
    candidates = [path / BEST_DIR, path / LATEST_DIR] if prefer_best else [path / LATEST_DIR, path / BEST_DIR]
    candidates.append(path)
    for manager_dir in candidates:
        steps = sorted(
            (int(p.name) for p in manager_dir.glob("*") if p.is_dir() and p.name.isdigit()),
        ) if manager_dir.is_dir() else []
        if steps:
            return manager_dir / str(steps[-1])
    raise FileNotFoundError(f"{path}: no binjax checkpoint found (looked for {BEST_DIR}/ and {LATEST_DIR}/)")


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
