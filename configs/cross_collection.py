"""The cross-collection protocol: how well a recipe does on collections nobody trained or tuned on.

Every collection in ../shared/data (DIBCO 2009-2016, Bickley, Monk Cuper, MSI 2015, Nabuco,
PHIBD) is a test collection in exactly one fold and is never split. A fold trains on every other
collection except one validation collection, which selects the checkpoint, and is then scored on
its test collections beside Otsu, Sauvola and Su (binjax/protocol.py). The report's headline is
the worst collection, not the mean.

  python -m launch.protocol --config=configs/cross_collection.py --workdir=$HOME/binjax/protocol
  python -m launch.protocol --config=configs/cross_collection.py:smoke --workdir=/tmp/protocol_smoke
  python -m launch.protocol --config=configs/cross_collection.py --workdir=$HOME/binjax/protocol --report
  python -m launch.train --config=configs/cross_collection.py:bickley --workdir=/tmp/fold_bickley  # one fold

The argument is '<fold>[,unet][,smoke|study]' for one run (the sweep adds the fold itself):
the fold's name, the U-Net instead of the light model, and the usual size variants.

Folds. The DIBCO years are split into the competition's two series, so a DIBCO fold never
trains on pages of its own test years: 'dibco_icdar' (2009, 2011, 2013: printed and handwritten)
and 'dibco_icfhr' (2010, 2012, 2014, 2016: handwritten). Each other collection is a fold of its
own. Validation is DIBCO 2014 (DIBCO 2013 for the fold that tests 2014). Seven folds x two seeds.

Size. 2,000 steps of 8 patches of 256^2 per run: ~15 minutes for the light model on 2 CPU cores,
plus ~3 minutes of scoring, so the 14 runs take ~4-5 hours: overnight, resumable. The classic
baselines are scored once per collection, not per run.

Collections whose ground truth marks something else as ink (MSI 2015 marks only handwriting;
Nabuco's was picked from binarization outputs) stay test collections;
`--config.data.collections.exclude=msi2015,nabuco` keeps them (or any others) out of every fold's
training, to measure whether they teach the wrong thing.
"""

from __future__ import annotations

from binjax import defaults, sweep
from configs import dibco_recipe, default, lite

FOLDS = {
    "dibco_icdar": ("dibco2009", "dibco2011", "dibco2013"),
    "dibco_icfhr": ("dibco2010", "dibco2012", "dibco2014", "dibco2016"),
    "bickley": ("bickley",),
    "monk_cuper": ("monk_cuper",),
    "msi2015": ("msi2015",),
    "nabuco": ("nabuco",),
    "phibd": ("phibd",),
}
ALL_COLLECTIONS = tuple(c for tests in FOLDS.values() for c in tests)
VALIDATION, VALIDATION_IF_TESTED = "dibco2014", "dibco2013"
SEEDS = (0, 1)
NUM_STEPS = 2000
DEFAULT_FOLD = "bickley"  # the fold of a config loaded without one


def fold_collections(fold: str) -> dict[str, list[str]]:
    """{'train': [...], 'val': [...], 'test': [...]} for a fold; raises ValueError for unknown folds."""
    if fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r}; folds: {', '.join(FOLDS)}")
    test = list(FOLDS[fold])
    val = [VALIDATION if VALIDATION not in test else VALIDATION_IF_TESTED]
    train = [c for c in ALL_COLLECTIONS if c not in test and c not in val]
    return {"train": train, "val": val, "test": test}


def train_on_everything(config):
    """A fold's config turned into a release run: every collection trains except VALIDATION, which
    picks the checkpoint as in the folds; nothing is left to test (the protocol's folds measured
    the recipe)."""
    config.data.collections.update(train=",".join(c for c in ALL_COLLECTIONS if c != VALIDATION),
                                   val=VALIDATION, test="")
    return config


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    folds = [p for p in parts if p in FOLDS]
    variant = [p for p in parts if p in defaults.VARIANTS]
    unknown = set(parts) - set(folds) - set(variant) - {"unet"}
    if unknown or len(folds) > 1 or len(variant) > 1:
        raise ValueError(f"configs/cross_collection.py: argument {arg!r}; expected '<fold>[,unet][,smoke|study]' "
                         f"with a fold in {list(FOLDS)}")
    fold = folds[0] if folds else DEFAULT_FOLD
    model = default if "unet" in parts else lite
    config = dibco_recipe.apply(model.get_config())
    config.num_steps = NUM_STEPS
    data = config.data
    data.source = "collections"
    split = fold_collections(fold)
    data.collections.update(train=",".join(split["train"]), val=",".join(split["val"]),
                            test=",".join(split["test"]))
    smoke_model = dict(widths=(4, 8), blocks=(1, 1), head_width=4) if model is lite else dict(depth=2, base_width=4)
    config = defaults.apply_variant(config, variant[0] if variant else None, smoke_model=smoke_model)
    return dibco_recipe.smoke(config) if variant == ["smoke"] else config


def get_sweep(arg: str | None = None):
    del arg  # the same folds for every variant
    return sweep.with_seeds([{sweep.ARG: fold} for fold in FOLDS], SEEDS)
