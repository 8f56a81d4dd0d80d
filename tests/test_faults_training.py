"""Never lose a run: training driven into faults end to end (issue #14, training side).

Most cases run `python -m launch.train` in a subprocess with the tiny configs/sae.py:smoke
model, as a user would, and check the exit status, that the last line on stderr is one
`error: ...` line, and what is left on disk. A JAX compilation cache shared by the module keeps
each run to seconds after the first. Checkpoint corruption is checked in-process on copies of
one trained workdir.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from binjax import checkpointing, pretrained, reporting, train
from binjax.errors import CheckpointError

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = "--config=configs/sae.py:smoke"


@pytest.fixture(scope="module")
def env():
    # The session's XLA compilation cache comes with os.environ (conftest.py).
    return dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        BINJAX_HUGE_PAGES="0",
    )


def _train_cmd(workdir, *flags, file_size_limit=None):
    cmd = ["-m", "launch.train", SMOKE, f"--workdir={workdir}", *flags]
    if file_size_limit is None:
        return [sys.executable, *cmd]
    # Writes past the limit fail with EFBIG, as on a full disk with ENOSPC; SIGXFSZ ignored, else
    # the kernel kills the writer. Set in a small launcher that execs the run (not preexec_fn,
    # which runs Python in a forked copy of this multithreaded process).
    limit = (f"import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit})); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    return [sys.executable, "-c", limit, *cmd]


def _train(env, workdir, *flags, file_size_limit=None, timeout=300):
    return subprocess.run(_train_cmd(workdir, *flags, file_size_limit=file_size_limit), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _last_line(stderr: str) -> str:
    return [line for line in stderr.splitlines() if line.strip()][-1]


def _assert_no_unfinished_saves(workdir):
    assert not list(workdir.glob("*/*.orbax-checkpoint-tmp*")), list(workdir.glob("*/*"))


def _restores(step_dir) -> int:
    state, _ = pretrained.load_train_state(step_dir)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state["params"]))
    return int(state["step"])


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    """A finished 4-step run: checkpoints/2, checkpoints/4 and best/4."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    result = _train(env, workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture
def run_copy(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    return workdir


# ----------------------------------------------------------------------------- one run per workdir


def test_a_second_run_in_a_live_runs_workdir_is_refused_naming_it(env, run_copy):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from binjax import workdir_lock; "
         f"workdir_lock.WorkdirLock({str(run_copy)!r}).acquire(); print('locked', flush=True); time.sleep(600)"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in (run_copy / "checkpoints").iterdir())
        metrics = (run_copy / "metrics.jsonl").read_text()
        result = _train(env, run_copy, "--config.num_steps=8")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert _last_line(result.stderr).startswith(f"error: workdir {run_copy} is in use by another training run")
    assert f"pid {holder.pid}," in _last_line(result.stderr)
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == before
    assert (run_copy / "metrics.jsonl").read_text() == metrics


# ----------------------------------------------------------------------------- config on resume


def test_an_architecture_change_on_resume_is_one_line(env, run_copy):
    result = _train(env, run_copy, "--config.model.width=16")
    assert result.returncode == 2, result.stderr[-3000:]
    assert _last_line(result.stderr).startswith(
        f"error: the config changes the model's shapes saved in {run_copy} (model.width: 8 -> 16)")
    assert "Traceback" not in result.stderr
    assert json.loads((run_copy / "config.json").read_text())["model"]["width"] == 8  # not overwritten


def test_other_changes_on_resume_need_allow_config_change(env, run_copy):
    refused = _train(env, run_copy, "--config.optimizer.learning_rate=0.01", "--config.num_steps=5")
    assert refused.returncode == 2
    assert "optimizer.learning_rate: 0.002 -> 0.01" in _last_line(refused.stderr)
    assert "--allow_config_change" in _last_line(refused.stderr)
    allowed = _train(env, run_copy, "--config.optimizer.learning_rate=0.01", "--config.num_steps=5",
                     "--allow_config_change")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "resuming with a changed config: optimizer.learning_rate: 0.002 -> 0.01" in allowed.stderr
    assert max(r["step"] for r in reporting.read_metrics(run_copy)) == 5


def test_a_bad_config_value_fails_before_any_work(env, tmp_path):
    result = _train(env, tmp_path / "run", "--config.eval_every=0")
    assert result.returncode == 2
    assert _last_line(result.stderr) == "error: config.eval_every=0: must be an integer >= 1"
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- broken checkpoints


def _truncate_array_file(step_dir):
    data = max((p for p in (step_dir / "state").rglob("d/*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])


def _delete_manifest(step_dir):
    (step_dir / "state" / "manifest.ocdbt").unlink()


def _cut_config_json(step_dir):
    path = step_dir / "config" / "metadata"
    path.write_text(path.read_text()[:100])


CORRUPTIONS = {"truncated array file": _truncate_array_file, "missing manifest": _delete_manifest,
               "cut JSON": _cut_config_json}


def _abstract_state(workdir):
    config = checkpointing.load_config(workdir / "checkpoints" / "2")
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                        train.abstract_train_state(config))


@pytest.mark.parametrize("corruption", [*CORRUPTIONS, "empty step folder"])
def test_resume_falls_back_to_the_newest_checkpoint_that_restores(run_copy, corruption, caplog):
    if corruption == "empty step folder":
        broken = run_copy / "checkpoints" / "6"
        broken.mkdir()
    else:
        broken = run_copy / "checkpoints" / "4"
        CORRUPTIONS[corruption](broken)
    checkpointer = checkpointing.Checkpointer(run_copy, every_steps=2)
    with caplog.at_level("WARNING"):
        state, data_state, _ = checkpointer.restore_newest(_abstract_state(run_copy))
    expected = 4 if corruption == "empty step folder" else 2
    assert int(state["step"]) == expected and data_state
    assert f"skipping checkpoint {broken}" in caplog.text
    # Moved aside, not deleted, so the resumed run can write that step again.
    assert not broken.exists() and list((run_copy / "skipped_checkpoints").glob(f"*/{broken.name}"))
    assert checkpointer.latest_step() == expected
    checkpointer.finish()


def test_when_nothing_restores_one_line_lists_what_was_tried(run_copy):
    for step in ("2", "4"):
        _delete_manifest(run_copy / "checkpoints" / step)
    checkpointer = checkpointing.Checkpointer(run_copy, every_steps=2)
    with pytest.raises(CheckpointError, match=r"no checkpoint restores; tried 2: .*checkpoints/4: .*checkpoints/2: ") as e:
        checkpointer.restore_newest(_abstract_state(run_copy))
    assert "\n" not in str(e.value)
    checkpointer.finish()


def test_inference_falls_back_from_a_broken_best_to_the_latest(run_copy, caplog):
    _truncate_array_file(run_copy / "best" / "4")
    with caplog.at_level("WARNING"):
        _, config, source = pretrained.load_model_and_source(run_copy)
    assert source == run_copy / "checkpoints" / "4" and config.model.name == "sae"
    assert f"skipping checkpoint {run_copy / 'best' / '4'}" in caplog.text


@pytest.mark.slow
def test_training_resumes_past_a_truncated_checkpoint(env, run_copy):
    _truncate_array_file(run_copy / "checkpoints" / "4")
    result = _train(env, run_copy, "--config.num_steps=6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipping checkpoint {run_copy / 'checkpoints' / '4'}" in result.stderr
    assert "resumed from step 2" in result.stderr
    assert _restores(run_copy / "checkpoints" / "6") == 6


# ----------------------------------------------------------------------------- stopping mid-run


def test_a_nan_stop_finishes_pending_saves_and_names_the_last_complete_checkpoint(env, tmp_path):
    workdir = tmp_path / "run"
    result = _train(env, workdir, "--config.optimizer.learning_rate=1e9", "--config.num_steps=20",
                    "--config.checkpoint_every=1", "--config.log_every=1")
    assert result.returncode == 1, result.stderr[-3000:]
    last = _last_line(result.stderr)
    assert last.startswith("error: non-finite") and "last complete checkpoint: step" in last, last
    _assert_no_unfinished_saves(workdir)
    step = int(last.split("last complete checkpoint: step ")[1].split()[0])
    assert _restores(workdir / "checkpoints" / str(step)) == step


@pytest.mark.slow
def test_ctrl_c_stops_after_the_step_and_its_save(env, tmp_path):
    workdir = tmp_path / "run"
    run = subprocess.Popen(_train_cmd(workdir, "--config.num_steps=100000", "--config.checkpoint_every=1",
                                      "--config.eval_every=100000"),
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not checkpointing.step_dirs(workdir / "checkpoints"):
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    stderr = run.communicate(timeout=120)[1]
    assert run.returncode == 130, stderr[-3000:]
    assert _last_line(stderr) == "error: interrupted (Ctrl-C)"
    assert "Traceback" not in stderr
    _assert_no_unfinished_saves(workdir)
    step = int(stderr.split("last complete checkpoint: step ")[1].split()[0])
    assert _restores(workdir / "checkpoints" / str(step)) == step
    assert not (workdir / ".lock").read_text()  # released


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(env, run_copy):
    result = _train(env, run_copy, "--config.num_steps=40", "--config.checkpoint_every=1",
                    file_size_limit=3000)
    assert result.returncode == 1, result.stderr[-3000:]
    # One error line. (Tensorstore's callbacks for the failed save's other writes may still print
    # "RuntimeError: Event loop is closed" around it, even mid-line, from their own threads:
    # Orbax closed that save's event loop.)
    errors = [line[line.index("error: "):] for line in result.stderr.splitlines() if "error: " in line]
    assert len(errors) == 1 and "File too large" in errors[0], [line for line in result.stderr.splitlines()
                                                                 if "error" in line.lower()][-20:]
    assert "last complete checkpoint: step 4" in errors[0], errors
    # The background save's threads were finished before exit, not left to interpreter shutdown.
    assert "sys.meta_path is None" not in result.stderr, result.stderr[-3000:]
    assert "Exception ignored" not in result.stderr, result.stderr[-3000:]
    _assert_no_unfinished_saves(run_copy)
    assert _restores(run_copy / "checkpoints" / "4") == 4
