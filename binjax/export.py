"""Released weights: a trained model exported small, with its config and model card, and loaded back.

An export is a folder of three files, small enough to commit and ship inside the package:

  weights.npz   parameters and BatchNorm statistics only (no optimizer state), keys
                'params/<path>' and 'batch_stats/<path>'; float32, or bfloat16 stored as
                its raw 16 bits ('<key>::bf16') since numpy has no bfloat16
  config.json   the training config (model, data channels, ...): what rebuilds the model
  card.json     the model card: what it was trained on, under which protocol, its scores

`load_exported(folder)` rebuilds the model in eval mode; binjax.pretrained.load_model accepts
an export folder wherever it accepts a checkpoint.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from binjax.released import WEIGHTS_FILE as WEIGHTS
from binjax.released import is_export

CONFIG, CARD = "config.json", "card.json"
_BF16_SUFFIX = "::bf16"
PathLike = str | os.PathLike


def _key(prefix: str, path) -> str:
    """'params/encoder/0/conv1/conv/kernel': a pytree path as a weights.npz key."""
    return "/".join([prefix, *(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)])


def _flatten(tree: dict, prefix: str) -> dict[str, np.ndarray]:
    return {_key(prefix, path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def export_model(state: dict, config: ml_collections.ConfigDict, out_dir: PathLike, *,
                 card: dict[str, Any], dtype: str = "float32") -> pathlib.Path:
    """Writes params + BatchNorm stats of a train state, its config and `card` to out_dir."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"export dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {**_flatten(state["params"], "params"), **_flatten(state["batch_stats"], "batch_stats")}
    stored = {}
    for key, value in arrays.items():
        if dtype == "bfloat16" and value.dtype == np.float32:
            stored[key + _BF16_SUFFIX] = np.asarray(jnp.asarray(value, jnp.bfloat16)).view(np.uint16)
        else:
            stored[key] = value
    np.savez_compressed(out_dir / WEIGHTS, **stored)
    (out_dir / CONFIG).write_text(config.to_json_best_effort(indent=2) + "\n")
    card = dict(card, weights_dtype=dtype,
                parameters=int(sum(v.size for k, v in arrays.items() if k.startswith("params/"))))
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return out_dir


def read_card(path: PathLike) -> dict[str, Any]:
    return json.loads((pathlib.Path(path) / CARD).read_text())


def load_exported(path: PathLike) -> tuple[nnx.Module, ml_collections.ConfigDict]:
    """(model in eval mode, training config) from an export folder."""
    from binjax import train  # noqa: PLC0415 -- train imports the data pipeline; only when loading

    path = pathlib.Path(path)
    if not is_export(path):
        raise FileNotFoundError(f"{path}: no exported model ({WEIGHTS} missing)")
    config = ml_collections.ConfigDict(json.loads((path / CONFIG).read_text()))
    with np.load(path / WEIGHTS) as data:
        arrays = {}
        for key in data.files:
            value = data[key]
            if key.endswith(_BF16_SUFFIX):
                key, value = key[: -len(_BF16_SUFFIX)], np.asarray(
                    jnp.asarray(value.view(jnp.bfloat16), jnp.float32))
            arrays[key] = value
    abstract = train.abstract_train_state(config)
    restored = {}
    for part in ("params", "batch_stats"):
        leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract[part])
        values = []
        for path_keys, leaf in leaves:
            key = _key(part, path_keys)
            if key not in arrays or arrays[key].shape != leaf.shape:
                found = "missing" if key not in arrays else f"shaped {arrays[key].shape}"
                raise ValueError(f"{path / WEIGHTS}: {key} is {found}; model {config.model.name!r} needs {leaf.shape}")
            values.append(jnp.asarray(arrays[key], leaf.dtype))
        restored[part] = jax.tree.unflatten(treedef, values)
    _, eval_graphdef = train.model_graphdefs(config)
    return nnx.merge(eval_graphdef, restored["params"], restored["batch_stats"]), config
