"""Scale-range ablation of the default light model: training patches rescaled over the recipe's
range (log-uniform 0.67-1.5, configs/dibco_recipe.py) against a wide one (0.5-2), two seeds each.

A patch is a region of P*s pixels resized to P (s > 1 zooms out, strokes get thinner), s
log-uniform in data.augment.scale_range: the wide arm sees DIBCO's 5 px strokes drawn from 2.5 to
10 px. Score each run on pages resized x0.5, x1, x2 with launch.scale_test (issue #13, item 4):

  python -m launch.sweep --config=configs/ablations/scale_range.py --workdir=/tmp/binjax/ablate_scale
  python -m launch.sweep --config=configs/ablations/scale_range.py:smoke --workdir=/tmp/binjax/ablate_scale_smoke
  python -m launch.scale_test --checkpoints="/tmp/binjax/ablate_scale/data.augment.scale_range=(0.5,2.0),seed=0" \
      --out=/tmp/binjax/ablate_scale_test
"""

from binjax import sweep
from configs import dibco_lite

SCALE_RANGES = ((0.67, 1.5), (0.5, 2.0))
SEEDS = (0, 1)


def get_config(arg: str | None = None):
    """The released light model's recipe ('smoke': its tiny variant); the sweep changes data.augment.scale_range."""
    return dibco_lite.get_config(arg)


def get_sweep(arg: str | None = None):
    del arg  # the same grid for the full and smoke configs
    return sweep.with_seeds(sweep.grid({"data.augment.scale_range": SCALE_RANGES}), SEEDS)
