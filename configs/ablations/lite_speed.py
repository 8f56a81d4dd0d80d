"""A faster default light model, in the cross-collection protocol (issues #17 and #13).

An A4 page at 300 dpi must binarize in about a second on 2 CPU cores; the released LiteUNet
takes ~3.5 s at the default overlap. Profiled per 512^2 tile (docs/benchmarks/lite_profile.md),
its time goes to the full-resolution head (upsampled features + image, refined at full
resolution) and to the 1/4-resolution stage (two blocks expanded 4x). The fast arm:

  model.head='space_to_depth'   the refinement and head at 1/2 resolution on the image's 2x2
                                pixel blocks, 4 logits per block (binjax/models/lite.py)
  model.expansion=2             encoder blocks below 1/2 resolution expand 2x, not 4x
  model.decoder_expansion=1     decoder blocks below 1/2 resolution do not expand

2.1x fewer CPU-seconds per page in the profile's run (106,692 parameters against 182,107).
Expanding 3x instead of 2x cost 40 % more time (72- and 96-channel tensors miss the 16-channel
multiples the CPU paths are fastest at); one block at 1/4 resolution instead of two saved 7 %.
It replaces the default only if the protocol says it may: never below Otsu on any collection, worst collection no lower than the
recipe's, within 2 FM of the U-Net on the mean (issue #13's targets), two seeds.

Both arms train on contrast-stretched pages (data.contrast='stretch', configs/ablations/contrast.py),
the recipe the protocol favours: the fast model would replace a model trained so. The first arm
is contrast.py's second arm with its run names, so pointing --workdir at a protocol where that
arm has run reuses its trained and scored runs and trains only the fast arm:

  python -m launch.protocol --config=configs/ablations/lite_speed.py --workdir=$HOME/binjax/protocol
  python -m launch.protocol --config=configs/ablations/lite_speed.py:smoke --workdir=/tmp/lite_speed_smoke
  python -m launch.benchmark --config=configs/lite.py --what=inference --page=3508x2480 --overlap=0.25 \\
      --config.model.head=space_to_depth --config.model.expansion=2 --config.model.decoder_expansion=1

The argument is configs/cross_collection.py's ('<fold>[,smoke|study]').
"""

from __future__ import annotations

from binjax import sweep
from configs import cross_collection
from configs.ablations import contrast

SEEDS = cross_collection.SEEDS
FAST = {"model.head": "space_to_depth", "model.expansion": 2, "model.decoder_expansion": 1}


def get_config(arg: str | None = None):
    """The protocol's light-model config for one fold; the sweep's fast arm overrides its model."""
    if "unet" in (arg or "").split(","):
        raise ValueError("configs/ablations/lite_speed.py compares light models: 'unet' has no fast arm")
    return cross_collection.get_config(arg)


def get_sweep(arg: str | None = None):
    del arg  # the same arms for the full and smoke configs
    arms = [contrast.STRETCH, {**contrast.STRETCH, **FAST}]
    return sweep.with_seeds([{sweep.ARG: fold, **arm} for arm in arms for fold in cross_collection.FOLDS], SEEDS)
