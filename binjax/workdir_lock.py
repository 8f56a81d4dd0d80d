"""One training run per workdir: an exclusive lock held for the whole run.

Without it a second run started in the same workdir resumed from the first run's checkpoint,
overwrote its checkpoints and best/ and interleaved metrics.jsonl.

The lock is `fcntl.flock` on a file in the workdir. The kernel drops a flock when its holder
dies, even by kill -9, so a crashed run never blocks the next one. The file also holds the
holder's host, pid and start time: the refusal names who holds the workdir, and a run that
takes over the lock of a dead process says so.

Multi-host runs: every process locks its own file (`.lock` for process 0, `.lock.<i>` for
process i). A second run's processes each meet the first run's lock and each refuse, so none
of them waits forever on a collective with a peer that stopped; with a workdir per host (no
shared filesystem) every host still checks its own. Where the filesystem has no flock (some
NFS setups answer ENOLCK) the file's host and pid decide: a live process on this host, or any
process on another host, holds it.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket

from absl import logging

from binjax import temp_files
from binjax.errors import WorkdirLockedError


def lock_path(workdir: str | pathlib.Path, process_index: int = 0) -> pathlib.Path:
    name = ".lock" if process_index == 0 else f".lock.{process_index}"
    return pathlib.Path(workdir) / name


def _describe(holder: dict) -> str:
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started {holder.get('started', '?')}"


class WorkdirLock:
    """Context manager: holds `workdir`'s lock for this process, or raises WorkdirLockedError."""

    def __init__(self, workdir: str | pathlib.Path, process_index: int = 0):
        self.path = lock_path(workdir, process_index)
        self._fd: int | None = None

    def _read_holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            flock_works = True
        except BlockingIOError:
            os.close(fd)
            holder = self._read_holder()
            raise WorkdirLockedError(
                f"workdir {self.path.parent} is in use by another training run ({_describe(holder)}; lock file "
                f"{self.path}): wait for it to end, stop it, or train in another --workdir") from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            flock_works = False
        holder = self._read_holder()
        if holder:
            same_host = holder.get("host") == socket.gethostname()
            if not flock_works and (not same_host or temp_files.process_alive(int(holder.get("pid", 0)))):
                os.close(fd)
                raise WorkdirLockedError(
                    f"workdir {self.path.parent} is in use by another training run ({_describe(holder)}; lock file "
                    f"{self.path}, this filesystem has no flock): if that process is gone, delete the lock file")
            # A clean exit empties the file, so contents mean the holder died holding it.
            logging.warning("taking over the lock of a training run that ended without releasing it (%s)",
                            _describe(holder))
        record = dict(host=socket.gethostname(), pid=os.getpid(),
                      started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # empty: the next run knows this one ended cleanly
        except OSError:
            pass  # a full disk cannot stop the unlock below
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
