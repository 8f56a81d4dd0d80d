"""One training run per workdir: the lock, its refusal message and stale-lock takeover."""

import json
import os
import socket
import subprocess
import sys

import pytest

from binjax import workdir_lock
from binjax.errors import WorkdirLockedError


def test_a_second_holder_is_refused_with_the_first_ones_host_and_pid(tmp_path):
    with workdir_lock.WorkdirLock(tmp_path):
        # another open file description: flock treats it as another process
        with pytest.raises(WorkdirLockedError, match=rf"in use by another training run \(host {socket.gethostname()}, "
                                                    rf"pid {os.getpid()}, started 20"):
            workdir_lock.WorkdirLock(tmp_path).acquire()
    with workdir_lock.WorkdirLock(tmp_path):  # released: free again
        pass
    assert workdir_lock.lock_path(tmp_path).read_text() == ""  # a clean exit leaves no holder


def test_the_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path, caplog):
    # A process that died holding the lock (kill -9): the kernel dropped its flock, the file
    # still names it.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = dict(host=socket.gethostname(), pid=int(dead.stdout), started="2026-01-01T00:00:00+00:00")
    workdir_lock.lock_path(tmp_path).write_text(json.dumps(holder))
    with caplog.at_level("WARNING"), workdir_lock.WorkdirLock(tmp_path):
        assert json.loads(workdir_lock.lock_path(tmp_path).read_text())["pid"] == os.getpid()
    assert f"pid {holder['pid']}" in caplog.text and "taking over" in caplog.text


def test_each_process_of_a_multi_host_run_locks_its_own_file(tmp_path):
    assert workdir_lock.lock_path(tmp_path, 0).name == ".lock"
    assert workdir_lock.lock_path(tmp_path, 3).name == ".lock.3"
    with workdir_lock.WorkdirLock(tmp_path, 0), workdir_lock.WorkdirLock(tmp_path, 1):
        with pytest.raises(WorkdirLockedError):
            workdir_lock.WorkdirLock(tmp_path, 1).acquire()
