"""binjax's CPU kernels stay off on GPUs and TPUs, and the models' outputs do not depend on them.

tests/test_cpu_kernels.py proves each kernel against XLA's convolution, one conv or one block at
a time; here whole models (U-Net and lite, train and eval mode, forward and gradients) are
compared with the kernels on and off, and lowered for accelerators from this CPU host, where the
kernels are built, to show that no accelerator program ever calls them. On a GPU (run by
launch/device_check.sh with JAX_PLATFORMS=cuda) the last test checks the real compiled step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from binjax import cpu_kernels
from binjax.models import create_model

# Widths in multiples of 16, so that every kernel the full-size models use applies here too
# (to-16 convs from the image, Winograd convs, their gradients and the fused eval-mode
# conv-BN-ReLU); the smoke configs' widths of 4 take none.
MODELS = {
    "unet": dict(depth=2, widths=(16, 32, 32)),
    "lite": dict(widths=(16, 32), blocks=(1, 1), head_width=8),
}
TARGETS = tuple(cpu_kernels._SYMBOLS)


def kernels_built_here() -> bool:
    return jax.default_backend() == "cpu" and cpu_kernels.available()


def loss_and_grads_fn(name: str, train: bool):
    """(graphdef, state, fn): fn(state, x) -> ((loss, (logits, new state)), grads) of a tiny model."""
    model = create_model(name, in_channels=1, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")), **MODELS[name])
    model = nnx.view(model, use_running_average=not train)
    graphdef, state = nnx.split(model)

    def loss(state, x):
        module = nnx.merge(graphdef, state)
        logits = module(x)
        return jnp.mean(jnp.sin(logits)), (logits, nnx.state(module))

    return state, jax.value_and_grad(loss, has_aux=True)


def page(seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((2, 32, 32, 1), dtype=np.float32))


def custom_calls(hlo: str) -> set[str]:
    return {target for target in TARGETS if target in hlo}


def test_the_kernels_are_allowed_on_the_cpu_backend_only(monkeypatch):
    monkeypatch.delenv(cpu_kernels.DISABLE_ENV, raising=False)
    assert cpu_kernels.allowed_on("cpu")
    for backend in ("gpu", "cuda", "rocm", "tpu", "METAL"):
        assert not cpu_kernels.allowed_on(backend), backend
    monkeypatch.setenv(cpu_kernels.DISABLE_ENV, "0")
    assert not cpu_kernels.allowed_on("cpu")


# What the CPU program of each tiny model calls where the kernels are built. The lite net takes
# none: its stem and downsampling convs have stride 2, its other convs are depthwise or 1x1.
CPU_CALLS = {
    ("unet", True): {cpu_kernels.CONV3X3_TO16, cpu_kernels.CONV3X3_WGRAD, cpu_kernels.CONV3X3_WINOGRAD,
                     cpu_kernels.CONV3X3_WINOGRAD_WGRAD},
    ("unet", False): {cpu_kernels.CONV3X3_TO16, cpu_kernels.CONV3X3_WGRAD, cpu_kernels.CONV3X3_WINOGRAD,
                      cpu_kernels.CONV3X3_WINOGRAD_WGRAD, cpu_kernels.CONV3X3_WINOGRAD_AFFINE_RELU},
    ("lite", True): set(),
    ("lite", False): set(),
}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list(MODELS))
def test_accelerator_programs_never_call_the_cpu_kernels(name, train):
    state, fn = loss_and_grads_fn(name, train)
    # One trace, taken where the kernels are built (on this CPU host, when they are): which
    # convolution runs is decided per platform when it is lowered (lax.platform_dependent).
    traced = jax.jit(fn).trace(state, page())
    for platform in ("cuda", "rocm", "tpu"):
        assert custom_calls(traced.lower(lowering_platforms=(platform,)).as_text()) == set(), platform
    if kernels_built_here():  # the same trace, lowered for this CPU, does take them
        assert custom_calls(traced.lower(lowering_platforms=("cpu",)).as_text()) == CPU_CALLS[name, train]


def test_the_compiled_step_on_this_backend_calls_them_only_on_a_cpu():
    state, fn = loss_and_grads_fn("unet", train=True)
    hlo = jax.jit(fn).lower(state, page()).compile().as_text()
    if jax.default_backend() == "cpu":
        assert bool(custom_calls(hlo)) == cpu_kernels.available()
    else:  # a GPU or TPU: the kernels are never even built
        assert not cpu_kernels.available()
        assert custom_calls(hlo) == set()


@pytest.fixture
def kernels_off(monkeypatch):
    """BINJAX_CPU_KERNELS=0 for the test: available() is read afresh, then again after it."""
    monkeypatch.setenv(cpu_kernels.DISABLE_ENV, "0")
    cpu_kernels._available_here.cache_clear()  # noqa: SLF001 -- the env var is read once
    yield
    monkeypatch.undo()
    cpu_kernels._available_here.cache_clear()  # noqa: SLF001 -- the env var is read once


@pytest.mark.skipif(not kernels_built_here(), reason="binjax's CPU kernels do not run here (not a "
                    "CPU backend, an unsupported CPU or no compiler): nothing to compare")
# The lite net is not compared: its CPU program takes none of the kernels (CPU_CALLS, asserted
# above), so it is one and the same program with them on or off.
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["unet"])
def test_outputs_and_gradients_are_the_same_with_the_kernels_on_and_off(name, train, request):
    x = page(1)
    state, fn = loss_and_grads_fn(name, train)
    assert custom_calls(jax.jit(fn).lower(state, x).as_text()) == CPU_CALLS[name, train]
    on = jax.jit(fn)(state, x)
    request.getfixturevalue("kernels_off")
    state, fn = loss_and_grads_fn(name, train)
    assert not custom_calls(jax.jit(fn).lower(state, x).as_text())
    off = jax.jit(fn)(state, x)
    (loss_on, outputs_on), grads_on = on
    (loss_off, outputs_off), grads_off = off
    # Winograd's transforms cost ~1e-5 of the largest output per conv (test_cpu_kernels.py);
    # through a few layers and their gradients that stays under 1e-4.
    for a, b in zip(jax.tree.leaves((loss_on, outputs_on)), jax.tree.leaves((loss_off, outputs_off)), strict=True):
        assert_close(a, b, 1e-4)
    for a, b in zip(jax.tree.leaves(grads_on), jax.tree.leaves(grads_off), strict=True):
        if train:
            assert_close(a, b, 1e-4)
        else:
            # In eval mode a ReLU follows each conv with no batch mean taken off in between, so a
            # 3x3 window of exact zeros (dead ReLUs) gives a pre-activation of exactly 0 under
            # XLA's direct sum but +-1e-11 under Winograd, and ReLU's gradient there (0 by
            # convention) passes or not: whole pixels' contributions differ, ~3e-3 of a gradient's
            # norm here. The values agree to 1e-4 above; the gradients to 1e-2 in norm.
            assert np.linalg.norm(a - b) <= 1e-2 * np.linalg.norm(b) + 1e-12


def assert_close(a, b, tolerance):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * max(float(np.abs(b).max()), 1e-6))
