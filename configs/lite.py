"""Lightweight U-Net of inverted-residual (MobileNetV2-style) blocks, under 0.3M parameters.

Built for fast full-page inference on CPUs; same synthetic-document task as default.py.

  python -m launch.train --config=configs/lite.py --workdir=/tmp/binjax/lite
  python -m launch.train --config=configs/lite.py:smoke --workdir=/tmp/binjax/lite_smoke
"""

from binjax import defaults


def get_config(arg: str | None = None):
    config = defaults.base_config()
    config.model.update(
        dict(
            name="lite",
            widths=(16, 24, 32, 64),
            blocks=(1, 2, 2, 3),
            expansion=4,
            decoder_expansion=2,
            head_width=8,
            head="full",  # 'space_to_depth': refine and predict at 1/2 resolution (faster)
            norm="batch",
            dropout=0.0,
            remat=False,  # True: recompute block activations in the backward pass (less memory)
        )
    )
    return defaults.apply_variant(
        config, arg, smoke_model=dict(widths=(4, 8), blocks=(1, 1), head_width=4)
    )
