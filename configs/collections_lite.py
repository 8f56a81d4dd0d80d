"""The default light model: the protocol's recipe, trained on every collection in ../shared/data.

The recipe is the one the cross-collection protocol measured fold by fold
(configs/cross_collection.py: configs/lite.py's 182K-parameter model, 2,000 steps of 8 patches of
256^2, BCE + Dice) on contrast-stretched pages (data.contrast='stretch', configs/ablations/
contrast.py), which lifted every collection it was measured on, the worst one most. It trains on
all DIBCO years 2009-2016 and the five extra collections except H-DIBCO 2014 (10 pages), which
validates and picks the checkpoint as it does in the folds. Its cross-collection figures are the
protocol's fold models of the same recipe (README, docs/ablations/dibco/contrast/): a model that
saw every collection has no unseen one left here.

  python -m launch.train --config=configs/collections_lite.py --workdir=workdirs/collections_lite
  python -m launch.train --config=configs/collections_lite.py:smoke --workdir=/tmp/collections_lite_smoke
"""

from binjax import sweep
from configs import cross_collection
from configs.ablations import contrast


def get_config(arg: str | None = None):
    if arg not in (None, "", "smoke", "study"):
        raise ValueError(f"configs/collections_lite.py: argument {arg!r}; expected nothing, 'smoke' or 'study'")
    config = cross_collection.train_on_everything(cross_collection.get_config(arg))
    # The very overrides of the arm the protocol measured (configs/ablations/contrast.py), as the sweep applies them.
    return sweep.apply_overrides(config, contrast.STRETCH)
