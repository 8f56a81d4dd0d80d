"""U-Net (configs/default.py's, 1.94M parameters) trained on DIBCO with configs/dibco_recipe.py.

Train years 2009-2012, best checkpoint by F-measure on 2014; DIBCO 2013 and H-DIBCO 2016 stay
unseen for the test (launch/evaluate.py). Resumable: rerun the same command after a stop.

  python -m launch.train --config=configs/dibco_unet.py --workdir=workdirs/dibco_unet
  python -m launch.evaluate --checkpoint=workdirs/dibco_unet --method=otsu,sauvola \\
      --data=../shared/data/dibco/2013 --out=workdirs/dibco_unet/eval2013
"""

from binjax import defaults
from configs import default, dibco_recipe


def get_config(arg: str | None = None):
    config = dibco_recipe.apply(default.get_config())
    config = defaults.apply_variant(config, arg, smoke_model=dict(depth=2, base_width=4))
    return dibco_recipe.smoke(config) if arg == "smoke" else config
