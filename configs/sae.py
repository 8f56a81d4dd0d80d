"""Selectional auto-encoder (Calvo-Zaragoza & Gallego 2019): encoder-decoder without skips.

  python -m launch.train --config=configs/sae.py --workdir=/tmp/binjax/sae
  python -m launch.train --config=configs/sae.py:smoke --workdir=/tmp/binjax/sae_smoke
"""

from binjax import defaults


def get_config(arg: str | None = None):
    config = defaults.base_config()
    config.model.update(dict(name="sae", depth=5, width=64, kernel_size=5, norm="batch", dropout=0.0))
    return defaults.apply_variant(config, arg, smoke_model=dict(depth=2, width=8, kernel_size=3))
