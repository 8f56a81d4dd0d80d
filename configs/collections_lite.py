"""The default light model: the protocol's recipe, trained on every collection in ../shared/data.

The recipe is the one the cross-collection protocol measured fold by fold
(configs/cross_collection.py: configs/lite.py's 182K-parameter model, 2,000 steps of 8 patches of
256^2, BCE + Dice) on contrast-stretched pages (data.contrast='stretch', configs/ablations/
contrast.py), half of them synthetic pages with the generator's clutter (scan borders,
bleed-through, gutters, ruled lines, frames, stains, stamps; configs/ablations/synthetic_mix.py at
synthetic_fraction 0.5), which lifted the worst collection with both seeds. It trains on all DIBCO
years 2009-2016 and the five extra collections except H-DIBCO 2014 (10 pages), which validates
and picks the checkpoint as it does in the folds. Its cross-collection figures are the protocol's
fold models of the same recipe (README, docs/ablations/dibco/synthetic_mix/): a model that saw
every collection has no unseen one left here.

  python -m launch.train --config=configs/collections_lite.py --workdir=workdirs/collections_lite
  python -m launch.train --config=configs/collections_lite.py:smoke --workdir=/tmp/collections_lite_smoke
"""

from binjax import sweep
from configs import cross_collection
from configs.ablations import contrast, synthetic_mix


def real_pages_config(arg: str | None = None):
    """The recipe on real pages only: the protocol's stretch arm on every collection (the default
    model's recipe until the synthetic pages; collections_fast was trained on it)."""
    if arg not in (None, "", "smoke", "study"):
        raise ValueError(f"configs/collections_lite.py: argument {arg!r}; expected nothing, 'smoke' or 'study'")
    config = cross_collection.train_on_everything(cross_collection.get_config(arg))
    # The very overrides of the arm the protocol measured (configs/ablations/contrast.py), as the sweep applies them.
    return sweep.apply_overrides(config, contrast.STRETCH)


def get_config(arg: str | None = None):
    # Half of the pages synthetic, as synthetic_mix.py's measured arm (its default fraction).
    return synthetic_mix.add_synthetic_pages(real_pages_config(arg), synthetic_mix.FRACTIONS[-1])
