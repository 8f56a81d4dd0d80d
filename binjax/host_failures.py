"""When one process of a multi-host run fails, every process stops, and says which one failed.

Left to themselves, the processes of a jax.distributed run wait for a failed peer: the failed
process, on its way out, waits in jax.distributed's shutdown barrier for the others (up to 5
minutes), while they wait for it in a collective or in one of Orbax's checkpoint barriers; the
survivors end only when a timeout ends them, with a wall of C++ stack traces. On a cluster that
is a job that burns its allocation and a user left to guess which host went wrong.

Instead, the failing process writes its one-line error to jax.distributed's key-value store (the
coordination service every process is already connected to: no new runtime) and exits with its
own status, skipping the shutdown barrier. Each process watches that key from a daemon thread; a
peer that reads it prints one line naming the failed process and its error, and exits with the
same status. Process 0, which hosts the store, leaves last. Its checkpoints are as safe as
after a kill -9: Orbax commits a step by renaming it when complete, and training resumes from
the last complete one.

A process killed outright (a host lost) cannot write the key: its peers' collectives fail at
once, which fails them in turn through the same path, or jax.distributed's heartbeat timeout
ends them.
"""

from __future__ import annotations

import atexit
import json
import logging as std_logging
import os
import sys
import threading
import time

FAILURE_KEY = "binjax/failed"
_EXITED_DIR = "binjax/exited/"
_POLL_S = 0.5         # how often a watcher looks for a failed peer, on a few hosts
_POLLS_PER_S = 200    # at most this many looks a second reach process 0's store, however many hosts
_EXIT_WAIT_S = 10.0   # how long process 0 waits for the others to be gone before it goes

_watcher: threading.Thread | None = None
_stop_watching = threading.Event()


def _client():
    """jax.distributed's client, or None when this is not a multi-process run. Never imports
    jax: an error before jax was ever imported (a bad flag of `binarize`) is not worth its start."""
    distributed = sys.modules.get("jax._src.distributed")   # the key-value store has no public API yet
    client = None if distributed is None else distributed.global_state.client   # None unless initialised
    if client is None or sys.modules["jax"].process_count() < 2:
        return None
    return client


def is_multiprocess_run() -> bool:
    return _client() is not None


def watch_peers() -> None:
    """Starts the watcher thread (multi-process runs only; once). A normal exit stops it first,
    so that no call into the key-value store is in flight while jax.distributed shuts down."""
    global _watcher
    client = _client()
    if client is None or _watcher is not None:
        return
    _watcher = threading.Thread(target=_watch, args=(client,), name="binjax-peer-watcher", daemon=True)
    _watcher.start()
    atexit.register(_stop)   # runs before jax's own atexit shutdown, registered at import


def _watch(client) -> None:
    import jax  # noqa: PLC0415

    me, interval = jax.process_index(), max(_POLL_S, jax.process_count() / _POLLS_PER_S)
    while not _stop_watching.wait(interval):
        try:
            value = client.key_value_try_get(FAILURE_KEY)
        except Exception as e:  # noqa: BLE001 -- NOT_FOUND: no failure yet; anything else: the service is gone
            if "NOT_FOUND" in str(e):
                continue
            return   # jax.distributed's own error polling takes over
        failure = json.loads(value)
        if failure["process"] != me:
            _exit(client, f"error: stopping: process {failure['process']} failed: {failure['message']}",
                  failure["code"])
        return


def _stop() -> None:
    _stop_watching.set()
    if _watcher is not None:
        _watcher.join(timeout=10.0)   # one look at the store: milliseconds


def stop_every_process(message: str, exit_code: int) -> None:
    """In a multi-process run, tells every process that this one failed with `message` (one
    line, already printed here) and exits with `exit_code` without waiting in jax.distributed's
    shutdown barrier. Returns, doing nothing, in a single-process run."""
    client = _client()
    if client is None:
        return
    import jax  # noqa: PLC0415

    _stop_watching.set()   # this process's own watcher must not exit first with a peer's status
    failure = json.dumps({"process": jax.process_index(), "code": int(exit_code), "message": message})
    try:
        client.key_value_set(FAILURE_KEY, failure)
    except Exception:  # noqa: BLE001 -- ALREADY_EXISTS: a peer failed first and every process is stopping
        pass
    _exit(client, None, exit_code)


def _exit(client, line: str | None, exit_code: int) -> None:
    """Prints `line`, flushes what was written and ends this process now, without atexit
    handlers: the one that matters, jax.distributed's shutdown, would wait for the failed peer.

    Process 0 hosts the coordination service, and a process that loses it is aborted by jax with
    pages of stack traces: so every other process says it is leaving, and process 0 leaves last
    (or after _EXIT_WAIT_S, for a peer that is hung or already dead)."""
    import jax  # noqa: PLC0415

    if line:
        print(line, file=sys.stderr)
    std_logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    me, others = jax.process_index(), jax.process_count() - 1
    try:
        if me != 0:
            client.key_value_set(f"{_EXITED_DIR}{me}", "1")
        else:
            deadline = time.monotonic() + _EXIT_WAIT_S
            while len(client.key_value_dir_get(_EXITED_DIR)) < others and time.monotonic() < deadline:
                time.sleep(0.05)
    except Exception:  # noqa: BLE001 -- the service is gone already: nobody is left to wait for
        pass
    os._exit(exit_code)
