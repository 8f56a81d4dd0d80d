"""The fast light model, trained on every collection in ../shared/data: the 1-second A4 page.

configs/collections_lite.py's recipe on real pages only (the protocol's recipe on contrast-
stretched pages, all 11 collections but H-DIBCO 2014, which picks the checkpoint; the default
model's recipe before it added synthetic pages, and what these weights were trained on) with the fast
light model of configs/ablations/lite_speed.py (refinement and head at 1/2 resolution, narrower
blocks below it: 106,692 parameters against 182,107). On the protocol its fold models score 0.5-2.7
FM below the default recipe's on the two collections that decide the worst one (Bickley and MSI
2015, seeds 0 and 1), so it does not replace the default model; it is the model for archives
that need the page a second (README: with --overlap=0.125, 0.86 s per A4 page on 2 idle cores).

  python -m launch.train --config=configs/collections_fast.py --workdir=workdirs/collections_fast
  python -m launch.train --config=configs/collections_fast.py:smoke --workdir=/tmp/collections_fast_smoke
"""

from binjax import sweep
from configs import collections_lite
from configs.ablations import lite_speed


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke", "study"):
        raise ValueError(f"configs/collections_fast.py: argument {arg!r}; expected nothing, 'smoke' or 'study'")
    # The very overrides of the arm the protocol measured (configs/ablations/lite_speed.py's FAST).
    return sweep.apply_overrides(collections_lite.real_pages_config(arg), lite_speed.FAST)
