"""The device mesh and how arrays are laid out on it: every sharding rule of binjax lives here.

Mesh axes and sizes come from the config (`config.mesh.shape`, `config.mesh.axes`; -1 fills
the remaining devices), so the same config runs on one CPU, 8 devices or many hosts.

  'data'   data parallel: the batch is split over it, the train state is replicated.
  'fsdp'   fully sharded data parallel (ZeRO-3): the batch is split over it too, and every
           parameter, its optimizer moments and BatchNorm statistics are split along their
           largest dimension that the axis size divides (tensors under
           `config.mesh.fsdp_min_size` elements stay replicated: sharding them saves nothing).
           XLA inserts the all-gathers before use and reduce-scatters the gradients.

E.g. axes ('data', 'fsdp') with shape (-1, 2): pairs of devices share one copy of the state.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# Mesh axes the batch dimension is split over (in this order), when present in the mesh.
BATCH_AXES = ("data", "fsdp")


FSDP_AXIS = "fsdp"


def default_mesh_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(shape=(-1,), axes=("data",), fsdp_min_size=2**12))


def resolve_mesh_shape(shape: tuple[int, ...], num_devices: int) -> tuple[int, ...]:
    """Replaces one -1 by whatever makes the product equal num_devices; checks the product."""
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ValueError(f"config.mesh.shape={shape}: at most one axis may be -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(f"config.mesh.shape={shape} does not divide {num_devices} devices")
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(f"config.mesh.shape={shape} needs {math.prod(shape)} devices, have {num_devices}")
    return shape


def make_mesh(cfg: ml_collections.ConfigDict, devices=None) -> Mesh:
    """A mesh over all (or the given) devices with the config's axes; classic GSPMD (Auto) axes."""
    devices = jax.devices() if devices is None else list(devices)
    axes = tuple(cfg.axes)
    shape = resolve_mesh_shape(tuple(cfg.shape), len(devices))
    if len(axes) != len(shape):
        raise ValueError(f"config.mesh.axes={axes} and config.mesh.shape={tuple(cfg.shape)} differ in length")
    if not any(a in axes for a in BATCH_AXES):
        raise ValueError(f"config.mesh.axes={axes} needs one of {BATCH_AXES} to split the batch over")
    auto = (jax.sharding.AxisType.Auto,) * len(axes)
    if devices == jax.devices():
        return jax.make_mesh(shape, axes, axis_types=auto)
    return Mesh(np.asarray(devices).reshape(shape), axes, axis_types=auto)


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the data axes; the rest replicated."""
    return NamedSharding(mesh, P(batch_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_parallel_size(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def global_batch(host_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles each process's slice of the batch into one global array sharded over the mesh."""
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in host_batch.items()
    }


def fsdp_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int) -> P:
    """The partition of one state tensor over the 'fsdp' axis: its largest divisible dimension."""
    if fsdp_size <= 1 or math.prod(shape) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp_size == 0:
            return P(*([None] * dim), FSDP_AXIS)
    return P()


def state_shardings(abstract_state: Any, mesh: Mesh, fsdp_min_size: int = 2**12) -> Any:
    """Shardings for the train state: replicated over 'data', split over 'fsdp' (see fsdp_spec)."""
    fsdp_size = mesh.shape.get(FSDP_AXIS, 1)
    return jax.tree.map(
        lambda leaf: NamedSharding(mesh, fsdp_spec(tuple(leaf.shape), fsdp_size, fsdp_min_size)), abstract_state
    )
