"""Ctrl-C during training stops between steps, not inside a checkpoint save.

Python raises KeyboardInterrupt wherever the main thread happens to be; inside Orbax's wait
for a background save, that left the save half-done and Orbax logging tracebacks. Inside
`stop_between_steps()` the first Ctrl-C (SIGINT) only asks to stop: the loop calls the
returned check after each step and its saves, which raises KeyboardInterrupt there. A second
Ctrl-C raises at once, for a user who will not wait.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

from absl import logging


@contextlib.contextmanager
def stop_between_steps() -> Iterator[Callable[[], None]]:
    """Yields check(): raises KeyboardInterrupt if Ctrl-C was pressed since entering."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None  # signal handlers can only be set from the main thread
        return
    requested = []

    def on_sigint(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(True)
        logging.warning("Ctrl-C: stopping after this step and its checkpoint save (Ctrl-C again to stop at once)")

    def check() -> None:
        if requested:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
