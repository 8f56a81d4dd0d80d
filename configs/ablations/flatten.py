"""Pages divided by their own paper (flattened), in the cross-collection protocol (issue #13).

The default model's recipe trains on contrast-stretched pages (configs/ablations/contrast.py).
A stretch is one map for the whole page, so a page lit unevenly keeps its gradient: on
scikit-image's data.page() the model drops the letters of the dark left margin that Sauvola
keeps. binjax/contrast.py's `flatten` divides each channel by an estimate of the page's paper (a
grey closing 81 px wide, smoothed), then stretches. At inference alone, on the stretch arm's fold
models, it keeps page()'s margin letters and lifts Bickley (both seeds) but loses on MSI 2015,
where it amplifies the paper texture under dark stains into false ink
(docs/ablations/dibco/flatten/). As with the stretch, a model trained on such pages may read them
better; this sweep trains with it:

  data.contrast='stretch'   the default model's recipe, the contrast sweep's run names (reuses its runs)
  data.contrast='flatten'   every training and validation page flattened, and so every page the
                            fold model is scored on

  python -m launch.protocol --config=configs/ablations/flatten.py --workdir=$HOME/binjax/protocol
  python -m launch.protocol --config=configs/ablations/flatten.py --workdir=$HOME/binjax/protocol \\
      --only='arg=(bickley|msi2015),data.contrast=flatten,seed=0'
  python -m launch.protocol --config=configs/ablations/flatten.py:smoke --workdir=/tmp/flatten_smoke

The argument is configs/cross_collection.py's ('<fold>[,unet][,smoke|study]').
"""

from __future__ import annotations

from binjax import sweep
from configs import cross_collection
from configs.ablations import contrast

SEEDS = cross_collection.SEEDS
FLATTEN = {"data.contrast": "flatten"}
get_config = cross_collection.get_config


def get_sweep(arg: str | None = None):
    del arg  # the same arms for the full and smoke configs
    arms = [contrast.STRETCH, FLATTEN]
    return sweep.with_seeds([{sweep.ARG: fold, **arm} for arm in arms for fold in cross_collection.FOLDS], SEEDS)
