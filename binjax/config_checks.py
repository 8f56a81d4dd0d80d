"""Every training config value checked before any work starts, and configs compared on resume.

`check_config` runs first in `train.train_and_evaluate`: a value out of range fails in one line
naming the key and the allowed range, not as a ZeroDivisionError after start-up (`eval_every=0`),
a KeyError at the second validation (`best_metric` typo) or a run that "succeeds" doing nothing
(`num_steps=-5`).

`resume_changes` compares the config a checkpoint was trained with and the one resuming it:
the caller refuses architecture changes outright and other changes unless asked to accept them.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import ml_collections

from binjax import contrast, defaults, losses, models, optim, page_context
from binjax.data import clutter, pipeline, sources
from binjax.errors import ConfigError

COMPUTE_DTYPES = ("float32", "bfloat16")
# Validation figures a best checkpoint can be chosen by (binjax.metrics.segmentation_scores and
# the validation loss; the 'otsu' figures are the fixed baseline, useless for choosing).
BEST_METRICS = tuple(f"val/{k}" for k in ("f1", "dice", "iou", "precision", "recall", "accuracy", "loss"))

# Keys a resumed run may change without --allow_config_change: they change how often things
# happen or how long the run is, not what it learns from step to step. num_steps is here so a
# finished run can be extended (the cosine schedule then decays over the new length).
RESUME_SAFE_KEYS = (
    "num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
    "num_sample_images", "init_from", "data.read_threads", "data.prefetch", "mesh.shape",
    "mesh.axes", "mesh.fsdp_min_size",
)

# The keys that can change the train state's shapes: the model, its input, the optimizer's state.
SHAPING_KEYS = ("model.", "data.channels", "data.context", "optimizer.name", "optimizer.grad_clip_norm")


def _get(config, key: str) -> Any:
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def _integer(config, key: str, minimum: int, maximum: int | None = None) -> int:
    value = _get(config, key)
    bad = isinstance(value, bool) or not isinstance(value, int) or value < minimum
    if bad or (maximum is not None and value > maximum):
        allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ConfigError(f"config.{key}={value!r}: must be {allowed}")
    return value


def _number(config, key: str, low: float, high: float = math.inf, *, low_open: bool = False) -> float:
    value = _get(config, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        upper = "inf)" if high == math.inf else f"{high}]"
        raise ConfigError(f"config.{key}={value!r}: must be a finite number in {bracket}{low}, {upper}")
    return float(value)


def _choice(config, key: str, allowed) -> Any:
    value = _get(config, key)
    if value not in allowed:
        raise ConfigError(f"config.{key}={value!r}: must be one of {list(allowed)}")
    return value


def _as_config_error(key: str, check, *args) -> None:
    """Runs a library's own check, reporting its ValueError as a ConfigError on `key`."""
    try:
        check(*args)
    except ValueError as e:
        raise ConfigError(f"config.{key}: {e}") from None


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError, naming the key and its allowed range, for the first bad value."""
    _integer(config, "seed", 0, 2**31 - 1)
    _as_config_error("model", models.check_model_config, config.model.name,
                     {k: v for k, v in config.model.items() if k != "name"})
    _choice(config, "compute_dtype", COMPUTE_DTYPES)
    num_steps = _integer(config, "num_steps", 1)
    batch_size = _integer(config, "batch_size", 1)
    accum = _integer(config, "grad_accum_steps", 1, batch_size)
    if batch_size % accum:
        raise ConfigError(f"config.batch_size={batch_size} must be a multiple of config.grad_accum_steps={accum}")
    for key in ("log_every", "eval_every", "checkpoint_every"):
        _integer(config, key, 1)
    _integer(config, "keep_checkpoints", 1)
    _integer(config, "num_sample_images", 0)
    if config.best_metric:
        _choice(config, "best_metric", BEST_METRICS + ("",))
    if config.init_from and not pathlib.Path(config.init_from).exists():
        raise ConfigError(f"config.init_from={config.init_from!r}: no such workdir or checkpoint")
    _check_data(config.data)
    _check_optimizer(config.optimizer, num_steps)
    _check_loss(config.loss)


def _check_data(data) -> None:
    c = ml_collections.ConfigDict({"data": data})  # so messages say config.data.<key>
    _choice(c, "data.source", sources.SOURCES)
    _choice(c, "data.channels", (1, 3))
    _choice(c, "data.contrast", contrast.MODES)
    _choice(c, "data.context", page_context.MODES)
    _integer(c, "data.patch_size", 8)
    _integer(c, "data.val_patches", 1)
    _number(c, "data.fg_patch_fraction", 0.0, 1.0)
    if data.val_fg_patch_fraction is not None:
        _number(c, "data.val_fg_patch_fraction", 0.0, 1.0)
    _integer(c, "data.read_threads", 0)
    _integer(c, "data.prefetch", 0)
    _as_config_error("data.augment", pipeline.Augment.from_config, data.augment)
    source = data.source
    if source == "mix":
        _number(c, "data.mix.synthetic_fraction", 0.0, 1.0)
        source = _choice(c, "data.mix.real", sources.REAL_SOURCES)
    if data.source in ("synthetic", "mix"):
        for key in ("train_pages", "val_pages", "page_height", "page_width"):
            _integer(c, f"data.synthetic.{key}", 1)
        _as_config_error("data.synthetic.clutter", clutter.Clutter.from_config, data.synthetic.clutter)
    if source == "folder":
        for key in ("train", "val"):
            if not str(data.folder[key]).strip():
                raise ConfigError(f"config.data.folder.{key} is empty: give a folder of image/mask pairs")
        _choice(c, "data.folder.mask_foreground", ("white", "black"))
    elif source == "collections":
        from binjax.data import collections  # noqa: PLC0415 -- imports tensorflow_datasets: only when used

        collections.split_collections(data.collections)


def _check_optimizer(opt, num_steps: int) -> None:
    c = ml_collections.ConfigDict({"optimizer": opt})
    _as_config_error("optimizer", optim.make_optimizer, opt, num_steps)  # names and schedule
    _number(c, "optimizer.learning_rate", 0.0, low_open=True)
    _number(c, "optimizer.weight_decay", 0.0)
    _integer(c, "optimizer.warmup_steps", 0)
    _number(c, "optimizer.final_lr_fraction", 0.0, 1.0)
    _number(c, "optimizer.grad_clip_norm", -math.inf)
    _number(c, "optimizer.momentum", 0.0, 1.0)


def _check_loss(loss) -> None:
    c = ml_collections.ConfigDict({"loss": loss})
    _as_config_error("loss", losses.make_loss, loss)
    for key in ("bce_weight", "dice_weight", "iou_weight", "focal_weight", "pos_weight", "focal_alpha", "focal_gamma"):
        _number(c, f"loss.{key}", 0.0)


# ------------------------------------------------------------------------- resume


def flatten(config) -> dict[str, Any]:
    """{'model.depth': 4, ...}; lists and tuples compare alike (JSON turns tuples into lists)."""
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = list(value) if isinstance(value, tuple) else value

    walk("", tree)
    return flat


def resume_changes(saved, new) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every key that differs, safe keys left out, sorted.

    A key the saved config lacks but that the new one holds at its default (one added to
    binjax.defaults since the checkpoint was written, e.g. data.synthetic.clutter.*, or a model
    argument added to the model's constructor, e.g. model.head) is no change: the run learned
    with what that default does.
    """
    before, after = flatten(saved), flatten(new)
    added_defaults = flatten(defaults.base_config())
    added_defaults.update(_model_defaults(after.get("model.name")))
    changed = []
    for key in sorted(set(before) | set(after)):
        if key in RESUME_SAFE_KEYS or before.get(key, "<absent>") == after.get(key, "<absent>"):
            continue
        if key not in before and key in added_defaults and after[key] == added_defaults[key]:
            continue
        changed.append((key, before.get(key, "<absent>"), after.get(key, "<absent>")))
    return changed


def _model_defaults(name) -> dict[str, Any]:
    """{'model.<argument>': default} of the named model's constructor ({} for an unknown name)."""
    try:
        kwargs = models.model_kwargs(name)
    except ValueError:
        return {}
    return {f"model.{k}": list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def describe_changes(changes) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)


def check_resume(saved, new, *, same_shapes: bool, allow_change: bool, where: str) -> list:
    """Raises ConfigError when `new` may not resume the checkpoint `where` trained with `saved`.

    same_shapes: whether both configs give the same train-state shapes (parameters, optimizer
    state); when they do not, no flag helps: the checkpoint cannot be loaded into this model.
    """
    changes = resume_changes(saved, new)
    if not same_shapes:
        model_keys = [c for c in changes if c[0].startswith(SHAPING_KEYS)]
        raise ConfigError(
            f"the config changes the model's shapes saved in {where} ({describe_changes(model_keys or changes)}): "
            "train it in a new --workdir, or warm-start one with --config.init_from")
    if changes and not allow_change:
        raise ConfigError(
            f"the config differs from the one {where} was trained with ({describe_changes(changes)}): "
            "pass --allow_config_change to resume with it anyway, or train in a new --workdir")
    return changes
