"""Temporary files of writers that may be killed: named so that a later run can clean them up.

Files are written under a hidden name and renamed into place (``atomic_write``), so a file that
exists under its name is complete. A process killed with SIGKILL cannot remove its temporary
file, so the name carries the writer's pid: a later run removes those whose process is gone
(remove_stale_temp_files), and nothing reads them as inputs.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
from collections.abc import Iterator

PathLike = str | os.PathLike

_TEMP_MARK = ".binjax-tmp-"
_TEMP_NAME = re.compile(r"^\..+\.binjax-tmp-(\d+)$")


def temp_path(path: PathLike) -> pathlib.Path:
    """``<folder>/.<name>.binjax-tmp-<pid>``: where path is written before its rename."""
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}{_TEMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[pathlib.Path]:
    """``with atomic_write(path) as tmp:`` write tmp; it is renamed onto path when the block ends.

    An exception in the block (or in the rename), Ctrl-C included, removes tmp and leaves path as
    it was: readers see the old file or the whole new one, never a part.
    """
    path = pathlib.Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # never written, or not ours to remove: the error matters more
            tmp.unlink()
        raise


def is_temp_file(path: PathLike) -> bool:
    return _TEMP_NAME.match(pathlib.Path(path).name) is not None


def remove_stale_temp_files(folder: PathLike) -> list[pathlib.Path]:
    """Removes the temporary files in folder left by binjax processes that no longer run."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False) or process_alive(int(match.group(1))):
            continue
        try:
            os.unlink(entry.path)
            removed.append(pathlib.Path(entry.path))
        except OSError:
            pass  # gone already, or not ours to remove: leave it
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (this process included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True
