"""Inference-speed rewrites of the layers equal the plain layers: eval-mode BatchNorm folded into
the preceding matmul / depthwise / small-input conv weights, and the few-input-channel 3x3 conv
(LiteUNet's stem) as shifted multiply-adds, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from binjax.models import batch_norm, create_model, layers


def _randomise_batch_norms(model, seed=0):
    """Running statistics and affine parameters far from their init, so that a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for _, m in nnx.iter_graph(model):
        if isinstance(m, batch_norm.BatchNorm):
            c = m.num_features
            m.mean[...] = jnp.asarray(rng.normal(0, 0.5, c), jnp.float32)
            m.var[...] = jnp.asarray(rng.uniform(0.2, 3.0, c), jnp.float32)
            m.scale[...] = jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32)
            m.bias[...] = jnp.asarray(rng.normal(0, 0.5, c), jnp.float32)


@pytest.mark.parametrize("channels,stride,size", [(1, 2, (9, 12)), (3, 1, (7, 10))])
def test_few_input_conv_matches_lax_values_and_gradients(channels, stride, size):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.random((2, *size, channels)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, channels, 6)), jnp.float32)

    def reference(x, k):
        return jax.lax.conv_general_dilated(x, k, (stride, stride), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def fast(x, k):
        return layers.conv3x3_few_inputs(x, k, stride)

    np.testing.assert_allclose(fast(x, kernel), reference(x, kernel), rtol=1e-5, atol=1e-5)
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
    grads = [jax.jit(jax.grad(loss(f), (0, 1)))(x, kernel) for f in (fast, reference)]
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _plain_layers(monkeypatch):
    """The layers as written: no BatchNorm folds, the stem through nnx.Conv."""
    monkeypatch.setattr(layers, "eval_affine", lambda norm: None)
    monkeypatch.setattr(layers, "FEW_INPUT_CHANNELS", 0)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_lite_eval_mode_with_folds_equals_plain_layers(in_channels, monkeypatch):
    model = create_model("lite", in_channels=in_channels, widths=(8, 16), blocks=(1, 1), head_width=4,
                         rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
    _randomise_batch_norms(model)
    model.eval()
    x = jnp.asarray(np.random.default_rng(2).random((2, 24, 40, in_channels)), jnp.float32)
    folded = np.asarray(jax.jit(lambda x: model(x))(x))
    with monkeypatch.context() as patch:
        _plain_layers(patch)
        plain = np.asarray(jax.jit(lambda x: model(x))(x))
    assert np.abs(plain).max() > 0.1  # a real signal, not all zeros
    np.testing.assert_allclose(folded, plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())


def test_train_mode_never_folds_and_matches_plain_layers(monkeypatch):
    """Train mode normalises with the batch's statistics: nothing to fold, the stem's values and
    the gradients are the plain layers' up to rounding."""
    model = create_model("lite", in_channels=1, widths=(4, 8), blocks=(1, 1), head_width=4,
                         rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
    x = jnp.asarray(np.random.default_rng(3).random((2, 16, 16, 1)), jnp.float32)
    graphdef, state = nnx.split(model)

    def loss(state):
        return jnp.mean(nnx.merge(graphdef, state)(x) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(state)
    with monkeypatch.context() as patch:
        _plain_layers(patch)
        plain_value, plain_grads = jax.jit(jax.value_and_grad(loss))(state)
    np.testing.assert_allclose(value, plain_value, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(plain_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
