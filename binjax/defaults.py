"""The full config tree with every field and its default; experiment configs start from here.

Every experiment in configs/ calls `base_config()` and changes what it needs, so all configs
share one schema and `lock_config=True` makes a mistyped `--config.x=...` fail loudly.
"""

from __future__ import annotations

import ml_collections

from binjax import losses, models, optim, sharding
from binjax.data import clutter, pipeline


def data_config() -> ml_collections.ConfigDict:
    cfg = pipeline.default_data_config()  # patch_size, fg_patch_fraction, augment, threads
    cfg.patch_size = 128  # small enough for minutes-long CPU runs; DIBCO recipes use more
    cfg.source = "synthetic"  # 'synthetic' | 'folder' | 'tfds' | 'collections' | 'mix'
    cfg.channels = 1  # 1 = grey input, 3 = RGB input
    cfg.val_patches = 64  # fixed held-out patches scored at every validation
    cfg.synthetic = ml_collections.ConfigDict(
        dict(train_pages=2000, val_pages=32, page_height=512, page_width=512)
    )
    # Things that are not ink (binjax/data/clutter.py): each the probability that a synthetic
    # page gets it. All 0 is the plain generator, so the quickstart and data/samples stay as
    # they were; configs/ablations/synthetic_mix.py turns them on.
    cfg.synthetic.clutter = ml_collections.ConfigDict(
        {**{kind: 0.0 for kind in clutter.KINDS}, "colour_collections": "",
         "faintest_ink": clutter.Clutter.faintest_ink, "faded_ink": clutter.Clutter.faded_ink,
         "darkest_bleed": clutter.Clutter.darkest_bleed, "paper_shading": clutter.Clutter.paper_shading})
    # source='mix': pages of the `real` source ('folder' | 'tfds' | 'collections', configured in
    # its own section) and synthetic pages (the section above) in one training source, a
    # `synthetic_fraction` of its pages synthetic. Validation reads the real source only.
    cfg.mix = ml_collections.ConfigDict(dict(real="collections", synthetic_fraction=0.5))
    cfg.folder = ml_collections.ConfigDict(
        dict(
            train="",  # folder, or comma-separated folders, of training images (and masks)
            train_masks="",  # if set: masks under the images' stems, one folder per train folder
            val="",  # same for validation (required for source='folder')
            val_masks="",
            image_suffix="_in",
            mask_suffix="_gt",
            mask_foreground="black",  # 'black' = dark mask pixels are foreground (DIBCO)
        )
    )
    cfg.tfds = ml_collections.ConfigDict(  # DIBCO through its tfds builder, binjax/data/dibco.py
        dict(
            name="dibco/fixed",  # 'dibco/<config>': 'fixed', 'loyo_<year>' or a year ('2013')
            data_dir="",  # tfds data_dir of the prepared dataset; '' = tfds default (~/tensorflow_datasets)
            manual_dir="",  # competition files (e.g. ../shared/data/dibco); builds the dataset if missing
            train_split="train",  # tfds splits, slices allowed: 'train[:85%]'
            val_split="test",  # per-year configs have only 'test'
            train_years="",  # comma-separated years to keep from train_split ('' = all)
            val_years="",  # same for val_split: '2014' validates on a year held out of 'train'
            prepare=True,  # False: never build, fail if the dataset is not prepared
        )
    )
    # Whole benchmark collections (binjax/data/collections.py): DIBCO years and the extra sets,
    # each prepared into tfds's data_dir from root on first use. The cross-collection protocol
    # trains on some and validates on another, never splitting a collection.
    cfg.collections = ml_collections.ConfigDict(
        dict(
            root="../shared/data",  # holds dibco/<year>/ and extra/<collection>/
            data_dir="",  # tfds data_dir; '' = tfds default (~/tensorflow_datasets)
            train="",  # comma-separated collections, e.g. 'dibco2009,dibco2010,bickley'
            val="",  # collections to validate and select checkpoints on (disjoint from train)
            exclude="",  # collections dropped from train (e.g. ground truth of another convention)
            test="",  # collections scored after training (binjax.protocol); never read in training
            prepare=True,  # False: never build, fail if a collection is not prepared
        )
    )
    return cfg


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict(dict(name="unet"))
    config.data = data_config()
    config.loss = losses.default_loss_config()
    config.optimizer = optim.default_optimizer_config()
    config.mesh = sharding.default_mesh_config()

    config.batch_size = 8  # global batch, split over the data axes of the mesh
    # Gradient accumulation: each step averages the gradients of this many micro-batches of
    # batch_size / grad_accum_steps (same update, less activation memory). BatchNorm then
    # normalises with micro-batch statistics, as PyTorch would.
    config.grad_accum_steps = 1
    config.num_steps = 600
    config.compute_dtype = "float32"  # 'bfloat16': bf16 activations, float32 params and loss
    # Warm start: a workdir or checkpoint whose weights (params + BatchNorm stats, not the
    # optimizer or step) start a new run, e.g. pre-training on synthetic pages, then DIBCO.
    config.init_from = ""

    config.log_every = 10
    config.eval_every = 200
    config.checkpoint_every = 100
    config.keep_checkpoints = 2
    config.best_metric = "val/f1"  # keeps the best checkpoint by this validation figure
    config.num_sample_images = 4  # rows in the input / prediction / ground-truth PNG grid
    return config


def shrink_to_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Makes any config train a few steps on tiny patches in seconds (tests, laptops)."""
    config.num_steps = 4
    config.batch_size = 8
    config.log_every = 2
    config.eval_every = 4
    config.checkpoint_every = 2
    config.optimizer.warmup_steps = 1
    config.data.patch_size = 32
    config.data.val_patches = 8
    config.data.synthetic.train_pages = 8
    config.data.synthetic.val_pages = 2
    config.data.synthetic.page_height = 96
    config.data.synthetic.page_width = 96
    config.data.read_threads = 1
    config.data.prefetch = 2
    config.num_sample_images = 2
    return config


def shrink_to_study(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ablation-study scale of docs/ablations/: the real model, small patches, few steps.

    One run takes a minute or two on a 2-core CPU, so a sweep of ~20 runs fits in an hour,
    while the model, loss and data keep their full definitions (only patch size and length
    shrink). Each run still validates on 64 fixed patches of unseen pages.
    """
    config.num_steps = 300
    config.batch_size = 8
    config.data.patch_size = 64
    config.optimizer.warmup_steps = 20
    config.log_every = 25
    config.eval_every = 100
    config.checkpoint_every = 100
    return config


VARIANTS = ("smoke", "study")


def apply_variant(config: ml_collections.ConfigDict, arg: str | None, *, smoke_model: dict) -> ml_collections.ConfigDict:
    """Applies the `:variant` part of `--config=configs/x.py:variant`.

    'smoke': tiny model and data, a few steps (tests). 'study': the ablation-study scale.
    Also checks the model's name and hyper-parameters, so a typo fails when the config loads.
    """
    if arg == "smoke":
        shrink_to_smoke(config)
        config.model.update(smoke_model)
    elif arg == "study":
        shrink_to_study(config)
    elif arg not in (None, ""):
        raise ValueError(f"unknown config variant {arg!r}; known variants: {VARIANTS}")
    models.check_model_config(config.model.name, {k: v for k, v in config.model.items() if k != "name"})
    return config
