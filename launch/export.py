r"""Exports a trained model small (weights + config + model card) and, if asked, portable.

Reads a training workdir (its best checkpoint, else its latest) or one step directory and writes
<out>/weights.npz, config.json and card.json; binarize and evaluate take the folder as
--checkpoint. --card names a JSON file of model-card fields merged into the card; the fields and
a template to copy are in docs/card_template.json (the README's "Export a model" explains them).
--formats=stablehlo also writes model.stablehlo, the tile predictor as a serialized jax.export
artifact (uint8 [b, tile, tile, C] -> float32 ink probabilities [b, tile, tile], any batch b,
lowered for --platforms), and run_stablehlo.py, a script that binarizes a page with it using only
jax, numpy and pillow. The released models and export folders are accepted as --checkpoint with
--formats=stablehlo.

  binjax-export --checkpoint=/tmp/binjax/smoke --out=/tmp/binjax/export_smoke
  binjax-export --checkpoint=workdirs/dibco_unet --out=workdirs/export_unet --dtype=bfloat16 \
      --card=my_card.json --formats=weights,stablehlo
  binjax-export --checkpoint=dibco_lite --out=workdirs/lite_portable --formats=stablehlo
  python workdirs/lite_portable/run_stablehlo.py scan.png scan_bw.png
"""

from launch import common  # noqa: F401  (first: sets XLA's CPU device count before JAX loads)

import json  # noqa: E402
import pathlib  # noqa: E402

from absl import flags  # noqa: E402

from binjax import released  # noqa: E402  (JAX-free: the shipped models' names)

FORMATS = ("weights", "stablehlo")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # what jax.export lowers for

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Training workdir or step directory to export; with --formats=stablehlo only, also a "
    f"released model's name ({released.names_for_help()}) or an export folder.")
_OUT = flags.DEFINE_string("out", None, "Export folder (weights.npz, config.json, card.json; model.stablehlo).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Stored weight precision.")
_CARD = flags.DEFINE_string(
    "card", None, "JSON file of model-card fields to include (template: docs/card_template.json). Optional: "
    "trained_step, source_checkpoint, weights_dtype and parameters are filled in either way.")
_FORMATS = flags.DEFINE_list(
    "formats", ["weights"], "What to write, comma-separated: weights (weights.npz + config.json + card.json, "
    "for binjax) and stablehlo (model.stablehlo + run_stablehlo.py: runs with jax alone).")
_TILE = flags.DEFINE_integer(
    "tile", 512, "stablehlo: the tile side in pixels the artifact takes (binarize's --tile; a multiple of the "
    "model's 2**depth avoids padding inside it).")
_PLATFORMS = flags.DEFINE_list(
    "platforms", ["cpu", "cuda"], "stablehlo: the platforms the artifact is lowered for (one file for all): "
    + ", ".join(PLATFORMS) + ".")
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


def _check_portable_flags(from_export: bool) -> None:
    from binjax.errors import ConfigError

    unknown = sorted(set(_FORMATS.value) - set(FORMATS))
    if unknown or not _FORMATS.value:
        raise ConfigError(f"--formats={','.join(_FORMATS.value)}: choose from {', '.join(FORMATS)} "
                          "(ONNX: see the README's \"Export a model\")")
    if not 1 <= _TILE.value <= 65536:
        raise ConfigError(f"--tile={_TILE.value}: the tile side must be an integer in [1, 65536] pixels")
    bad = sorted(set(_PLATFORMS.value) - set(PLATFORMS))
    if bad or not _PLATFORMS.value:
        raise ConfigError(f"--platforms={','.join(_PLATFORMS.value)}: choose from {', '.join(PLATFORMS)}")
    if from_export and "weights" in _FORMATS.value:
        raise ConfigError(f"--checkpoint={_CHECKPOINT.value} is already exported weights: use --formats=stablehlo, "
                          "or name the training workdir to export its weights again")


def main(argv):
    del argv
    card = _read_card(_CARD.value) if _CARD.value else {}  # before the slow part: fail fast
    from_export = _CHECKPOINT.value in released.released_models() or released.is_export(_CHECKPOINT.value)
    _check_portable_flags(from_export)
    common.initialize_runtime()
    from flax import nnx

    from binjax import checkpointing, export, page_context, pretrained, train
    from binjax.portable import stablehlo

    out = pathlib.Path(_OUT.value)
    if from_export:
        model, config, source = pretrained.load_model_and_source(_CHECKPOINT.value)
        card = {**export.read_card(source), **card, "source_checkpoint": str(source)}
    else:
        # best/ newest first, then checkpoints/: a checkpoint that does not restore is skipped, named
        step_dir, (state, config) = checkpointing.restore_any(_CHECKPOINT.value, pretrained.load_train_state)
        card.setdefault("trained_step", int(state["step"]))
        card.setdefault("source_checkpoint", str(step_dir))
        if "weights" in _FORMATS.value:
            export.export_model(state, config, out, card=card, dtype=_DTYPE.value)
            card = export.read_card(out)
            # the artifact predicts as the weights just written do (--dtype=bfloat16 rounds them)
            model, _ = export.load_exported(out)
        else:
            model = nnx.merge(train.model_graphdefs(config)[1], state["params"], state["batch_stats"])
    if "stablehlo" in _FORMATS.value:
        card["stablehlo"] = stablehlo.write_stablehlo(
            model, out, in_channels=page_context.model_channels(config.data), tile=_TILE.value,
            platforms=_PLATFORMS.value, contrast=str(config.data.get("contrast", "none")),
            context=str(config.data.get("context", "none")))
        (out / export.CARD).write_text(json.dumps(card, indent=2) + "\n")
    for path in sorted(out.iterdir()):
        print(f"  {path}: {path.stat().st_size / 2**20:.2f} MiB")
    print(f"exported {config.model.name} ({', '.join(_FORMATS.value)}) to {out}")


def run():
    common.run_app(main)


if __name__ == "__main__":
    run()
