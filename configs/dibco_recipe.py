"""The DIBCO training recipe shared by configs/dibco_unet.py and configs/dibco_lite.py.

What the document-binarization literature found to matter, as config values:
  - patches of 256 px cropped on the fly from full pages, with scale augmentation (pages were
    scanned at different resolutions) plus flips, rotations and photometric changes;
  - foreground oversampling: half the patches are centred on an ink pixel (DIBCO pages are
    ~5-10 % ink, and a uniform crop is often blank paper);
  - BCE + soft Dice on logits;
  - grey input by default (`--config.data.channels=3` trains on colour);
  - optional pre-training on the synthetic generator, then fine-tuning
    (`--config.init_from=<synthetic workdir>`);
  - validation on a held-out competition year, keeping the best checkpoint by F-measure.

Protocol (binjax's "holdout" protocol, stricter than the usual fixed split): train on
DIBCO 2009, H-DIBCO 2010, DIBCO 2011 and H-DIBCO 2012 (50 pages), validate and select on
H-DIBCO 2014 (10 pages). Neither DIBCO 2013 (the fixed split's test year) nor H-DIBCO 2016
is ever read, so one model is scored on both as unseen years. The usual fixed split is
`--config.data.tfds.train_years=2009,2010,2011,2012,2016` (2016 then is no test year).
"""

from __future__ import annotations

import ml_collections

TRAIN_YEARS = "2009,2010,2011,2012"
VAL_YEARS = "2014"
TEST_YEARS = (2013, 2016)  # never read in training; scored by launch/evaluate.py


def apply(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Turns a model config (from configs/default.py or configs/lite.py) into its DIBCO run."""
    data = config.data
    data.source = "tfds"
    data.channels = 1
    data.tfds.update(
        name="dibco/fixed",
        manual_dir="../shared/data/dibco",  # the competition files; built into data_dir on first use
        data_dir="",  # tfds default (~/tensorflow_datasets)
        train_split="train",
        train_years=TRAIN_YEARS,
        val_split="train",
        val_years=VAL_YEARS,
    )
    data.patch_size = 256
    data.fg_patch_fraction = 0.5
    data.augment.scale_range = (0.67, 1.5)
    data.val_patches = 96  # ~10 fixed patches from each of the ten 2014 pages

    config.loss.name = "bce_dice"
    config.batch_size = 8
    config.num_steps = 3000
    config.optimizer.update(learning_rate=2e-3, warmup_steps=100, final_lr_fraction=0.01)
    config.log_every = 25
    config.eval_every = 250
    config.checkpoint_every = 50  # a killed run loses at most 50 steps (~3 min on 2 cores)
    config.keep_checkpoints = 2
    config.best_metric = "val/f1"
    return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The recipe at test size: after shrink_to_smoke, keep the DIBCO source, shrink its load."""
    config.data.val_patches = 8
    config.data.patch_size = 32
    return config
