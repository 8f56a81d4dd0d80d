"""U-Net size ablation: base_width 8 / 16 / 32 x depth 3 / 4, two seeds each (12 runs).

The default U-Net (configs/default.py: depth 4, base_width 16) with its width and number of
downsamplings changed; widths double per level (model.widths stays None). The report's params
column gives each model's size. The smoke variant keeps the grid's shape on tiny models
(base_width 4 / 8 x depth 1 / 2) so it trains and compiles in seconds.

  python -m launch.sweep --config=configs/ablations/width_depth.py --workdir=/tmp/binjax/ablate_width_depth
  python -m launch.sweep --config=configs/ablations/width_depth.py:smoke --workdir=/tmp/binjax/ablate_width_depth_smoke
  python -m launch.sweep --config=configs/ablations/width_depth.py --workdir=/tmp/binjax/ablate_width_depth --report
"""

from binjax import sweep
from configs import default

WIDTHS = (8, 16, 32)
DEPTHS = (3, 4)
SMOKE_WIDTHS = (4, 8)
SMOKE_DEPTHS = (1, 2)
SEEDS = (0, 1)


def get_config(arg: str | None = None):
    """The default U-Net config ('smoke': its tiny variant); the sweep changes its width and depth."""
    return default.get_config(arg)


def get_sweep(arg: str | None = None):
    widths, depths = (SMOKE_WIDTHS, SMOKE_DEPTHS) if arg == "smoke" else (WIDTHS, DEPTHS)
    return sweep.with_seeds(sweep.grid({"model.base_width": widths, "model.depth": depths}), SEEDS)
