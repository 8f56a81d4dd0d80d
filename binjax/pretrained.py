"""Loading a trained model for inference from a training workdir or checkpoint directory."""

from __future__ import annotations

import pathlib

import jax
import ml_collections
from flax import nnx

from binjax import checkpointing, train


def load_model(path: str | pathlib.Path, *, prefer_best: bool = True) -> tuple[nnx.Module, ml_collections.ConfigDict]:
    """(model in eval mode, its training config) from a workdir, manager or step directory.

    A workdir resolves to its best checkpoint (by validation F-measure) when it has one, else
    its latest. The state is placed on the default device, whatever mesh trained it.
    """
    state, config = load_train_state(checkpointing.find_checkpoint(path, prefer_best=prefer_best))
    _, eval_graphdef = train.model_graphdefs(config)
    model = nnx.merge(eval_graphdef, state["params"], state["batch_stats"])
    return model, config


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
