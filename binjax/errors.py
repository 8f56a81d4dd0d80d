"""The errors binjax expects: a bad setting, unusable input, a fault outside binjax.

Raise one of these, with a message that names the file or setting and what is wrong, wherever a
user (not a bug) is the cause. The launchers (`launch.cli.run_app`) print it as one line and exit
non-zero; `--verbosity=1` shows the traceback. Anything else keeps its traceback: it is a bug.
"""

from __future__ import annotations


class BinjaxError(Exception):
    """An expected failure; its message is the whole story for the user."""

    exit_code = 1


class ConfigError(BinjaxError, ValueError):
    """A config value or command-line flag out of range; the message names the key and the range."""

    exit_code = 2


class DataError(BinjaxError, ValueError):
    """An input image, mask, folder or dataset that cannot be used as it is."""


class CheckpointError(BinjaxError):
    """No checkpoint that restores, or one that does not fit the run resuming it."""


class WorkdirLockedError(BinjaxError):
    """Another live process holds the training workdir."""


class TrainingDivergedError(BinjaxError, FloatingPointError):
    """A loss or gradient norm became NaN or infinite (learning rate too high, bad data)."""
