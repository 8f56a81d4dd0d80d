"""Foreground oversampling ablation of the default U-Net: data.fg_patch_fraction 0 / 0.33 / 0.66.

fg_patch_fraction is the probability that a training patch is centred on an ink pixel (0: uniform
crops only; 0.33, the default, is nnU-Net's). Validation patches are drawn with the default
fraction in every run (data.val_fg_patch_fraction), so all arms score the same patches and
differ only in how they were trained. Two seeds each.

  python -m launch.sweep --config=configs/ablations/foreground.py --workdir=/tmp/binjax/ablate_fg
  python -m launch.sweep --config=configs/ablations/foreground.py:smoke --workdir=/tmp/binjax/ablate_fg_smoke
  python -m launch.sweep --config=configs/ablations/foreground.py --workdir=/tmp/binjax/ablate_fg --report
"""

from binjax import sweep
from configs import default

FRACTIONS = (0.0, 0.33, 0.66)
SEEDS = (0, 1)


def get_config(arg: str | None = None):
    """The default U-Net config ('smoke': its tiny variant), validating as the default does."""
    config = default.get_config(arg)
    config.data.val_fg_patch_fraction = config.data.fg_patch_fraction
    return config


def get_sweep(arg: str | None = None):
    del arg  # the same grid for the full and smoke configs
    return sweep.with_seeds(sweep.grid({"data.fg_patch_fraction": FRACTIONS}), SEEDS)
