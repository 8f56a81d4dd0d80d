"""U-Net on synthetic degraded documents: the main job of the README quickstart.

Trains in 3-4.5 minutes on an idle 2-core x86 CPU with binjax's CPU kernels (3 min on 2026-12-01's
AVX-512 + AMX machine, 4 min 15 s on 2026-12-04's AMD EPYC; more when other jobs share the cores) and beats Otsu on its own validation patches (README, Results).

  python -m launch.train --config=configs/default.py --workdir=/tmp/binjax/default
  python -m launch.train --config=configs/default.py:smoke --workdir=/tmp/binjax/smoke
"""

from binjax import defaults


def get_config(arg: str | None = None):
    config = defaults.base_config()
    config.model.update(
        dict(
            name="unet",
            depth=4,
            base_width=16,
            widths=None,  # None: base_width * 2**level; or a tuple, one width per level
            norm="batch",
            upsample="transpose",
            dropout=0.0,
            remat=False,  # True: recompute block activations in the backward pass (less memory)
            skips=True,
        )
    )
    return defaults.apply_variant(config, arg, smoke_model=dict(depth=2, base_width=4))
