"""Loading a trained model for inference: a released model by name, an export, or a checkpoint.

Released models ship inside the package (binjax/weights/<name>/, see binjax/export.py and the
model cards in README.md), so `binjax-binarize scan.png` works offline right after install.
"""

from __future__ import annotations

import pathlib

import jax
import ml_collections
from flax import nnx

from binjax import checkpointing, export, released, train


def resolve(path: str | pathlib.Path, *, prefer_best: bool = True) -> pathlib.Path:
    """A released model's name, an export folder, or a workdir / manager / step directory ->
    the folder to load (a workdir resolves to its best checkpoint, else its latest)."""
    if str(path) in released.released_models():
        return released.RELEASED_DIR / str(path)
    if released.is_export(path):
        return pathlib.Path(path).absolute()
    return checkpointing.find_checkpoint(path, prefer_best=prefer_best)


def load_model(path: str | pathlib.Path, *, prefer_best: bool = True) -> tuple[nnx.Module, ml_collections.ConfigDict]:
    """(model in eval mode, its training config) from anything `resolve` accepts.

    The state is placed on the default device, whatever mesh trained it.
    """
    model, config, _ = load_model_and_source(path, prefer_best=prefer_best)
    return model, config


def load_model_and_source(path: str | pathlib.Path, *, prefer_best: bool = True):
    """(model, config, the folder it came from). A workdir's checkpoints are tried best/ newest
    first, then checkpoints/, skipping (and naming) any that do not restore."""
    if str(path) in released.released_models() or released.is_export(path):
        source = resolve(path)
        return (*export.load_exported(source), source)
    source, (state, config) = checkpointing.restore_any(path, load_train_state, prefer_best=prefer_best)
    _, eval_graphdef = train.model_graphdefs(config)
    model = nnx.merge(eval_graphdef, state["params"], state["batch_stats"])
    return model, config, source


def load_train_state(step_dir: pathlib.Path) -> tuple[dict, ml_collections.ConfigDict]:
    """(train state, config) of one step directory, on the default device.

    The state is params, BatchNorm stats, optimizer state and step, whatever mesh (or number of
    processes) wrote it.
    """
    config = checkpointing.load_config(step_dir)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), train.abstract_train_state(config)
    )
    return checkpointing.restore_state(step_dir, target), config
