r"""Trains a binarization model from a config file; rerun the same command to resume.

The config (configs/<name>.py[:variant]) says the model, data, loss, optimizer and schedule; any
field can be overridden with --config.x=y (a mistyped field fails). The workdir receives
checkpoints/ (latest), best/ (best validation F-measure), metrics.jsonl, TensorBoard events,
samples/ and config.json; progress and validation scores are printed as training goes, and
--verbosity=1 adds the config, the libraries' INFO logs and tracebacks of errors.

  binjax-train --config=configs/default.py:smoke --workdir=/tmp/binjax/smoke   # seconds, tiny
  binjax-train --config=configs/default.py --workdir=workdirs/default
  python -m launch.train --config=configs/lite.py --workdir=workdirs/lite \
      --config.batch_size=16 --config.data.patch_size=256
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

    logging.debug("config:\n%s", _CONFIG.value)  # also in <workdir>/config.json
    if _CONFIG.value.get("compute_dtype") == "bfloat16" and jax.default_backend() == "cpu":
        logging.warning("compute_dtype=bfloat16 on a CPU: XLA:CPU trains about 2.3x slower in bfloat16 than in "
                        "float32 (it pays on GPUs and TPUs); --config.compute_dtype=float32 is faster here")
    scores = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    logging.debug("final: %s", json.dumps(scores, indent=1))
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
