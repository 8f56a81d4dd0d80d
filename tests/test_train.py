"""Training end to end on CPU: sharded steps, smoke configs, kill -9 and resume."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from binjax import checkpointing, reporting, sharding, train
from configs import default as default_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(
    p.name for p in (REPO / "configs").glob("*.py") if not p.name.startswith("_") and "def get_config" in p.read_text()
)



def _smoke(**overrides):
    config = default_config.get_config("smoke")
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return config


def _one_step(config, devices, num_steps=1):
    """Health of the last step, params and BatchNorm stats after `num_steps` steps on `devices`."""
    mesh = sharding.make_mesh(config.mesh, devices=devices)
    steps = train.make_steps(config, mesh)
    state = steps.init()
    rng = np.random.default_rng(0)
    for _ in range(num_steps):
        host = {
            "image": rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8),
            "mask": (rng.random((8, 32, 32, 1)) < 0.2).astype(np.uint8),
        }
        state, health = steps.train_step(state, sharding.global_batch(host, mesh))
    return jax.device_get(health), jax.device_get(state["params"]), jax.device_get(state["batch_stats"])


def _assert_same_run(run_a, run_b, keys=("train/loss", "train/grad_norm"), rtol=1e-5, atol=1e-6):
    (health_a, params_a, stats_a), (health_b, params_b, stats_b) = run_a, run_b
    for key in keys:
        np.testing.assert_allclose(health_a[key], health_b[key], rtol=rtol, atol=atol, err_msg=key)
    for a, b in zip(jax.tree.leaves((params_a, stats_a)), jax.tree.leaves((params_b, stats_b))):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_fsdp_shards_the_state_and_matches_data_parallel_and_one_device():
    config = _smoke(**{"mesh.fsdp_min_size": 0})
    one_device = _one_step(config, jax.devices()[:1], num_steps=3)
    data_parallel = _one_step(config, jax.devices(), num_steps=3)
    fsdp = _smoke(**{"mesh.fsdp_min_size": 0, "mesh.axes": ("data", "fsdp"), "mesh.shape": (4, 2)})
    data_fsdp = _one_step(fsdp, jax.devices(), num_steps=3)
    _assert_same_run(data_parallel, one_device)
    _assert_same_run(data_fsdp, one_device)

    mesh = sharding.make_mesh(fsdp.mesh)
    built = train.make_steps(fsdp, mesh)
    layout = built.state_shardings
    for leaf, spec in zip(jax.tree.leaves(built.abstract_state["params"]),
                          (s.spec for s in jax.tree.leaves(layout["params"]))):
        # Split wherever a dimension is even (the head's single bias is the one that is not).
        assert ("fsdp" in spec) == any(d % 2 == 0 for d in leaf.shape), (leaf.shape, spec)
    def count_split(tree):
        return sum("fsdp" in s.spec for s in jax.tree.leaves(tree))

    assert count_split(layout["params"]) > 0
    assert count_split(layout["opt_state"]) == 2 * count_split(layout["params"])  # Adam's mu and nu
    assert sharding.fsdp_spec((3, 3, 16, 32), 2, 0) == jax.sharding.PartitionSpec(None, None, None, "fsdp")
    assert sharding.fsdp_spec((3, 3, 5, 7), 2, 0) == jax.sharding.PartitionSpec()  # nothing divides
    assert sharding.fsdp_spec((64, 64), 2, 2**13) == jax.sharding.PartitionSpec()  # too small to split


def test_gradient_accumulation_matches_the_plain_step():
    # GroupNorm and BCE: per-sample quantities, so 4 micro-batches of 2 give exactly the full
    # batch's gradient. (BatchNorm and batch Dice see micro-batch statistics instead.)
    exact = {"model.norm": "group", "loss.name": "bce"}
    plain = _one_step(_smoke(**exact), jax.devices(), num_steps=2)
    accumulated = _one_step(_smoke(grad_accum_steps=4, **exact), jax.devices(), num_steps=2)
    _assert_same_run(accumulated, plain, keys=("train/loss", "train/bce", "train/grad_norm"))
    # With the default BatchNorm + BCE + Dice it is a close approximation, and it still learns.
    health_plain, _, _ = _one_step(_smoke(), jax.devices())
    health_accum, _, _ = _one_step(_smoke(grad_accum_steps=2), jax.devices())
    np.testing.assert_allclose(health_accum["train/loss"], health_plain["train/loss"], rtol=0.1)
    with pytest.raises(ValueError, match="grad_accum_steps=3"):
        train.train_and_evaluate(_smoke(grad_accum_steps=3), "/tmp/unused-binjax-accum")


@pytest.mark.parametrize("config_file", ["default", "lite"])
def test_remat_gives_the_same_step(config_file):
    module = __import__(f"configs.{config_file}", fromlist=["get_config"])
    plain = _one_step(module.get_config("smoke"), jax.devices(), num_steps=2)
    config = module.get_config("smoke")
    config.model.remat = True
    rematerialised = _one_step(config, jax.devices(), num_steps=2)
    # Recomputed activations round differently; Adam turns that float noise on parameters
    # whose gradient is ~0 into updates of up to ~1e-4 (learning rate 2e-3), hence atol.
    _assert_same_run(rematerialised, plain, rtol=1e-4, atol=1e-4)


def test_one_step_on_eight_devices_matches_one_device():
    assert jax.device_count() == 8, "conftest.py should fake 8 CPU devices"
    config = _smoke()
    health_8, params_8, stats_8 = _one_step(config, jax.devices())
    health_1, params_1, stats_1 = _one_step(config, jax.devices()[:1])
    for key in ("train/loss", "train/bce", "train/dice", "train/grad_norm"):
        np.testing.assert_allclose(health_8[key], health_1[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # BatchNorm statistics are global-batch statistics under sharding, so the states agree too.
    for a, b in zip(jax.tree.leaves(params_8), jax.tree.leaves(params_1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(stats_8), jax.tree.leaves(stats_1)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config_file", CONFIG_FILES)
def test_every_config_loads_and_its_smoke_variant_trains_and_evaluates(config_file, tmp_path, request, capfd):
    module = __import__(f"configs.{config_file[:-3]}", fromlist=["get_config"])
    module.get_config()  # the full config and the ablation-study scale load too
    study = module.get_config("study")
    assert (study.num_steps, study.data.patch_size) == (300, 64)
    config = module.get_config("smoke")
    if config.data.source == "tfds":  # the DIBCO recipes: their own years of the shared pages
        config.data.tfds.data_dir = str(request.getfixturevalue("dibco_fixed_data_dir"))
        config.data.tfds.prepare = False
    show_progress = config_file == CONFIG_FILES[0]   # one config with the bar, the others without
    scores = train.train_and_evaluate(config, tmp_path, progress=show_progress)
    assert ("train:" in capfd.readouterr().err) == show_progress
    assert scores["step"] == config.num_steps
    for key in ("val/f1", "val/iou", "val/dice", "val/precision", "val/recall", "val/loss", "val/otsu_f1"):
        assert np.isfinite(scores[key]), key
    assert checkpointing.find_checkpoint(tmp_path).exists()
    records = reporting.read_metrics(tmp_path)
    assert any("train/loss" in r for r in records) and any("val/f1" in r for r in records)
    assert list((tmp_path / "samples").glob("step_*.png"))
    assert list((tmp_path / "tensorboard").iterdir())


def test_unknown_config_variant_and_locked_typo_fail_clearly():
    with pytest.raises(ValueError, match="smoek"):
        default_config.get_config("smoek")
    result = subprocess.run(
        [sys.executable, "-m", "launch.train", "--config=configs/default.py:smoke", "--config.num_stpes=3", "--workdir=/tmp/unused"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "num_stpes" in result.stderr


def _launch(workdir, num_steps, log=None):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    return subprocess.Popen(
        [
            sys.executable, "-m", "launch.train", "--config=configs/default.py:smoke",
            f"--workdir={workdir}", f"--config.num_steps={num_steps}", "--config.log_every=1",
            "--config.checkpoint_every=5", "--config.eval_every=1000",
        ],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL,
    )


def _losses_by_step(workdir):
    by_step = {}
    for record in reporting.read_metrics(workdir):  # a resumed run re-logs steps after its checkpoint
        if "train/loss" in record:
            by_step[record["step"]] = record["train/loss"]
    return by_step


@pytest.mark.slow
def test_kill_minus_nine_then_resume_reproduces_the_uninterrupted_losses(tmp_path):
    num_steps = 60
    reference = _launch(tmp_path / "reference", num_steps)
    assert reference.wait(timeout=600) == 0

    interrupted = tmp_path / "interrupted"
    with open(tmp_path / "log.txt", "w") as log:
        run = _launch(interrupted, num_steps, log)
        deadline = time.time() + 600
        while time.time() < deadline and run.poll() is None:
            if any(int(s) >= 10 for s in os.listdir(interrupted / "checkpoints") if s.isdigit()) if (interrupted / "checkpoints").exists() else False:
                break
            time.sleep(0.05)
        assert run.poll() is None, "the run ended before it could be killed"
        run.send_signal(signal.SIGKILL)
        run.wait()
    killed_at = max(_losses_by_step(interrupted))
    assert killed_at < num_steps

    resumed = _launch(interrupted, num_steps)
    assert resumed.wait(timeout=600) == 0
    expected, got = _losses_by_step(tmp_path / "reference"), _losses_by_step(interrupted)
    assert sorted(got) == sorted(expected) == list(range(1, num_steps + 1))
    np.testing.assert_allclose([got[s] for s in sorted(got)], [expected[s] for s in sorted(expected)], rtol=1e-6)
    saved = json.loads((interrupted / "config.json").read_text())
    assert saved["num_steps"] == num_steps


def test_bf16_compute_keeps_float32_params_and_a_close_loss():
    health_32, params_32, _ = _one_step(_smoke(), jax.devices())
    health_16, params_16, _ = _one_step(_smoke(compute_dtype="bfloat16"), jax.devices())
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params_16))
    assert np.isfinite(health_16["train/loss"])
    np.testing.assert_allclose(health_16["train/loss"], health_32["train/loss"], rtol=2e-2)


@pytest.mark.parametrize("launcher, flag", [("train", "--config"), ("benchmark", "--config"), ("export", "--checkpoint")])
def test_launchers_answer_help(launcher, flag):
    result = subprocess.run(
        [sys.executable, "-m", f"launch.{launcher}", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert flag in result.stdout


def test_training_stops_loudly_on_a_non_finite_loss_and_keeps_no_bad_checkpoint(tmp_path):
    config = _smoke(**{"optimizer.learning_rate": 1e30, "optimizer.grad_clip_norm": 0.0, "num_steps": 6})
    with pytest.raises(FloatingPointError, match="non-finite"):
        train.train_and_evaluate(config, tmp_path)
    for step_dir in (tmp_path / "checkpoints").glob("[0-9]*"):
        restored = checkpointing.restore_state(step_dir, train.abstract_train_state(config))
        assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(restored["params"]))



def test_warm_start_takes_weights_not_optimizer_or_step(tmp_path):
    source = _smoke()
    train.train_and_evaluate(source, tmp_path / "pretrain")
    mesh = sharding.make_mesh(source.mesh)
    steps = train.make_steps(source, mesh)
    fresh = steps.init()
    started = train.warm_start(steps.init(), tmp_path / "pretrain", steps.state_shardings)
    trained, _, _ = checkpointing.Checkpointer(tmp_path / "pretrain", every_steps=1).restore(
        steps.restore_target(), best=True)
    for key in ("params", "batch_stats"):
        for a, b in zip(jax.tree.leaves(started[key]), jax.tree.leaves(trained[key])):
            np.testing.assert_array_equal(a, b)
    assert int(started["step"]) == 0
    for a, b in zip(jax.tree.leaves(started["opt_state"]), jax.tree.leaves(fresh["opt_state"])):
        np.testing.assert_array_equal(a, b)

    # Fine-tuning runs from there; another architecture is refused with the weight that differs.
    finetune = _smoke(init_from=str(tmp_path / "pretrain"), num_steps=2)
    assert train.train_and_evaluate(finetune, tmp_path / "finetune")["step"] == 2
    wider = _smoke(init_from=str(tmp_path / "pretrain"), **{"model.base_width": 8})
    with pytest.raises(ValueError, match=r"init_from=.*pretrain.*shaped"):
        train.train_and_evaluate(wider, tmp_path / "wider")
