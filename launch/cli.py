"""Running an absl app the way users expect: --help exits 0, expected errors are one line."""

import errno
import functools
import logging as std_logging
import sys
import traceback
from pathlib import Path
from typing import Callable

from absl import app, flags, logging


def _asked_for_help() -> bool:
    return any(a in ("--help", "-h", "--helpfull", "--helpshort", "-?") for a in sys.argv[1:])


def _fail(message: str, exit_code: int) -> None:
    """Prints one line (the traceback too at --verbosity=1 or more) and exits with exit_code. In
    a multi-process run every process stops with it (binjax.host_failures)."""
    from binjax import host_failures

    if logging.get_verbosity() >= 1:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    host_failures.stop_every_process(message, exit_code)
    sys.exit(exit_code)


def _expected_errors(main):
    """Wraps main so that the failures a user causes, or a full disk, end in one line, and so
    that in a multi-process run any failure of this process stops every process."""
    from binjax.errors import BinjaxError

    def one_line_errors(argv):
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

    def wrapped(argv):
        try:
            return one_line_errors(argv)
        except SystemExit as e:   # _fail's, already stopped every process; or main's own
            if e.code not in (None, 0):
                _stop_every_process(f"exited with status {e.code}", e.code if isinstance(e.code, int) else 1)
            raise
        except Exception as e:  # a bug, or a collective that failed because a peer process died
            first_line = (str(e).strip().splitlines() or [""])[0]
            _stop_every_process(f"{type(e).__name__}: {first_line}", 1, traceback_first=True)
            raise

    return wrapped


def _stop_every_process(message: str, exit_code: int, traceback_first: bool = False) -> None:
    """Stops every process of a multi-process run when this one ends with an error that _fail
    did not print; returns in a single-process run, where the error goes on as before."""
    from binjax import host_failures

    if not host_failures.is_multiprocess_run():
        return
    if traceback_first:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    host_failures.stop_every_process(message, exit_code)


_REPO = Path(__file__).resolve().parents[1]
# binjax's own code: its INFO records are the progress a person wants to read.
_OWN_CODE = tuple(f"{_REPO / package}{'/'}" for package in ("binjax", "launch", "configs"))


class QuietLibraries:
    """A logging filter: drops the INFO (and lower) records of libraries unless --verbosity >= 1.

    Orbax logs every checkpoint file it reads or writes (15 lines per load, 211 for one
    `sweep --report`), JAX its backend probes ("Unable to initialize backend 'tpu'") and grain
    its workers: noise to someone binarizing a page. binjax's own INFO records (progress,
    validation scores) and every library's warnings and errors still pass.
    """

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.levelno > std_logging.INFO or logging.get_verbosity() >= 1:
            return True
        return _is_own_code(record.pathname)


@functools.lru_cache(maxsize=512)
def _is_own_code(pathname: str) -> bool:
    return str(Path(pathname).resolve()).startswith(_OWN_CODE)


def install_quiet_logging() -> None:
    """Adds QuietLibraries to absl's handler (once): every launcher's logs are quiet by default."""
    handler = logging.get_absl_handler()
    if not any(isinstance(f, QuietLibraries) for f in handler.filters):
        handler.addFilter(QuietLibraries())


def _present_as_main(module_name: str) -> None:
    """Makes absl's --help describe the launcher `module_name` even when it is not __main__.

    absl prints __main__'s docstring and the key flags of the module named by sys.argv[0]. Under
    `python -m launch.x` that is the launcher; under a console script (binjax-binarize) __main__ is
    pip's generated stub, and --help printed a 4-line usage stub with no description or flags.
    """
    main = sys.modules.get("__main__")
    module = sys.modules.get(module_name)
    if module is None or main is None or main is module:
        return
    main.__doc__ = module.__doc__
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_app(main) -> None:
    """absl's app.run, except that --help / --helpfull exit with status 0 (absl uses 1), that
    --help describes the launcher under a console script too, that libraries' INFO logs are
    hidden unless --verbosity >= 1 (QuietLibraries), and that expected errors
    (binjax.errors.BinjaxError, usage errors, Ctrl-C, a full disk) print one line."""
    _present_as_main(main.__module__)
    install_quiet_logging()
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
    from binjax import binarizers  # noqa: PLC0415 -- no JAX until a model is used

    tile = flags.DEFINE_integer("tile", 512, "Model inference: tile size in pixels.")
    overlap = flags.DEFINE_float("overlap", binarizers.DEFAULT_OVERLAP,
                                 "Model inference: overlap between tiles, a fraction of the tile.")
    batch = flags.DEFINE_integer("inference_batch", 4, "Model inference: tiles per forward pass (as in launch.benchmark).")
    flags.DEFINE_alias("batch", "inference_batch")  # the old name, deprecated
    flags.FLAGS["batch"].help = "Deprecated: the old name of --inference_batch."
    flip_tta = flags.DEFINE_bool("flip_tta", False, "Model inference: average over flipped copies (slower).")
    threshold = flags.DEFINE_float("threshold", 0.5, "Model inference: ink probability threshold.")
    from binjax import text_scale  # noqa: PLC0415 -- numpy, scipy and PIL only: no JAX

    from binjax import contrast  # noqa: PLC0415 -- numpy only

    rescale = flags.DEFINE_string("rescale", "none", text_scale.RESCALE_HELP)
    contrast_mode = flags.DEFINE_string("contrast", "", contrast.CONTRAST_HELP)
    return lambda: dict(
        tile=tile.value, overlap=overlap.value, batch_size=batch.value, flip_tta=flip_tta.value, threshold=threshold.value,
        rescale=rescale.value, contrast=contrast_mode.value,
    )


class _CheckpointListParser(flags.ListParser):
    """A comma-separated list of checkpoints in which an existing path keeps its own commas.

    A sweep's or the protocol's run is a folder such as `arg=bickley,seed=0`: split at every comma,
    the protocol's own runs could not be named. Neighbouring pieces that together name an existing
    path stay one item (the longest such path wins); everything else splits as a plain list.
    """

    def parse(self, argument):
        pieces = super().parse(argument)
        if not isinstance(argument, str):
            return pieces
        items, start = [], 0
        while start < len(pieces):
            end = next((end for end in range(len(pieces), start + 1, -1)
                        if Path(",".join(pieces[start:end])).expanduser().exists()), start + 1)
            items.append(",".join(pieces[start:end]))
            start = end
        return items


def define_checkpoints_flag(default, help_text: str, name: str = "checkpoints"):
    """A --checkpoints list flag whose items may be paths with commas (sweep run folders)."""
    return flags.DEFINE(_CheckpointListParser(), name, default, help_text, serializer=flags.CsvListSerializer(","))
