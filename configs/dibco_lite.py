"""Lightweight U-Net (configs/lite.py's, 182K parameters) trained on DIBCO with configs/dibco_recipe.py.

The model `binjax-binarize` uses by default once released. Same protocol as dibco_unet.py.

  python -m launch.train --config=configs/dibco_lite.py --workdir=workdirs/dibco_lite
"""

from binjax import defaults
from configs import dibco_recipe, lite


def get_config(arg: str | None = None):
    config = dibco_recipe.apply(lite.get_config())
    config = defaults.apply_variant(config, arg, smoke_model=dict(widths=(4, 8), blocks=(1, 1), head_width=4))
    return dibco_recipe.smoke(config) if arg == "smoke" else config
