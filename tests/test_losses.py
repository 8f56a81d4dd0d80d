"""Losses checked against hand computations and on degenerate masks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from binjax import losses


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


# Two images of 2 pixels each: logits and targets chosen so every number below is by hand.
LOGITS = np.array([2.0, -1.0, 0.5, -3.0], np.float32).reshape(2, 1, 2, 1)
TARGETS = np.array([1.0, 0.0, 0.0, 1.0], np.float32).reshape(2, 1, 2, 1)


def test_bce_matches_hand_computation():
    p = [_sigmoid(z) for z in LOGITS.ravel()]
    expected = -(math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2]) + math.log(p[3])) / 4
    assert float(losses.bce(LOGITS, TARGETS)) == pytest.approx(expected, rel=1e-6)


def test_bce_positive_weight_scales_only_foreground_terms():
    p = [_sigmoid(z) for z in LOGITS.ravel()]
    expected = -(3 * math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2]) + 3 * math.log(p[3])) / 4
    assert float(losses.bce(LOGITS, TARGETS, pos_weight=3.0)) == pytest.approx(expected, rel=1e-6)


def test_soft_dice_batch_and_per_image_match_hand_computation():
    p = [_sigmoid(z) for z in LOGITS.ravel()]
    # Whole batch: intersection = p0 + p3, sums over all four pixels.
    inter, psum, tsum = p[0] + p[3], sum(p), 2.0
    expected_batch = 1 - (2 * inter + 1) / (psum + tsum + 1)
    assert float(losses.soft_dice(LOGITS, TARGETS)) == pytest.approx(expected_batch, rel=1e-6)
    # Per image, then averaged.
    d1 = (2 * p[0] + 1) / (p[0] + p[1] + 1 + 1)
    d2 = (2 * p[3] + 1) / (p[2] + p[3] + 1 + 1)
    expected_image = 1 - (d1 + d2) / 2
    got = float(losses.soft_dice(LOGITS, TARGETS, per_image=True))
    assert got == pytest.approx(expected_image, rel=1e-6)


def test_soft_iou_matches_hand_computation():
    p = [_sigmoid(z) for z in LOGITS.ravel()]
    inter = p[0] + p[3]
    union = sum(p) + 2.0 - inter
    assert float(losses.soft_iou(LOGITS, TARGETS)) == pytest.approx(1 - (inter + 1) / (union + 1), rel=1e-6)


def test_focal_matches_hand_computation():
    gamma, alpha = 2.0, 0.25
    total = 0.0
    for z, y in zip(LOGITS.ravel(), TARGETS.ravel()):
        p = _sigmoid(z)
        p_t = p if y == 1 else 1 - p
        a_t = alpha if y == 1 else 1 - alpha
        total += -a_t * (1 - p_t) ** gamma * math.log(p_t)
    got = float(losses.focal(LOGITS, TARGETS, gamma=gamma, alpha=alpha))
    assert got == pytest.approx(total / 4, rel=1e-5)


@pytest.mark.parametrize("name", sorted(losses._TERMS))
@pytest.mark.parametrize("target_value", [0.0, 1.0])
def test_losses_are_finite_on_empty_and_all_foreground_masks(name, target_value):
    cfg = losses.default_loss_config()
    cfg.name = name
    loss_fn = losses.make_loss(cfg)
    targets = jnp.full((2, 8, 8, 1), target_value)
    for logits in (jnp.full((2, 8, 8, 1), -30.0), jnp.full((2, 8, 8, 1), 30.0), jnp.zeros((2, 8, 8, 1))):
        values = loss_fn(logits, targets)
        grads = jax.grad(lambda z: loss_fn(z, targets)["loss"])(logits)
        assert all(np.isfinite(float(v)) for v in values.values()), values
        assert np.isfinite(np.asarray(grads)).all()


def test_perfect_prediction_of_empty_mask_has_near_zero_dice_loss():
    targets = jnp.zeros((1, 8, 8, 1))
    assert float(losses.soft_dice(jnp.full_like(targets, -30.0), targets)) < 1e-6


def test_make_loss_sums_weighted_terms():
    cfg = losses.default_loss_config()
    cfg.bce_weight, cfg.dice_weight = 0.3, 2.0
    values = losses.make_loss(cfg)(LOGITS, TARGETS)
    assert set(values) == {"loss", "bce", "dice"}
    expected = 0.3 * float(values["bce"]) + 2.0 * float(values["dice"])
    assert float(values["loss"]) == pytest.approx(expected, rel=1e-6)


def test_unknown_loss_name_lists_known_names():
    cfg = losses.default_loss_config()
    cfg.name = "bce_dcie"
    with pytest.raises(ValueError, match="bce_dcie.*bce_dice"):
        losses.make_loss(cfg)
