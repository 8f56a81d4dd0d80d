"""Contrast-stretched pages, in the cross-collection protocol (issue #13).

The protocol's seed-0 MSI 2015 fold model marked almost nothing as ink on 7 of its 29 pages (FM 0-6),
whose ink is only 6-16 grey levels below the paper (one spectral band of a multispectral
capture). binjax/contrast.py stretches a page's 1st-99th percentile grey levels to the full
range. At inference alone (`--contrast=stretch`, no retraining) it is measured with the
protocol's own fold models (docs/ablations/dibco/contrast/). This sweep trains with it:

  {}                        the protocol's recipe, the protocol's run names (reuses its runs)
  data.contrast='stretch'   every training and validation page stretched, and so every page the
                            fold model is scored on (a model trained so gets stretched pages)

  python -m launch.protocol --config=configs/ablations/contrast.py --workdir=$HOME/binjax/protocol
  python -m launch.protocol --config=configs/ablations/contrast.py --workdir=$HOME/binjax/protocol --only='contrast'
  python -m launch.protocol --config=configs/ablations/contrast.py:smoke --workdir=/tmp/contrast_smoke

The argument is configs/cross_collection.py's ('<fold>[,unet][,smoke|study]').
"""

from __future__ import annotations

from binjax import sweep
from configs import cross_collection

SEEDS = cross_collection.SEEDS
STRETCH = {"data.contrast": "stretch"}
get_config = cross_collection.get_config


def get_sweep(arg: str | None = None):
    del arg  # the same arms for the full and smoke configs
    return sweep.with_seeds([{sweep.ARG: fold, **arm} for arm in ({}, STRETCH) for fold in cross_collection.FOLDS],
                            SEEDS)
