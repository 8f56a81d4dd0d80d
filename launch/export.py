r"""Exports a trained model small (weights + config + model card) for release or sharing.

Reads a training workdir (its best checkpoint, else its latest) or one step directory and writes
<out>/weights.npz, config.json and card.json; binarize and evaluate take the folder as
--checkpoint. --card names a JSON file of model-card fields merged into the card; the fields and
a template to copy are in docs/card_template.json (the README's "Export a model" explains them).

  binjax-export --checkpoint=/tmp/binjax/smoke --out=/tmp/binjax/export_smoke
  binjax-export --checkpoint=workdirs/dibco_lite --out=workdirs/export_lite --card=my_card.json
  binjax-export --checkpoint=workdirs/dibco_unet --out=workdirs/export_unet --dtype=bfloat16 \
      --card=my_card.json
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import json  # noqa: E402
import pathlib  # noqa: E402

from absl import flags  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Training workdir or step directory to export.")
_OUT = flags.DEFINE_string("out", None, "Export folder (weights.npz, config.json, card.json).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Stored weight precision.")
_CARD = flags.DEFINE_string(
    "card", None, "JSON file of model-card fields to include (template: docs/card_template.json). Optional: "
    "trained_step, source_checkpoint, weights_dtype and parameters are filled in either way.")
flags.mark_flags_as_required(["checkpoint", "out"])


def _read_card(path: str) -> dict:
    from binjax.errors import ConfigError

    try:
        card = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--card={path}: no such file; copy docs/card_template.json and fill it in, "
                          "or leave --card out") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"--card={path}: not a readable JSON file ({e})") from None
    if not isinstance(card, dict):
        raise ConfigError(f"--card={path}: a model card is a JSON object of fields (see docs/card_template.json)")
    return card


def main(argv):
    del argv
    card = _read_card(_CARD.value) if _CARD.value else {}  # before the slow part: fail fast
    common.initialize_runtime()
    from binjax import checkpointing, export, pretrained

    # best/ newest first, then checkpoints/: a checkpoint that does not restore is skipped, named
    step_dir, (state, config) = checkpointing.restore_any(_CHECKPOINT.value, pretrained.load_train_state)
    card.setdefault("trained_step", int(state["step"]))
    card.setdefault("source_checkpoint", str(step_dir))
    out = export.export_model(state, config, _OUT.value, card=card, dtype=_DTYPE.value)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"exported {config.model.name} (step {int(state['step'])}) to {out}: {size / 2**20:.2f} MiB")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
