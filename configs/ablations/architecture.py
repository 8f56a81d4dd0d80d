"""Architecture ablation: U-Net, U-Net without skip connections, lite U-Net and SAE, two seeds each.

Models take different hyper-parameters, so each run picks its model through the config argument
(the sweep's reserved 'arg' override) rather than by overriding fields:
`get_config('<model>[,smoke|study]')`, <model> one of MODELS (default 'unet'). Each model keeps the
hyper-parameters of its own config file (configs/default.py, lite.py, sae.py).

  python -m launch.sweep --config=configs/ablations/architecture.py --workdir=/tmp/binjax/ablate_arch
  python -m launch.sweep --config=configs/ablations/architecture.py:smoke --workdir=/tmp/binjax/ablate_arch_smoke
  python -m launch.train --config=configs/ablations/architecture.py:lite,smoke --workdir=/tmp/binjax/lite
"""

from binjax import defaults, sweep
from configs import default, lite, sae

MODELS = ("unet", "unet_noskip", "lite", "sae")
SEEDS = (0, 1)


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    names = [p for p in parts if p not in defaults.VARIANTS]
    if len(names) > 1 or (names and names[0] not in MODELS):
        raise ValueError(f"config argument {arg!r}: expected '<model>[,smoke|study]' with <model> one of {MODELS}")
    name = names[0] if names else "unet"
    variant = next((p for p in parts if p in defaults.VARIANTS), None)
    if name == "lite":
        return lite.get_config(variant)
    if name == "sae":
        return sae.get_config(variant)
    config = default.get_config(variant)
    config.model.skips = name != "unet_noskip"
    return config


def get_sweep(arg: str | None = None):
    del arg  # 'smoke' is appended to each run's model argument by launch/sweep.py
    return sweep.with_seeds([{sweep.ARG: name} for name in MODELS], SEEDS)
