"""Loss ablation of the default U-Net: BCE, soft Dice, BCE + Dice and focal loss, two seeds each.

  python -m launch.sweep --config=configs/ablations/loss.py --workdir=/tmp/binjax/ablate_loss
  python -m launch.sweep --config=configs/ablations/loss.py:smoke --workdir=/tmp/binjax/ablate_loss_smoke
  python -m launch.sweep --config=configs/ablations/loss.py --workdir=/tmp/binjax/ablate_loss --report
"""

from binjax import sweep
from configs import default

LOSSES = ("bce", "dice", "bce_dice", "focal")
SEEDS = (0, 1)


def get_config(arg: str | None = None):
    """The default U-Net config ('smoke': its tiny variant); the sweep changes config.loss.name."""
    return default.get_config(arg)


def get_sweep(arg: str | None = None):
    del arg  # the same grid for the full and smoke configs
    return sweep.with_seeds(sweep.grid({"loss.name": LOSSES}), SEEDS)
