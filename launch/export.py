"""Exports a trained model small (weights + config + model card) for release or sharing.

  python -m launch.export --checkpoint=workdirs/dibco_lite --out=binjax/weights/dibco_lite \
      --card=workdirs/dibco_lite/card.json
  python -m launch.export --checkpoint=workdirs/dibco_unet --out=/tmp/unet --dtype=bfloat16

The checkpoint is a workdir (its best checkpoint, else latest) or a step directory. --card
names a JSON file of model-card fields (data, protocol, scores) merged into the card.
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import json  # noqa: E402
import pathlib  # noqa: E402

from absl import flags  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Training workdir or step directory to export.")
_OUT = flags.DEFINE_string("out", None, "Export folder (weights.npz, config.json, card.json).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Stored weight precision.")
_CARD = flags.DEFINE_string("card", None, "JSON file of model-card fields to include.")
flags.mark_flags_as_required(["checkpoint", "out"])


def main(argv):
    del argv
    common.initialize_runtime()
    from binjax import checkpointing, export, pretrained

    # best/ newest first, then checkpoints/: a checkpoint that does not restore is skipped, named
    step_dir, (state, config) = checkpointing.restore_any(_CHECKPOINT.value, pretrained.load_train_state)
    card = json.loads(pathlib.Path(_CARD.value).read_text()) if _CARD.value else {}
    card.setdefault("trained_step", int(state["step"]))
    card.setdefault("source_checkpoint", str(step_dir))
    out = export.export_model(state, config, _OUT.value, card=card, dtype=_DTYPE.value)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"exported {config.model.name} (step {int(state['step'])}) to {out}: {size / 2**20:.2f} MiB")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
