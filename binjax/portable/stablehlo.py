"""The tile predictor of a trained model as a serialized `jax.export` artifact (StableHLO).

The artifact is one function with the weights inside it as constants:

    uint8 [b, tile, tile, C]  ->  float32 [b, tile, tile]   ink probability (sigmoid of the logits)

in binjax's layout (NHWC, C = the model's 1 or 3 input channels), the tile pixels as read from the
scan (the function divides by 255 itself, as binjax.inference does). The batch `b` is symbolic
(any batch size, one file); the tile side is fixed. Why fixed: full pages go through tiles anyway
(binjax.inference), and one tile shape means one compiled program per process; the models pad
inputs to a multiple of 2**depth inside, which symbolic heights and widths would carry into the
program as shape arithmetic for no gain. A tile that is a multiple of 2**depth (512 for every
shipped model) needs no padding at all.

Tracing happens inside `cpu_kernels.disabled()`: on x86 binjax would otherwise put its own XLA FFI
custom calls (binjax_conv3x3_*) into the program (jax.export refuses them: a process that never
loaded binjax has no such targets). The artifact is lowered for `platforms` (default cpu and cuda: one file runs on
both; lax.platform_dependent branches would be resolved per platform, but none is left).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from binjax import cpu_kernels

ARTIFACT = "model.stablehlo"
RUNNER = "run_stablehlo.py"
DEFAULT_PLATFORMS = ("cpu", "cuda")
PathLike = str | os.PathLike
RUNNER_SOURCE = pathlib.Path(__file__).with_name(RUNNER)


def tile_predictor(model: nnx.Module):
    """uint8 [b, t, t, C] -> float32 [b, t, t] ink probabilities, the model's weights closed over
    (they become constants of the exported program). The same x / 255 and sigmoid as
    binjax.inference.make_predict_fn and sliding_window_predict."""
    eval_model = nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)
    graphdef, state = nnx.split(eval_model)

    def predict(tiles: jax.Array) -> jax.Array:
        x = tiles.astype(jnp.float32) / jnp.float32(255.0)
        return jax.nn.sigmoid(nnx.merge(graphdef, state)(x)[..., 0])

    return predict


def export_tile_predictor(model: nnx.Module, *, in_channels: int, tile: int = 512,
                          platforms: Sequence[str] = DEFAULT_PLATFORMS) -> jax.export.Exported:
    """The jax.export.Exported of tile_predictor(model), batch symbolic, kernels off (module doc)."""
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    (batch,) = jax.export.symbolic_shape("b")
    spec = jax.ShapeDtypeStruct((batch, tile, tile, in_channels), jnp.uint8)
    with cpu_kernels.disabled():
        # a fresh jit: nothing traced earlier (with the kernels on) is reused
        return jax.export.export(jax.jit(tile_predictor(model)), platforms=tuple(platforms))(spec)


def custom_call_targets(exported: jax.export.Exported) -> set[str]:
    """The custom_call targets in an artifact's StableHLO (e.g. shape assertions, never binjax's)."""
    text = exported.mlir_module()
    return set(re.findall(r"stablehlo\.custom_call @([\w.$-]+)", text)) | set(
        re.findall(r'call_target_name = "([^"]+)"', text))


def write_stablehlo(model: nnx.Module, out_dir: PathLike, *, in_channels: int, tile: int = 512,
                    platforms: Sequence[str] = DEFAULT_PLATFORMS, contrast: str = "none",
                    context: str = "none") -> dict:
    """Writes <out_dir>/model.stablehlo (the serialized artifact) and run_stablehlo.py (the
    standalone runner); returns what a model card says about the artifact (`describe`).

    contrast: how the model's pages were prepared (config.data.contrast); the card records it
    and the runner applies it by default, as binjax's own inference does.
    context: the model's page context (config.data.context); 'paper': in_channels counts the paper
    channel, and the runner computes it as binjax.page_context does."""
    exported = export_tile_predictor(model, in_channels=in_channels, tile=tile, platforms=platforms)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ARTIFACT
    path.write_bytes(exported.serialize())
    shutil.copyfile(RUNNER_SOURCE, out_dir / RUNNER)
    return {**describe(exported, path), "contrast": contrast, "context": context}


def describe(exported: jax.export.Exported, path: pathlib.Path) -> dict:
    """What the model card says about an artifact: file, inputs, outputs, platforms, versions."""
    (spec,) = exported.in_avals
    (out,) = exported.out_avals
    return {
        "file": path.name,
        "input": {"shape": [str(d) for d in spec.shape], "dtype": str(spec.dtype),
                  "layout": "NHWC", "values": "pixels 0-255 as read"},
        "output": {"shape": [str(d) for d in out.shape], "dtype": str(out.dtype),
                   "values": "ink probability in [0, 1]"},
        "platforms": list(exported.platforms),
        "jax_version": jax.__version__,
        "calling_convention_version": exported.calling_convention_version,
        "runner": RUNNER,
        "bytes": path.stat().st_size,
    }


def load(path: PathLike) -> jax.export.Exported:
    return jax.export.deserialize(bytearray(pathlib.Path(path).read_bytes()))

