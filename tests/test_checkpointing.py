"""Checkpoints: best/latest bookkeeping and restores onto another device count."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from binjax import checkpointing, sharding


def _state(mesh):
    """A state with one array split over the mesh's data axis and one replicated."""
    split = jax.device_put(jnp.arange(64.0).reshape(16, 4), NamedSharding(mesh, P("data")))
    return {"step": jnp.int32(3), "params": {"w": split, "b": jnp.ones(4)}}


def _target(mesh):
    """The abstract state laid out on `mesh`: the big array split over 'data', the rest replicated."""
    abstract = jax.eval_shape(lambda: {"step": jnp.int32(0), "params": {"w": jnp.zeros((16, 4)), "b": jnp.zeros(4)}})
    spec = lambda a: P("data") if a.shape == (16, 4) else P()  # noqa: E731
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, spec(a))), abstract)


@pytest.mark.parametrize("restore_devices", [1, 4])
def test_checkpoint_written_on_eight_devices_restores_onto_fewer(tmp_path, restore_devices):
    config = ml_collections.ConfigDict({"seed": 1})
    mesh8 = sharding.make_mesh(sharding.default_mesh_config())
    assert mesh8.size == 8
    saver = checkpointing.Checkpointer(tmp_path, every_steps=1, best_metric=None)
    saver.maybe_save(3, _state(mesh8), {"next_index": 24}, config)
    saver.wait_until_finished()
    saver.close()

    small = sharding.make_mesh(sharding.default_mesh_config(), devices=jax.devices()[:restore_devices])
    restorer = checkpointing.Checkpointer(tmp_path, every_steps=1, best_metric=None)
    state, data_state, saved_config = restorer.restore(_target(small))
    restorer.close()
    np.testing.assert_array_equal(state["params"]["w"], np.arange(64.0).reshape(16, 4))
    assert state["params"]["w"].sharding.mesh.size == restore_devices
    assert int(state["step"]) == 3 and data_state == {"next_index": 24} and saved_config == {"seed": 1}


def test_best_manager_keeps_the_highest_metric_and_latest_keeps_n(tmp_path):
    config = ml_collections.ConfigDict({"seed": 1})
    mesh = sharding.make_mesh(sharding.default_mesh_config())
    ckpt = checkpointing.Checkpointer(tmp_path, every_steps=2, keep=2, best_metric="val/f1")
    for step, f1 in [(2, 0.5), (4, 0.9), (6, 0.7), (8, 0.6)]:
        assert ckpt.maybe_save(step, _state(mesh), {}, config)
        ckpt.save_if_best(step, _state(mesh), {}, config, {"val/f1": f1})
    assert not ckpt.maybe_save(9, _state(mesh), {}, config)  # not on the interval
    ckpt.wait_until_finished()
    assert ckpt.latest_step() == 8 and ckpt.best_step() == 4
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [6, 8]
    assert checkpointing.find_checkpoint(tmp_path) == (tmp_path / "best" / "4").absolute()
    assert checkpointing.find_checkpoint(tmp_path, prefer_best=False) == (tmp_path / "checkpoints" / "8").absolute()
    ckpt.close()


def test_find_checkpoint_names_the_folder_when_there_is_none(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        checkpointing.find_checkpoint(tmp_path)


def test_a_save_the_disk_cannot_hold_is_refused_before_it_starts(tmp_path, monkeypatch):
    config = ml_collections.ConfigDict({"seed": 1})
    mesh = sharding.make_mesh(sharding.default_mesh_config())
    ckpt = checkpointing.Checkpointer(tmp_path, every_steps=1, best_metric="val/f1")
    assert ckpt.maybe_save(1, _state(mesh), {}, config)
    ckpt.wait_until_finished()
    real = checkpointing.shutil.disk_usage
    monkeypatch.setattr(checkpointing.shutil, "disk_usage", lambda path: real(path)._replace(free=1000))
    with pytest.raises(checkpointing.CheckpointError, match=r"not enough space to save a checkpoint in .*checkpoints: "
                                                            r"0.0 MiB free, about 1.0 MiB needed"):
        ckpt.maybe_save(2, _state(mesh), {}, config)
    with pytest.raises(checkpointing.CheckpointError, match=r"not enough space .*best"):
        ckpt.save_if_best(2, _state(mesh), {}, config, {"val/f1": 0.5})
    assert ckpt.finish() == f"last complete checkpoint: step 1 ({tmp_path.absolute() / 'checkpoints' / '1'})"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["1"]
