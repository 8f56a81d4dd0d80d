"""Running an absl app the way users expect: --help exits 0, expected errors are one line."""

import errno
import sys
from typing import Callable

from absl import app, flags, logging


def _asked_for_help() -> bool:
    return any(a in ("--help", "-h", "--helpfull", "--helpshort", "-?") for a in sys.argv[1:])


def _fail(message: str, exit_code: int) -> None:
    """Prints one line (the traceback too at --verbosity=1 or more) and exits with exit_code."""
    if logging.get_verbosity() >= 1:
        raise  # noqa: PLE0704  (re-raises the exception being handled, with its traceback)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(exit_code)


def _expected_errors(main):
    """Wraps main so that the failures a user causes, or a full disk, end in one line."""
    from binjax.errors import BinjaxError

    def wrapped(argv):
        try:
            return main(argv)
        except app.UsageError as e:  # absl would print the whole --help after it
            _fail(f"{e} (see --help)", 2)
        except BinjaxError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted (Ctrl-C)", 130)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # EFBIG: a file size limit
                raise
            _fail(f"no space left on the device writing {e.filename or 'a file'}: {e.strerror}", 1)

    return wrapped


def run_app(main) -> None:
    """absl's app.run, except that --help / --helpfull exit with status 0 (absl uses 1), and that
    expected errors (binjax.errors.BinjaxError, usage errors, Ctrl-C, a full disk) print one line."""
    try:
        app.run(_expected_errors(main))
    except SystemExit as exit_:
        if _asked_for_help() and exit_.code == 1:
            raise SystemExit(0) from None
        raise


def define_inference_flags() -> Callable[[], dict]:
    """Defines the model-inference flags shared by evaluate and binarize.

    Returns a function giving their values as keyword arguments of binarizers.make_binarizers.
    """
    tile = flags.DEFINE_integer("tile", 512, "Model inference: tile size in pixels.")
    overlap = flags.DEFINE_float("overlap", 0.5, "Model inference: overlap between tiles, a fraction of the tile.")
    batch = flags.DEFINE_integer("batch", 4, "Model inference: tiles per forward pass.")
    flip_tta = flags.DEFINE_bool("flip_tta", False, "Model inference: average over flipped copies (slower).")
    threshold = flags.DEFINE_float("threshold", 0.5, "Model inference: ink probability threshold.")
    return lambda: dict(
        tile=tile.value, overlap=overlap.value, batch_size=batch.value, flip_tta=flip_tta.value, threshold=threshold.value
    )
