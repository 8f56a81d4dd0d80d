"""Model registry: name -> constructor, checked before anything is built.

Every model is a flax.nnx Module built as `Constructor(in_channels, *, rngs, **kwargs)` and called
as `model(x, *, rngs=None) -> logits [N,H,W,1]` (float32), with x float NHWC in [0,1] of any
H x W. `model.train()` / `model.eval()` switch BatchNorm and Dropout; in train mode with dropout,
pass `rngs=nnx.Rngs(dropout=key)` to the call.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import jax
import numpy as np
from flax import nnx

from binjax.models.lite import LiteUNet
from binjax.models.sae import SelectionalAutoEncoder
from binjax.models.unet import UNet

MODELS: dict[str, Callable[..., nnx.Module]] = {
    "unet": UNet,
    "lite": LiteUNet,
    "sae": SelectionalAutoEncoder,
}

# Arguments create_model supplies itself; they are not model hyper-parameters.
_RESERVED = ("in_channels", "rngs")


def model_kwargs(name: str) -> dict[str, Any]:
    """The hyper-parameters `name` accepts, with their defaults (for configs and error messages)."""
    constructor = _lookup(name)
    return {
        p.name: p.default for p in inspect.signature(constructor.__init__).parameters.values()
        if p.name not in ("self", *_RESERVED) and p.kind == p.KEYWORD_ONLY}


def check_model_config(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raises ValueError for an unknown model name or hyper-parameter, without building anything.

    Meant for config loading, so a typo fails before data and devices are set up.
    """
    valid = model_kwargs(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"model {name!r} has no argument(s) {unknown}; valid arguments: {sorted(valid)}")


def create_model(name: str, *, in_channels: int, rngs: nnx.Rngs, **kwargs) -> nnx.Module:
    """Builds the registered model `name` for `in_channels` input channels: the image's 1 or 3, and
    one more when it takes a page-context channel (binjax.page_context)."""
    check_model_config(name, kwargs)
    if in_channels not in (1, 2, 3, 4):
        raise ValueError(f"model {name!r}: in_channels must be 1 to 4 (1 or 3 image channels, one more "
                         f"with page context), got {in_channels}")
    return MODELS[name](in_channels, rngs=rngs, **kwargs)


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (nnx.Param only; BatchNorm running statistics excluded)."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return int(sum(np.prod(leaf.shape) for leaf in leaves))


def _lookup(name: str) -> Callable[..., nnx.Module]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name]


__all__ = ["MODELS", "create_model", "count_params", "check_model_config", "model_kwargs",
           "UNet", "LiteUNet", "SelectionalAutoEncoder"]
