"""Trains a binarization model from a config file; restart the same command to resume.

  python -m launch.train --config=configs/default.py --workdir=/tmp/binjax/default
  python -m launch.train --config=configs/lite.py:smoke --workdir=/tmp/binjax/smoke \
      --config.num_steps=10
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import json  # noqa: E402

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/<name>.py[:variant]); override fields with --config.x=y.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir even though the config differs from the one its checkpoint was trained with "
    "(learning rate, batch size, seed, patch size, loss, data, ...); the changes are listed in the log. "
    "Changing num_steps (to extend a run), the *_every cadences, keep_checkpoints, num_sample_images, "
    "init_from, data.read_threads/prefetch or the mesh needs no flag. A model whose parameter shapes "
    "change (name, widths, depth, input channels, optimizer) is refused whatever this says: train it "
    "in a new --workdir.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    common.initialize_runtime()
    import jax  # noqa: PLC0415

    from binjax import train  # after jax.distributed is up

    logging.info("config:\n%s", _CONFIG.value)
    scores = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    logging.info("final: %s", json.dumps(scores, indent=1))
    if jax.process_index() != 0:
        return  # process 0 reports for the run
    print(f"\nDone. Workdir {_WORKDIR.value}:")
    print(f"  checkpoints   {_WORKDIR.value}/checkpoints (latest), {_WORKDIR.value}/best (best val F1)")
    print(f"  metrics       {_WORKDIR.value}/metrics.jsonl, TensorBoard: {_WORKDIR.value}/tensorboard")
    print(f"  sample grids  {_WORKDIR.value}/samples/ (input | prediction | ground truth)")
    print(
        f"  validation    F1 {scores.get('val/f1', float('nan')):.4f} vs Otsu "
        f"{scores.get('val/otsu_f1', float('nan')):.4f}, IoU {scores.get('val/iou', float('nan')):.4f}"
    )


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
