"""Running an absl app the way users expect."""

import sys
from typing import Callable

from absl import app, flags


def run_app(main) -> None:
    """absl's app.run, except that --help / --helpfull exit with status 0 (absl uses 1)."""
    try:
        app.run(main)
    except SystemExit as exit_:
        asked_for_help = any(a in ("--help", "-h", "--helpfull", "--helpshort", "-?") for a in sys.argv[1:])
        if asked_for_help and exit_.code == 1:
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
