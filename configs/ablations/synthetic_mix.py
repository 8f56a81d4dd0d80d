"""Synthetic pages that teach what is not ink, in the cross-collection protocol (issue #13).

Three sweeps over the protocol's folds, each on the recipe the protocol chose (configs/
collections_lite.py: configs/cross_collection.py's light model on contrast-stretched pages,
contrast.STRETCH; add ',unet' for the U-Net), each scored by launch.protocol on the fold's test
collections like the protocol. Synthetic pages are stretched like the real ones (the mixed source
is wrapped in sources.ContrastPages), so the model sees every page as it will at inference.

  mix (no argument)  real training collections and synthetic pages with every kind of clutter
                     (CLUTTER below; binjax/data/clutter.py) in one source, a synthetic fraction
                     of 0, 0.25 or 0.5 of the pages (data.mix.synthetic_fraction); 0 is the
                     chosen recipe itself, the same pages and batches as contrast.py's
                     'stretch' arm
  'pretrain'         synthetic pages only (synthetic_fraction 1), the same steps, checkpoints
                     chosen on the real validation collection: the synthetic-only score, and
                     the start of 'finetune'
  'finetune'         each fold's real collections, from the weights of its seed-0 'pretrain' run
                     (config.init_from = PRETRAIN_ROOT/arg=<fold>,seed=0, so both fine-tuning
                     seeds start alike); needs 'pretrain' run there first
  'polish'           each fold's real collections for POLISH_STEPS at a quarter of the learning
                     rate, from the weights of its seed-0 mix run at fraction 0.5 (MIX_ROOT): do a
                     few real-page steps at the end take back what the synthetic pages cost the
                     DIBCO years, and keep what they won?

Seeds 0 and 1; 7 folds, so the mix sweep is 126 runs (~47 h on 2 idle CPU cores, ~20 min a run,
40 at twice the steps; `--only` picks folds) and the stages 14 each. Paper and ink colours come
from the fold's training collections only, so no test collection lends its colours.

  python -m launch.protocol --config=configs/ablations/synthetic_mix.py --workdir=$HOME/binjax/synthetic_mix
  python -m launch.protocol --config=configs/ablations/synthetic_mix.py --workdir=$HOME/binjax/synthetic_mix --only='arg=msi2015|arg=nabuco'
  python -m launch.protocol --config=configs/ablations/synthetic_mix.py:pretrain --workdir=$HOME/binjax/synthetic_pretrain
  python -m launch.protocol --config=configs/ablations/synthetic_mix.py:finetune --workdir=$HOME/binjax/synthetic_finetune
  python -m launch.protocol --config=configs/ablations/synthetic_mix.py:polish --workdir=$HOME/binjax/synthetic_polish
  python -m launch.protocol --config=configs/ablations/synthetic_mix.py:smoke --workdir=/tmp/synthetic_mix_smoke

The argument is '<fold>[,unet][,pretrain|finetune|polish][,smoke|study]' for one run.
"""

from __future__ import annotations

import os

from binjax import sweep
from configs import cross_collection
from configs.ablations import contrast

FRACTIONS = (0.0, 0.25, 0.5)
FAINTEST_INK = 0.6  # the plain generator's own bound on its inks (synthetic._random_colours)
# The next two suspects for the DIBCO cost: faded front ink marked as ink (half the pages, by
# default) and bleed-through as dark as the front text marked as paper. Each arm turns one off.
NO_FADED_INK = 0.0   # data.synthetic.clutter.faded_ink: no page's front ink fades
DARKEST_BLEED = 0.5  # data.synthetic.clutter.darkest_bleed: bleed-through at most half as dark
# The synthetic pages' paper is dark far from ink like Bickley's and MSI 2015's (the collections
# they lift), unlike the DIBCO years' (those they cost): docs/ablations/dibco/synthetic_mix/
# dark_paper.md. This arm draws no uneven light or stains into the paper (18 % -> 12 % of it
# darker than mid-grey after the stretch) and keeps every clutter kind.
LIGHT_PAPER = 0.0   # data.synthetic.clutter.paper_shading
# Light paper traded MSI 2015 (the darkest paper) for Bickley as the mix traded the DIBCO years
# for Bickley: what the pages teach depends on how dark the page's paper is, which a tile does
# not show. This arm gives the model the page's paper estimate as one more input channel
# (binjax/page_context.py), on every page, real and synthetic, in training and at inference.
PAPER_CONTEXT = "paper"   # data.context
SEEDS = (0, 1)
# Every kind on a fair share of the pages; a page mostly gets two or three kinds at once.
CLUTTER = dict(bleed_through=0.5, scan_border=0.3, gutter=0.2, ruled=0.25, frame=0.15,
               ring_stain=0.25, stamp=0.2, real_colours=0.7)
PRETRAIN_ROOT = os.path.join("~", "binjax", "synthetic_pretrain")  # where 'pretrain' was run
MIX_ROOT = os.path.join("~", "binjax", "synthetic_mix")  # where the mix sweep was run ('polish' starts there)
POLISH_STEPS = 500
STAGES = ("pretrain", "finetune", "polish")


def add_synthetic_pages(config, fraction: float):
    """config's real training collections mixed with cluttered synthetic pages, `fraction` of the
    pages, their paper and ink colours measured on those training collections only. The arm's
    runs and the default model's release (configs/collections_lite.py) share it."""
    data = config.data
    data.synthetic.clutter.update(CLUTTER, colour_collections=data.collections.train)
    data.source = "mix"
    data.mix.update(real="collections", synthetic_fraction=fraction)
    return config


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    stage = [p for p in parts if p in STAGES]
    if len(stage) > 1:
        raise ValueError(f"configs/ablations/synthetic_mix.py: argument {arg!r} names both {STAGES}")
    config = cross_collection.get_config(",".join(p for p in parts if p not in STAGES) or None)
    # The arm adds synthetic pages to the recipe the protocol chose, not to the one it replaced.
    config = sweep.apply_overrides(config, contrast.STRETCH)
    fold = next((p for p in parts if p in cross_collection.FOLDS), cross_collection.DEFAULT_FOLD)
    if stage == ["polish"]:   # the seed-0 mix run's weights, a short fine-tune on the real collections
        config.data.synthetic.clutter.update(CLUTTER, colour_collections=config.data.collections.train)
        config.num_steps = min(config.num_steps, POLISH_STEPS)   # ',smoke' stays tiny
        config.eval_every = min(config.eval_every, 100)
        config.optimizer.update(learning_rate=config.optimizer.learning_rate / 4, warmup_steps=50)
        config.init_from = os.path.join(os.path.expanduser(MIX_ROOT), sweep.run_name(
            {sweep.ARG: fold, "data.mix.synthetic_fraction": FRACTIONS[-1], sweep.SEED: 0}))
    elif stage != ["finetune"]:
        # 'pretrain' trains on synthetic pages only but, like every arm, selects its checkpoint
        # on the fold's real validation collection.
        add_synthetic_pages(config, 1.0 if stage else FRACTIONS[-1])
    else:   # the protocol's real collections, from the fold's seed-0 'pretrain' weights
        config.data.synthetic.clutter.update(CLUTTER, colour_collections=config.data.collections.train)
        config.init_from = os.path.join(os.path.expanduser(PRETRAIN_ROOT),
                                        sweep.run_name({sweep.ARG: fold, sweep.SEED: 0}))
    return config


def get_sweep(arg: str | None = None):
    stage = [p for p in (arg or "").split(",") if p in STAGES]
    folds = [{sweep.ARG: fold} for fold in cross_collection.FOLDS]
    if stage:
        return sweep.with_seeds(folds, SEEDS)
    mixes = [{**fold, "data.mix.synthetic_fraction": f} for fold in folds for f in FRACTIONS]
    # The arms at fraction 0.5, each changing one thing, every fold: no faint ink, twice the
    # config's own steps (4000 for the protocol, a tiny run for ',smoke'), no faded ink,
    # bleed-through at most half as dark, paper without uneven light or stains, and the page's
    # paper estimate as an input channel.
    arms = [{"data.synthetic.clutter.faintest_ink": FAINTEST_INK},
            {"num_steps": 2 * get_config(arg).num_steps},
            {"data.synthetic.clutter.faded_ink": NO_FADED_INK},
            {"data.synthetic.clutter.darkest_bleed": DARKEST_BLEED},
            {"data.synthetic.clutter.paper_shading": LIGHT_PAPER},
            {"data.context": PAPER_CONTEXT}]
    at_half = [{**fold, "data.mix.synthetic_fraction": FRACTIONS[-1], **arm} for arm in arms for fold in folds]
    return sweep.with_seeds(mixes + at_half, SEEDS)
