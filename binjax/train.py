"""Training: `train_and_evaluate(config, workdir)` trains a binarization model and validates it.

Reads top to bottom: Mesh, Input pipeline, Model & optimizer, Shard & create state, Update step,
Evals, Load checkpoint, Train loop. Restarting the same call on the same workdir resumes from the
last checkpoint with the same data order and the same losses.

A run never loses its work: the config is checked before anything starts, one run holds the
workdir at a time (binjax.workdir_lock), resume compares configs and skips checkpoints that do
not restore, and every way out of the loop finishes or removes pending saves and says which
checkpoint is the last complete one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from absl import logging
from flax import nnx

from binjax import (baselines, checkpointing, config_checks, imageio, losses, metrics, models, optim, page_context,
                    reporting, sharding)
from binjax.data import pipeline, sources
from binjax.errors import CheckpointError, ConfigError, TrainingDivergedError
from binjax.interrupts import stop_between_steps
from binjax.workdir_lock import WorkdirLock

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> nnx.Module:
    """The model named by config.model, in the config's compute dtype."""
    if config.compute_dtype not in _DTYPES:
        raise ValueError(f"config.compute_dtype={config.compute_dtype!r} is unknown; known: {list(_DTYPES)}")
    kwargs = {k: v for k, v in config.model.items() if k != "name"}
    return models.create_model(
        config.model.name,
        in_channels=page_context.model_channels(config.data),
        rngs=rngs,
        dtype=_DTYPES[config.compute_dtype],
        **kwargs,
    )


def model_graphdefs(config: ml_collections.ConfigDict):
    """(train-mode graphdef, eval-mode graphdef): the static halves of the model, built abstractly."""
    model = nnx.eval_shape(lambda: build_model(config, nnx.Rngs(0)))
    model.train()
    train_graphdef = nnx.graphdef(model)
    model.eval()
    return train_graphdef, nnx.graphdef(model)


def init_train_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation) -> dict:
    """A fresh train state as plain pytrees: step, params, BatchNorm stats, optimizer state."""
    # XLA:CPU takes minutes to compile threefry for dozens of parameter shapes, seconds for the
    # RngBitGenerator behind 'rbg' keys. Initial values are reproducible per backend (CPU vs GPU
    # differ); per-step randomness (dropout) keeps JAX's default threefry keys.
    model = build_model(config, nnx.Rngs(params=jax.random.key(config.seed, impl="rbg")))
    _, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    if jax.tree.leaves(rest):
        raise ValueError(f"model {config.model.name!r} holds state other than params and batch stats")
    params, batch_stats = nnx.to_pure_dict(params), nnx.to_pure_dict(batch_stats)
    return dict(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats, opt_state=tx.init(params))


def abstract_train_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation | None = None):
    """Shapes and dtypes of the train state (nothing allocated): what checkpoints restore into."""
    if tx is None:
        tx, _ = optim.make_optimizer(config.optimizer, config.num_steps)
    return jax.eval_shape(lambda: init_train_state(config, tx))


def warm_start(state: dict, init_from: str | pathlib.Path, state_shardings) -> dict:
    """`state` with params and BatchNorm stats taken from another run's checkpoint (best, else latest).

    Step and optimizer state stay fresh: the run fine-tunes with its own schedule. The source
    must be the same architecture on the same input channels; anything else is an error that
    names the first mismatching weight.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def load(step_dir):
        source_config = checkpointing.load_config(step_dir)
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract_train_state(source_config)
        )
        return checkpointing.restore_state(step_dir, target), source_config

    step_dir, (source, source_config) = checkpointing.restore_any(init_from, load)
    for key in ("params", "batch_stats"):
        ours, treedef = jax.tree_util.tree_flatten_with_path(state[key])
        theirs = dict(jax.tree_util.tree_flatten_with_path(source[key])[0])
        for path, leaf in ours:
            other = theirs.get(path)
            if other is None or other.shape != leaf.shape:
                name = jax.tree_util.keystr(path)
                raise ValueError(
                    f"config.init_from={str(init_from)!r}: {key}{name} is "
                    f"{'missing' if other is None else f'shaped {other.shape}'} in {step_dir}, "
                    f"this model needs {leaf.shape} (model {source_config.model.name!r} on "
                    f"{source_config.data.channels} channel(s) there)"
                )
        # numpy, not arrays on this host's device: device_put of those onto other hosts' devices fails
        loaded = [np.asarray(theirs[path]).astype(leaf.dtype) for path, leaf in ours]
        state[key] = jax.device_put(jax.tree.unflatten(treedef, loaded), state_shardings[key])
    logging.info("initialised params and BatchNorm stats from %s", step_dir)
    return state


def to_unit_range(images: jax.Array) -> jax.Array:
    """uint8 pixels -> float32 in [0, 1] (the models' input convention)."""
    return images.astype(jnp.float32) / 255.0


def split_micro_batches(x: jax.Array, count: int) -> jax.Array:
    """[B, ...] -> [count, B / count, ...]; micro-batch i holds rows i, i + count, i + 2 count, ...

    Strided rather than contiguous: with the batch sharded over devices, every micro-batch then
    takes an equal share of each device's rows and no device idles.
    """
    return jnp.swapaxes(x.reshape(x.shape[0] // count, count, *x.shape[1:]), 0, 1)


def make_train_step(config, train_graphdef, tx, schedule, loss_fn):
    """The jitted-to-be update: one optimizer step on one global batch; returns (state, health).

    With config.grad_accum_steps = k > 1 the batch is split into k micro-batches whose gradients
    are averaged in a lax.scan before the one optimizer update (BatchNorm statistics carry from
    one micro-batch to the next; reported loss terms are micro-batch means).
    """
    dropout_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    accum_steps = int(config.grad_accum_steps)

    def gradients(params, batch_stats, images, targets, key):
        def loss_of(params):
            model = nnx.merge(train_graphdef, params, batch_stats)
            logits = model(images, rngs=nnx.Rngs(dropout=key))
            new_stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
            terms = loss_fn(logits, targets)
            return terms["loss"], (terms, new_stats)

        return jax.grad(loss_of, has_aux=True)(params)

    def train_step(state: dict, batch: dict) -> tuple[dict, dict]:
        step = state["step"]
        images, targets = to_unit_range(batch["image"]), batch["mask"].astype(jnp.float32)
        key = jax.random.fold_in(dropout_key, step)
        if accum_steps == 1:
            grads, (terms, new_stats) = gradients(state["params"], state["batch_stats"], images, targets, key)
        else:
            def accumulate(carry, micro):
                grad_sum, batch_stats = carry
                index, micro_images, micro_targets = micro
                grads, (terms, batch_stats) = gradients(
                    state["params"], batch_stats, micro_images, micro_targets, jax.random.fold_in(key, index))
                return (jax.tree.map(jnp.add, grad_sum, grads), batch_stats), terms

            micro_batches = (jnp.arange(accum_steps), split_micro_batches(images, accum_steps),
                             split_micro_batches(targets, accum_steps))
            zeros = jax.tree.map(jnp.zeros_like, state["params"])
            (grad_sum, new_stats), micro_terms = jax.lax.scan(
                accumulate, (zeros, state["batch_stats"]), micro_batches)
            grads = jax.tree.map(lambda g: g / accum_steps, grad_sum)
            terms = jax.tree.map(jnp.mean, micro_terms)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        health = {f"train/{k}": v for k, v in terms.items()}
        health.update(
            {
                "train/grad_norm": optax.tree.norm(grads),
                "train/param_norm": optax.tree.norm(params),
                "train/update_norm": optax.tree.norm(updates),
                "train/learning_rate": schedule(step),
            }
        )
        new_state = dict(step=step + 1, params=params, batch_stats=new_stats, opt_state=opt_state)
        return new_state, health

    return train_step


def make_eval_step(eval_graphdef, loss_fn):
    """Scores one global batch: (confusion counts [tp, fp, fn, tn], loss, probabilities)."""

    def eval_step(state: dict, batch: dict):
        model = nnx.merge(eval_graphdef, state["params"], state["batch_stats"])
        logits = model(to_unit_range(batch["image"]))
        targets = batch["mask"].astype(jnp.float32)
        counts = metrics.confusion_counts(logits > 0, targets > 0.5)
        return jnp.asarray(counts, jnp.float32), loss_fn(logits, targets)["loss"], jax.nn.sigmoid(logits)

    return eval_step


@dataclasses.dataclass(frozen=True)
class Steps:
    """Everything jitted that a run needs, built for one mesh."""

    abstract_state: Any  # ShapeDtypeStructs of the train state
    state_shardings: Any
    init: Callable[[], dict]  # -> a fresh train state, created already sharded
    train_step: Callable  # (state, global batch) -> (state, health); donates state
    eval_step: Callable  # (state, global batch) -> (counts, loss, probabilities)

    def restore_target(self):
        """Abstract state with shardings: where a checkpoint restores to, on this mesh."""
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), self.abstract_state, self.state_shardings
        )


def make_steps(config: ml_collections.ConfigDict, mesh) -> Steps:
    """Optimizer, loss and model from the config, jitted with the train state laid out on `mesh`."""
    tx, schedule = optim.make_optimizer(config.optimizer, config.num_steps)
    loss_fn = losses.make_loss(config.loss)
    train_graphdef, eval_graphdef = model_graphdefs(config)
    abstract_state = abstract_train_state(config, tx)
    state_shardings = sharding.state_shardings(abstract_state, mesh, config.mesh.fsdp_min_size)
    replicated = sharding.replicated(mesh)
    return Steps(
        abstract_state=abstract_state,
        state_shardings=state_shardings,
        init=jax.jit(lambda: init_train_state(config, tx), out_shardings=state_shardings),
        train_step=jax.jit(
            make_train_step(config, train_graphdef, tx, schedule, loss_fn),
            donate_argnums=0,
            out_shardings=(state_shardings, replicated),
        ),
        eval_step=jax.jit(make_eval_step(eval_graphdef, loss_fn), out_shardings=replicated),
    )


def otsu_scores(val: dict, image_channels: int) -> dict[str, float]:
    """Otsu's global threshold on each validation patch (its first `image_channels` channels: the
    image, without a page-context channel): the bar a learned model must clear."""
    counts = np.zeros(4, np.int64)
    for image, mask in zip(val["image"], val["mask"]):
        ink = baselines.binarize_classic(imageio.to_channels(image[..., :image_channels], 1)[..., 0], "otsu")
        counts += np.asarray(metrics.confusion_counts(ink, mask[..., 0] > 0), np.int64)
    return {f"val/otsu_{k}": float(v) for k, v in metrics.segmentation_scores(counts).items()}


def validate(eval_step, state, val: dict, mesh, batch_size: int):
    """Summed counts over all validation patches -> one set of scores (not a mean of batches)."""
    counts, loss_sum, first_probs = np.zeros(4, np.float64), 0.0, None
    num_batches = len(val["image"]) // batch_size
    for b in range(num_batches):
        chunk = {k: v[b * batch_size : (b + 1) * batch_size] for k, v in val.items()}
        batch_counts, loss, probs = eval_step(state, sharding.global_batch(chunk, mesh))
        counts += np.asarray(batch_counts, np.float64)
        loss_sum += float(loss)
        if first_probs is None:
            first_probs = np.asarray(probs)
    scores = {f"val/{k}": float(v) for k, v in metrics.segmentation_scores(counts).items()}
    scores["val/loss"] = loss_sum / num_batches
    return scores, first_probs


def validation_patches(config: ml_collections.ConfigDict, val_source) -> dict[str, np.ndarray]:
    """The fixed validation patches of a run: val_patches rounded up to whole global batches.

    binjax.run_scores rebuilds them from a finished run's config with this same function.
    """
    num_val = math.ceil(config.data.val_patches / config.batch_size) * config.batch_size
    return pipeline.validation_patches(val_source, config.data, seed=config.seed + 1, num_patches=num_val)


def _check_finite(step: int, history: list[dict]) -> None:
    for offset, record in enumerate(history):
        bad = [k for k, v in record.items() if not np.isfinite(v)]
        if bad:
            raise TrainingDivergedError(
                f"non-finite {bad} at step {step - len(history) + offset + 1}: "
                "lower the learning rate or check the data"
            )


def same_state_shapes(a, b) -> bool:
    """Whether two abstract train states have the same tree, shapes and dtypes (checkpoint fits)."""
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    return tree_a == tree_b and all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(leaves_a, leaves_b))


def resume_check(config: ml_collections.ConfigDict, abstract_state, allow_change: bool, workdir: pathlib.Path):
    """The check a checkpoint's saved config passes before train_and_evaluate restores it."""

    def check(saved: dict) -> None:
        saved = ml_collections.ConfigDict(saved)
        try:
            same = same_state_shapes(abstract_train_state(saved), abstract_state)
        except Exception:  # noqa: BLE001 -- a saved config this code can no longer build: judge by keys
            changed = config_checks.resume_changes(saved, config)
            same = not any(k.startswith(config_checks.SHAPING_KEYS) for k, _, _ in changed)
        changes = config_checks.check_resume(
            saved, config, same_shapes=same, allow_change=allow_change, where=str(workdir))
        if changes:
            logging.warning("resuming with a changed config: %s", config_checks.describe_changes(changes))

    return check


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, allow_config_change: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming if it holds a checkpoint); returns the final scores.

    Every config value is checked before anything starts, and the workdir is locked for the
    run (a second run there is refused, naming the first). Resuming compares the config with
    the checkpoint's: a model whose shapes changed is refused; other changes are refused unless
    allow_config_change (config_checks.RESUME_SAFE_KEYS, such as num_steps, may always change).
    However training stops (an error, Ctrl-C, a full disk), pending checkpoint saves are
    finished or removed, and the log says which checkpoint is the last complete one.
    progress=False leaves out the progress bar (a sweep's log); the log lines stay.
    """
    config_checks.check_config(config)  # before any work: one line naming a bad key
    workdir = pathlib.Path(workdir)
    with WorkdirLock(workdir, jax.process_index()):
        return _train_locked(config, workdir, allow_config_change, progress)


def _train_locked(config: ml_collections.ConfigDict, workdir: pathlib.Path, allow_config_change: bool,
                  show_progress: bool):
    is_chief = jax.process_index() == 0

    # ---------------------------------------------------------------- Mesh
    mesh = sharding.make_mesh(config.mesh)
    dp = sharding.data_parallel_size(mesh)
    accum = config.grad_accum_steps
    if config.batch_size % (dp * accum) or config.batch_size % jax.process_count():
        raise ConfigError(
            f"config.batch_size={config.batch_size} must divide over {dp} data-parallel devices "
            f"times config.grad_accum_steps={accum} micro-batches, and over {jax.process_count()} processes"
        )
    logging.info("mesh %s over %d devices (%d processes)", dict(mesh.shape), mesh.size, jax.process_count())

    # ---------------------------------------------------------------- Input pipeline
    train_source, val_source = sources.make_sources(config.data, config.seed)
    host_batch_size = config.batch_size // jax.process_count()
    train_ds = pipeline.train_dataset(
        train_source,
        config.data,
        seed=config.seed,
        batch_size=host_batch_size,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
    train_iter = iter(train_ds)
    # Every process holds the same validation patches and feeds its slice of each batch.
    val = validation_patches(config, val_source)
    p, n = jax.process_index(), jax.process_count()
    val_local = {k: v.reshape(-1, n, host_batch_size, *v.shape[1:])[:, p].reshape(-1, *v.shape[1:]) for k, v in val.items()}

    # ---------------------------------------------------------------- Model & optimizer, update step
    steps = make_steps(config, mesh)
    num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(steps.abstract_state["params"]))
    logging.info("model %s: %s parameters", config.model.name, f"{num_params:,}")

    # ---------------------------------------------------------------- Load checkpoint
    checkpointer = checkpointing.Checkpointer(
        workdir,
        every_steps=config.checkpoint_every,
        keep=config.keep_checkpoints,
        best_metric=config.best_metric or None,
    )
    writer, progress, step = None, None, None
    guards = contextlib.ExitStack()  # undone in `finally` below
    stop_if_interrupted = guards.enter_context(stop_between_steps())
    try:
        if checkpointer.has_checkpoint():
            check = resume_check(config, steps.abstract_state, allow_config_change, workdir)
            state, data_state, _ = checkpointer.restore_newest(steps.restore_target(), check)
            train_iter.set_state(data_state)
            logging.info("resumed from step %d in %s", int(state["step"]), workdir)
        else:
            state = steps.init()
            if config.init_from:
                state = warm_start(state, config.init_from, steps.state_shardings)
        if is_chief:  # only now: a refused resume must not overwrite the run's own config.json
            (workdir / "samples").mkdir(parents=True, exist_ok=True)
            (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

        # ------------------------------------------------------------ Evals
        writer = reporting.MetricWriter(workdir) if is_chief else None
        baseline = otsu_scores(val, int(config.data.channels))
        final_scores: dict[str, float] = {}

        def run_validation(step: int) -> dict[str, float]:
            scores, probs = validate(steps.eval_step, state, val_local, mesh, host_batch_size)
            scores.update(baseline)
            if is_chief:
                writer.write(step, scores)
                k = config.num_sample_images
                images = val["image"][:k, ..., :int(config.data.channels)]  # without a page-context channel
                grid = reporting.sample_grid(images, probs[:k], val["mask"][:k])
                reporting.save_png(workdir / "samples" / f"step_{step:07d}.png", grid)
                logging.info(
                    "step %d validation: F1 %.4f (Otsu %.4f), IoU %.4f, loss %.4f",
                    step, scores["val/f1"], scores["val/otsu_f1"], scores["val/iou"], scores["val/loss"],
                )
            return scores

        # ------------------------------------------------------------ Train loop
        start_step = step = int(state["step"])
        progress = tqdm.tqdm(
            total=config.num_steps, initial=start_step, desc="train", unit="step",
            disable=not (is_chief and show_progress), smoothing=0.1
        )
        pending: list[dict] = []  # device-side health of steps not yet logged (no per-step host sync)
        timer_start, timer_steps = None, 0
        for step in range(start_step + 1, config.num_steps + 1):
            stop_if_interrupted()
            batch = sharding.global_batch(next(train_iter), mesh)
            state, health = steps.train_step(state, batch)
            pending.append(health)
            timer_steps += 1
            last = step == config.num_steps
            is_eval = step % config.eval_every == 0 or last
            is_save = step % config.checkpoint_every == 0 or last
            if step % config.log_every == 0 or is_eval or is_save:
                history = jax.device_get(pending)
                pending = []
                _check_finite(step, history)  # before anything is saved
                means = {k: float(np.mean([r[k] for r in history])) for k in history[0]}
                if timer_start is not None:  # the first interval includes compilation: not timed
                    means["train/images_per_s"] = timer_steps * config.batch_size / (time.perf_counter() - timer_start)
                timer_start, timer_steps = time.perf_counter(), 0
                if is_chief:
                    writer.write(step, means)
                    progress.set_postfix(
                        loss=f"{means['train/loss']:.4f}", img_s=f"{means.get('train/images_per_s', float('nan')):.1f}"
                    )
            progress.update(1)
            if is_eval:
                final_scores = run_validation(step)
            if is_save:
                checkpointer.maybe_save(step, state, train_iter.get_state(), config, force=last)
            if is_eval and config.best_metric:
                checkpointer.save_if_best(step, state, train_iter.get_state(), config, final_scores)
            if is_eval or is_save:  # keep validation and checkpoint time out of images/s
                timer_start = time.perf_counter()
        stop_if_interrupted()
        logging.info("training done: %s", checkpointer.finish(raise_errors=True))
        if not final_scores:  # resumed after the last step: score what was restored
            final_scores = run_validation(int(state["step"]))
    except BaseException as error:
        # Whatever stopped training (a NaN, Ctrl-C, a full disk, a bug), pending saves finish
        # or are removed first, and the user learns what a rerun will resume from.
        status = checkpointer.finish()
        if step is None:  # before the first step: nothing to report about the run's progress
            raise
        status = f"stopped at step {step}; {status}"
        if isinstance(error, (TrainingDivergedError, CheckpointError)):  # printed as the one error line
            raise type(error)(f"{error}; {status}") from None
        logging.warning("training %s", status)
        raise
    finally:
        guards.close()
        if progress is not None:
            progress.close()
        if writer is not None:
            _close_quietly(writer)
        _close_quietly(train_iter)
    return dict(final_scores, num_params=num_params, step=int(state["step"]))


def _close_quietly(resource) -> None:
    """Closes a writer or iterator on the way out; a second error (a full disk) is only logged.

    Left open, their background threads (TensorBoard's writer, grain's prefetch) outlive the
    main thread and fail at interpreter shutdown with tracebacks about sys.meta_path.
    """
    close = getattr(resource, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as e:  # noqa: BLE001
        logging.warning("closing %s: %s", type(resource).__name__, e)
