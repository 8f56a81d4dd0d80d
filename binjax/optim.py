"""Optimizer and learning-rate schedule from config (optax)."""

from __future__ import annotations

import ml_collections
import optax

_OPTIMIZERS = ("adamw", "adam", "sgd")
_SCHEDULES = ("cosine", "constant")


def default_optimizer_config() -> ml_collections.ConfigDict:
    """AdamW with linear warmup and cosine decay, and gradient clipping."""
    return ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=2e-3,
            weight_decay=1e-4,
            schedule="cosine",
            warmup_steps=50,
            final_lr_fraction=0.01,  # cosine decays to learning_rate * this
            grad_clip_norm=1.0,  # <= 0 disables clipping
            momentum=0.9,  # sgd only
        )
    )


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    if cfg.schedule not in _SCHEDULES:
        raise ValueError(f"config.optimizer.schedule={cfg.schedule!r} is unknown; known: {_SCHEDULES}")
    warmup = min(int(cfg.warmup_steps), max(total_steps - 1, 0))
    if cfg.schedule == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.learning_rate, warmup), optax.constant_schedule(cfg.learning_rate)],
            [warmup],
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=cfg.learning_rate * cfg.final_lr_fraction,
    )


def make_optimizer(
    cfg: ml_collections.ConfigDict, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Returns (optimizer, schedule); the schedule is also reported in the step metrics."""
    if cfg.name not in _OPTIMIZERS:
        raise ValueError(f"config.optimizer.name={cfg.name!r} is unknown; known: {_OPTIMIZERS}")
    schedule = make_schedule(cfg, total_steps)
    if cfg.name == "adamw":
        opt = optax.adamw(schedule, weight_decay=cfg.weight_decay)
    elif cfg.name == "adam":
        opt = optax.adam(schedule)
    else:
        opt = optax.sgd(schedule, momentum=cfg.momentum, nesterov=True)
    if cfg.grad_clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), opt)
    return opt, schedule
