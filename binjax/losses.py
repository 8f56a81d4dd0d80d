"""Segmentation losses on logits.

Every loss takes `logits` and `targets` of the same shape [N, H, W, 1] (targets in {0, 1},
1 = foreground) and returns a scalar float32. Losses are computed in float32 whatever the
compute dtype of the model, so bf16 training keeps a float32 loss.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

# Keeps soft Dice/IoU finite and equal to 1 - (tiny) on an empty mask predicted empty.
_SMOOTH = 1.0
_EPS = 1e-7


def bce(logits: jax.Array, targets: jax.Array, *, pos_weight: float = 1.0) -> jax.Array:
    """Mean binary cross-entropy on logits; `pos_weight` scales the foreground term.

    loss = -[w * y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z))], averaged over pixels,
    written with log_sigmoid so large logits do not overflow.
    """
    logits = logits.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    per_pixel = -(
        pos_weight * targets * jax.nn.log_sigmoid(logits)
        + (1.0 - targets) * jax.nn.log_sigmoid(-logits)
    )
    return per_pixel.mean()


def _overlap_sums(logits, targets, per_image: bool):
    """Soft intersection, sum of predictions and sum of targets over pixels (and batch)."""
    probs = jax.nn.sigmoid(logits.astype(jnp.float32))
    targets = targets.astype(jnp.float32)
    axes = tuple(range(1, probs.ndim)) if per_image else tuple(range(probs.ndim))
    return (probs * targets).sum(axes), probs.sum(axes), targets.sum(axes)


def soft_dice(logits: jax.Array, targets: jax.Array, *, per_image: bool = False) -> jax.Array:
    """1 - soft Dice coefficient.

    per_image=False pools all pixels of the batch into one Dice (stable when some patches hold no
    foreground); per_image=True averages the Dice of each image. The smoothing term keeps an empty
    target predicted empty at loss ~0 instead of 0/0, and the denominator is clamped.
    """
    intersection, pred_sum, target_sum = _overlap_sums(logits, targets, per_image)
    dice = (2.0 * intersection + _SMOOTH) / jnp.maximum(pred_sum + target_sum + _SMOOTH, _EPS)
    return 1.0 - dice.mean()


def soft_iou(logits: jax.Array, targets: jax.Array, *, per_image: bool = False) -> jax.Array:
    """1 - soft Jaccard index (IoU), with the same smoothing and pooling options as soft_dice."""
    intersection, pred_sum, target_sum = _overlap_sums(logits, targets, per_image)
    union = pred_sum + target_sum - intersection
    iou = (intersection + _SMOOTH) / jnp.maximum(union + _SMOOTH, _EPS)
    return 1.0 - iou.mean()


def focal(
    logits: jax.Array, targets: jax.Array, *, gamma: float = 2.0, alpha: float = 0.25
) -> jax.Array:
    """Mean sigmoid focal loss (Lin et al. 2017); alpha < 0 disables class balancing."""
    per_pixel = optax.sigmoid_focal_loss(
        logits.astype(jnp.float32),
        targets.astype(jnp.float32),
        alpha=None if alpha < 0 else alpha,
        gamma=gamma,
    )
    return per_pixel.mean()


LossFn = Callable[[jax.Array, jax.Array], dict[str, jax.Array]]

# Config name -> the terms it sums. Weights come from the config's `*_weight` fields.
_TERMS = {
    "bce": ("bce",),
    "dice": ("dice",),
    "bce_dice": ("bce", "dice"),
    "iou": ("iou",),
    "bce_iou": ("bce", "iou"),
    "focal": ("focal",),
    "focal_dice": ("focal", "dice"),
}


def default_loss_config() -> ml_collections.ConfigDict:
    """BCE + Dice with equal weights: the default of binjax (and of nnU-Net)."""
    return ml_collections.ConfigDict(
        dict(
            name="bce_dice",
            bce_weight=1.0,
            dice_weight=1.0,
            iou_weight=1.0,
            focal_weight=1.0,
            pos_weight=1.0,  # BCE weight on foreground pixels (ink is rare on pages)
            dice_per_image=False,
            focal_gamma=2.0,
            focal_alpha=0.25,
        )
    )


def make_loss(cfg: ml_collections.ConfigDict) -> LossFn:
    """Builds loss_fn(logits, targets) -> {'loss': total, '<term>': each term} from a config."""
    if cfg.name not in _TERMS:
        raise ValueError(f"config.loss.name={cfg.name!r} is unknown; known losses: {sorted(_TERMS)}")
    term_fns = {
        "bce": lambda z, y: bce(z, y, pos_weight=cfg.pos_weight),
        "dice": lambda z, y: soft_dice(z, y, per_image=cfg.dice_per_image),
        "iou": lambda z, y: soft_iou(z, y, per_image=cfg.dice_per_image),
        "focal": lambda z, y: focal(z, y, gamma=cfg.focal_gamma, alpha=cfg.focal_alpha),
    }
    terms = _TERMS[cfg.name]
    weights = {t: float(cfg[f"{t}_weight"]) for t in terms}

    def loss_fn(logits: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
        values = {t: term_fns[t](logits, targets) for t in terms}
        values["loss"] = sum(weights[t] * values[t] for t in terms)
        return values

    return loss_fn
