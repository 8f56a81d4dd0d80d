"""Multi-process training on CPU: 2 JAX processes x 2 devices train exactly like 1 process x 4.

Runs the smoke config through launch/local_multiprocess.sh (jax.distributed over 127.0.0.1,
gloo collectives between the processes), kills the whole run with SIGKILL once its first
checkpoint is on disk, starts it again, and compares it with one uninterrupted process on the
same number of devices: the loss and health figures of every step and the validation scores
(metrics.jsonl, written by process 0), the final parameters, BatchNorm statistics and optimizer
state (saved by Orbax from both processes), and the data iterator state in the checkpoint (one
state, process 0's, resumes both processes). Only process 0 reports.

The coordinator listens on 127.0.0.1 only (the script sets JAX_COORDINATOR_BIND_ADDRESS); gloo
listens on the address the host name resolves to.
"""

import fcntl
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from binjax import checkpointing, pretrained, reporting, workdir_lock
from binjax.errors import WorkdirLockedError

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "launch" / "local_multiprocess.sh"
TIMEOUT_S = 300  # per run: a deadlock fails the test instead of hanging it
# A failed process and its peers end well within this, jax.distributed's shutdown barrier (which
# they would otherwise wait in) takes 300 s.
FAILURE_TIMEOUT_S = 150
TRAIN = [sys.executable, "-m", "launch.train", "--config=configs/default.py:smoke", "--config.log_every=1"]
NOT_COMPARED = ("step", "time", "train/images_per_s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Runs:
    """Started commands, each in its own process group, all killed when the test ends."""

    def __init__(self, log_dir: pathlib.Path):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list, *, devices: int, **env) -> subprocess.Popen:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                   JAX_PLATFORMS="cpu", LOG_DIR=str(self.log_dir / name), **env)
        with open(self.log_dir / f"{name}.log", "w") as log:
            proc = subprocess.Popen([str(a) for a in args], cwd=REPO, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        proc.name = name
        self.procs.append(proc)
        return proc

    def log(self, name: str, process: int = 0) -> str:
        path = self.log_dir / f"{name}.log" if process == 0 else self.log_dir / name / f"process_{process}.log"
        return path.read_text() if path.exists() else ""

    def tails(self, name: str) -> str:
        return "\n".join(f"--- {name} process {i}:\n{self.log(name, i)[-3000:]}" for i in (0, 1))

    def wait_ok(self, proc: subprocess.Popen) -> None:
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{proc.name} still running after {TIMEOUT_S} s (deadlock?)\n{self.tails(proc.name)}")
        assert code == 0, f"{proc.name} exited with {code}\n{self.tails(proc.name)}"

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the script and every training process under it
        except ProcessLookupError:
            pass
        proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            self.kill(proc)


def _two_processes(runs: _Runs, name: str, workdir: pathlib.Path) -> subprocess.Popen:
    return runs.start(name, [SCRIPT, 2, *TRAIN, f"--workdir={workdir}"], devices=2, PORT=str(_free_port()))


def _records_by_step(workdir: pathlib.Path) -> dict[int, dict]:
    by_step: dict[int, dict] = {}
    for record in reporting.read_metrics(workdir):  # a resumed run logs again the steps after its checkpoint
        by_step.setdefault(record["step"], {}).update(record)
    return by_step


@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_after_sigkill(tmp_path):
    one, two = tmp_path / "one_process", tmp_path / "two_processes"
    first_checkpoint = two / "checkpoints" / "2"  # the smoke config saves every 2 of its 4 steps
    with _Runs(tmp_path) as runs:
        reference = runs.start("reference", [*TRAIN, f"--workdir={one}"], devices=4)
        interrupted = _two_processes(runs, "interrupted", two)
        deadline = time.monotonic() + TIMEOUT_S
        while not first_checkpoint.is_dir():  # Orbax renames the step directory when it is complete
            assert interrupted.poll() is None, f"ended before its first checkpoint\n{runs.tails('interrupted')}"
            assert time.monotonic() < deadline, f"no checkpoint after {TIMEOUT_S} s\n{runs.tails('interrupted')}"
            time.sleep(0.05)
        assert interrupted.poll() is None, "the run ended before it could be killed"
        runs.kill(interrupted)
        resumed = _two_processes(runs, "resumed", two)
        runs.wait_ok(resumed)
        runs.wait_ok(reference)

    num_steps = checkpointing.load_config(one / "checkpoints" / "4").num_steps
    resumed_log = runs.log("resumed")
    assert "resumed from step" in resumed_log
    resumed_from = int(resumed_log.split("resumed from step ")[1].split()[0])
    assert 2 <= resumed_from < num_steps, "the kill should land between the first and the last checkpoint"
    # Only process 0 reports (logs, summary, metrics); process 1 ran the same steps silently.
    assert "Done. Workdir" in resumed_log and "Done. Workdir" not in runs.log("resumed", 1)
    assert "validation: F1" not in runs.log("resumed", 1)

    expected, got = _records_by_step(one), _records_by_step(two)
    assert sorted(got) == sorted(expected) == list(range(1, num_steps + 1))
    assert "val/f1" in got[num_steps]
    for step, record in expected.items():
        keys = set(record) - set(NOT_COMPARED)
        assert set(got[step]) - set(NOT_COMPARED) == keys, step
        for key in sorted(keys):
            np.testing.assert_allclose(got[step][key], record[key], rtol=1e-5, atol=1e-7, err_msg=f"{key} at step {step}")

    for manager in (checkpointing.LATEST_DIR, checkpointing.BEST_DIR):
        step_dirs = [workdir / manager / str(num_steps) for workdir in (one, two)]
        (state_1, _), (state_2, _) = (pretrained.load_train_state(d) for d in step_dirs)
        leaves_1, leaves_2 = jax.tree_util.tree_leaves_with_path(state_1), jax.tree.leaves(state_2)
        assert len(leaves_1) == len(leaves_2) and int(state_2["step"]) == num_steps
        for (path, a), b in zip(leaves_1, leaves_2):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=f"{manager}{jax.tree_util.keystr(path)}")
        assert checkpointing.load_data_state(step_dirs[1]) == checkpointing.load_data_state(step_dirs[0])


@pytest.mark.slow
def test_a_process_that_fails_stops_every_process_with_its_line(tmp_path):
    """A leftover run on 'host 1' holds that host's workdir lock: process 1 refuses to start,
    and process 0, already waiting for it in the first collective, stops too, within seconds
    (not jax.distributed's 5-minute shutdown timeout), naming process 1 and its error, with its
    exit status. The processes are started as a cluster would, not through
    local_multiprocess.sh, whose own trap would hide the difference."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    port = _free_port()
    with open(workdir_lock.lock_path(workdir, 1), "w") as leftover, _Runs(tmp_path) as runs:
        fcntl.flock(leftover, fcntl.LOCK_EX | fcntl.LOCK_NB)
        procs = [runs.start(f"process_{i}", [*TRAIN, f"--workdir={workdir}", "--distributed",
                                             f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                                             f"--process_id={i}"],
                            devices=2, JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}")
                 for i in (0, 1)]
        deadline = time.monotonic() + FAILURE_TIMEOUT_S   # for both processes together
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logs = "\n".join(f"--- {p.name}:\n{runs.log(p.name)[-3000:]}" for p in procs)
                pytest.fail(f"{proc.name} still running {FAILURE_TIMEOUT_S} s after the start\n{logs}")
    logs = [runs.log(p.name) for p in procs]
    assert [p.returncode for p in procs] == [WorkdirLockedError.exit_code] * 2, logs
    assert "error: workdir" in logs[1] and "in use by another training run" in logs[1]
    assert "error: stopping: process 1 failed: workdir" in logs[0], logs[0][-3000:]
    assert "Traceback" not in logs[0] + logs[1]
