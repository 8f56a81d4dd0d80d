"""Augmentation ablation of the default U-Net: data.augment on (the default) vs off, two seeds each.

Off means plain crops: no scaling, flips, rotations or photometric changes (data.augment.enabled
is the pipeline's master switch). Validation patches are never augmented, so both arms score the
same patches.

  python -m launch.sweep --config=configs/ablations/augmentation.py --workdir=/tmp/binjax/ablate_augment
  python -m launch.sweep --config=configs/ablations/augmentation.py:smoke --workdir=/tmp/binjax/ablate_augment_smoke
  python -m launch.sweep --config=configs/ablations/augmentation.py --workdir=/tmp/binjax/ablate_augment --report
"""

from binjax import sweep
from configs import default

ENABLED = (True, False)
SEEDS = (0, 1)


def get_config(arg: str | None = None):
    """The default U-Net config ('smoke': its tiny variant); the sweep changes data.augment.enabled."""
    return default.get_config(arg)


def get_sweep(arg: str | None = None):
    del arg  # the same grid for the full and smoke configs
    return sweep.with_seeds(sweep.grid({"data.augment.enabled": ENABLED}), SEEDS)
