"""Config values checked before any work starts; configs compared when a run resumes."""

import importlib
import math
import pathlib

import pytest

from binjax import checkpointing, config_checks
from binjax.errors import BinjaxError, ConfigError
from configs import sae

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_MODULES = sorted(
    p.stem for p in (REPO / "configs").glob("*.py") if not p.name.startswith("_") and "def get_config" in p.read_text()
)


@pytest.mark.parametrize("module", CONFIG_MODULES)
@pytest.mark.parametrize("variant", [None, "smoke", "study"])
def test_every_shipped_config_passes(module, variant):
    config_checks.check_config(importlib.import_module(f"configs.{module}").get_config(variant))


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("eval_every", 0, r"config.eval_every=0: must be an integer >= 1"),
        ("log_every", -1, r"config.log_every=-1"),
        ("checkpoint_every", 0, r"config.checkpoint_every=0"),
        ("keep_checkpoints", 0, r"config.keep_checkpoints=0: must be an integer >= 1"),
        ("num_steps", -5, r"config.num_steps=-5"),
        ("num_steps", 0, r"config.num_steps=0"),
        ("batch_size", 0, r"config.batch_size=0"),
        ("batch_size", -8, r"config.batch_size=-8"),
        ("grad_accum_steps", 3, r"config.batch_size=8 must be a multiple of config.grad_accum_steps=3"),
        ("best_metric", "val/f11", r"config.best_metric='val/f11': must be one of"),
        ("compute_dtype", "float16", r"config.compute_dtype='float16'"),
        ("seed", -1, r"config.seed=-1"),
        ("init_from", "/nonexistent/run", r"config.init_from='/nonexistent/run': no such"),
        ("data.patch_size", 0, r"config.data.patch_size=0"),
        ("data.val_patches", 0, r"config.data.val_patches=0"),
        ("data.channels", 2, r"config.data.channels=2"),
        ("data.source", "folders", r"config.data.source='folders'"),
        ("data.fg_patch_fraction", 1.5, r"config.data.fg_patch_fraction=1.5"),
        ("data.synthetic.train_pages", 0, r"config.data.synthetic.train_pages=0"),
        ("data.augment.blur_prob", 2.0, r"config.data.augment: .*blur_prob"),
        ("optimizer.learning_rate", math.nan, r"config.optimizer.learning_rate=nan: must be a finite number"),
        ("optimizer.learning_rate", math.inf, r"config.optimizer.learning_rate=inf"),
        ("optimizer.learning_rate", 0.0, r"config.optimizer.learning_rate=0.0"),
        ("optimizer.name", "adamm", r"config.optimizer: .*adamm"),
        ("optimizer.warmup_steps", -1, r"config.optimizer.warmup_steps=-1"),
        ("loss.name", "bce_dic", r"config.loss: .*bce_dic"),
        ("loss.pos_weight", -1.0, r"config.loss.pos_weight=-1.0"),
        ("model.nonexistent", 1, r"config.model: .*nonexistent"),
    ],
)
def test_a_bad_value_is_one_config_error_naming_the_key(key, value, expected):
    config = sae.get_config("smoke")
    target = config
    *parents, leaf = key.split(".")
    for part in parents:
        target = target[part]
    with config.unlocked():
        target[leaf] = value
    with pytest.raises(ConfigError, match=expected) as caught:
        config_checks.check_config(config)
    assert "\n" not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained traceback behind the one line


def test_folder_source_needs_its_folders():
    config = sae.get_config("smoke")
    config.data.source = "folder"
    with pytest.raises(ConfigError, match="config.data.folder.train is empty"):
        config_checks.check_config(config)


def test_keep_zero_is_refused_by_the_checkpointer_too(tmp_path):
    # Orbax reads max_to_keep=0 as "keep nothing": every save deletes the one before.
    with pytest.raises(BinjaxError, match="keep_checkpoints=0"):
        checkpointing.Checkpointer(tmp_path, every_steps=1, keep=0)


def test_resume_changes_leave_out_safe_keys_and_list_the_rest():
    saved = sae.get_config("smoke")
    new = sae.get_config("smoke")
    new.num_steps = 100  # extending a run: safe
    new.eval_every = 7
    assert config_checks.resume_changes(saved, new) == []
    new.optimizer.learning_rate = 0.1
    new.seed = 3
    assert config_checks.resume_changes(saved, new) == [("optimizer.learning_rate", 0.002, 0.1), ("seed", 0, 3)]
    with pytest.raises(ConfigError, match=r"optimizer.learning_rate: 0.002 -> 0.1.*--allow_config_change"):
        config_checks.check_resume(saved, new, same_shapes=True, allow_change=False, where="w")
    assert config_checks.check_resume(saved, new, same_shapes=True, allow_change=True, where="w")
    new.model.width = 16
    with pytest.raises(ConfigError, match=r"changes the model's shapes saved in w \(model.width: 8 -> 16\)"):
        config_checks.check_resume(saved, new, same_shapes=False, allow_change=True, where="w")


def test_json_round_trip_is_no_change():
    config = sae.get_config("smoke")
    import json  # noqa: PLC0415

    import ml_collections  # noqa: PLC0415

    saved = ml_collections.ConfigDict(json.loads(config.to_json_best_effort()))
    assert config_checks.resume_changes(saved, config) == []


def test_keys_added_since_a_checkpoint_at_their_defaults_are_no_change():
    """A checkpoint written before data.synthetic.clutter / data.mix existed resumes as it was."""
    new = sae.get_config("smoke")
    saved = sae.get_config("smoke")
    del saved.data.synthetic["clutter"]
    del saved.data["mix"]
    assert config_checks.resume_changes(saved, new) == []
    new.data.synthetic.clutter.stamp = 0.5   # a new key, but not at its default: a change
    assert config_checks.resume_changes(saved, new) == [("data.synthetic.clutter.stamp", "<absent>", 0.5)]


def test_a_model_argument_added_since_a_checkpoint_at_its_default_is_no_change():
    """A light model trained before model.head existed (the released ones) resumes as it was;
    the same key at another value is a change."""
    from configs import lite  # noqa: PLC0415

    new, saved = lite.get_config("smoke"), lite.get_config("smoke")
    del saved.model["head"]
    assert config_checks.resume_changes(saved, new) == []
    new.model.head = "space_to_depth"
    assert config_checks.resume_changes(saved, new) == [("model.head", "<absent>", "space_to_depth")]
