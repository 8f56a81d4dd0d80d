"""Running an absl app the way users expect."""

import sys

from absl import app


def run_app(main) -> None:
    """absl's app.run, except that --help / --helpfull exit with status 0 (absl uses 1)."""
    try:
        app.run(main)
    except SystemExit as exit_:
        asked_for_help = any(a in ("--help", "-h", "--helpfull", "--helpshort", "-?") for a in sys.argv[1:])
        if asked_for_help and exit_.code == 1:
            raise SystemExit(0) from None
        raise
