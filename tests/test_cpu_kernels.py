"""The hand-written CPU kernel (binjax/cpu_kernels) against XLA's own convolution gradients."""

import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from binjax import cpu_kernels
from binjax.models import convolution

pytestmark = [
    pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None,
                       reason="no C++ compiler to build binjax.cpu_kernels"),
    pytest.mark.skipif(not cpu_kernels.cpu_is_supported(),
                       reason="binjax.cpu_kernels are written for x86 AVX2/AVX-512 (XLA's convs elsewhere)"),
]

NHWC = ("NHWC", "HWIO", "NHWC")
WEIGHT_GRADS = (cpu_kernels.CONV3X3_WGRAD, cpu_kernels.CONV3X3_WINOGRAD_WGRAD)


def xla_conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC)


def xla_weight_grad(x, g):
    kernel = jnp.zeros((3, 3, x.shape[-1], g.shape[-1]), x.dtype)
    return jax.vjp(lambda k: xla_conv(x, k), kernel)[1](g)[0]


def numpy_conv_taps(x):
    """x [N,H,W,C] in float64, zero-padded by one pixel: the nine shifted views a 3x3 'SAME'
    conv reads, as (ky, kx, view)."""
    n, h, w, _ = x.shape
    padded = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return [(ky, kx, padded[:, ky:ky + h, kx:kx + w]) for ky in range(3) for kx in range(3)]


def numpy_conv(x, k):
    """A float64 numpy 3x3 'SAME' conv: an independent reference for the kernels."""
    k = np.asarray(k, np.float64)
    return sum(np.einsum("nhwc,co->nhwo", view, k[ky, kx]) for ky, kx, view in numpy_conv_taps(x))


def numpy_weight_grad(x, g):
    g = np.asarray(g, np.float64)
    dk = np.zeros((3, 3, x.shape[-1], g.shape[-1]))
    for ky, kx, view in numpy_conv_taps(x):
        dk[ky, kx] = np.einsum("nhwc,nhwo->co", view, g)
    return dk


def random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def test_kernels_build_here():
    assert cpu_kernels.available()


# Channel counts cover every register blocking of the kernel (C divisible by 16/8/4/2/1; O by
# 64/32/16), one-pixel-wide images and odd sizes.
@pytest.mark.parametrize("n,h,w,c,o", [
    (2, 9, 7, 1, 16), (1, 5, 6, 3, 32), (3, 8, 8, 16, 16), (2, 6, 5, 6, 48), (1, 7, 9, 32, 64),
    (2, 4, 4, 24, 128), (1, 1, 1, 8, 16), (1, 3, 1, 4, 80),
])
def test_weight_grad_matches_xla(n, h, w, c, o):
    x, g = random((n, h, w, c), 0), random((n, h, w, o), 1)
    got = jax.jit(cpu_kernels.conv3x3_weight_grad)(x, g)
    want = xla_weight_grad(x, g)
    assert got.shape == (3, 3, c, o)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * float(jnp.abs(want).max()))


# C = 1, 3, 16, 32 are compiled for their own channel count, 5 and 48 take the generic loop;
# widths below and above the 12-pixel block, one-pixel images.
@pytest.mark.parametrize("n,h,w,c", [
    (2, 9, 7, 1), (1, 6, 13, 3), (3, 8, 25, 16), (2, 5, 12, 32), (1, 7, 9, 5), (2, 4, 4, 48), (1, 1, 1, 16),
])
def test_conv_to_16_channels_matches_xla(n, h, w, c):
    x, k = random((n, h, w, c), 10), random((3, 3, c, 16), 11)
    got = jax.jit(cpu_kernels.conv3x3_to16)(x, k)
    want = xla_conv(x, k)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * float(jnp.abs(want).max()))


def test_the_float64_references_agree_with_xla():
    x, k, g = random((2, 5, 7, 4), 20), random((3, 3, 4, 6), 21), random((2, 5, 7, 6), 22)
    np.testing.assert_allclose(numpy_conv(x, k), xla_conv(x, k), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(numpy_weight_grad(x, g), xla_weight_grad(x, g), rtol=1e-5, atol=1e-5)


# Winograd F(4x4, 3x3): heights and widths not a multiple of the 4-pixel tile, one-pixel images,
# output channels in 32-wide blocks and a 16-wide rest (48, 80), and images of more tiles than
# one group holds (90 tiles in groups of 24; 208 in groups of 96 for the kernel gradient).
@pytest.mark.parametrize("n,h,w,c,o", [
    (2, 9, 7, 16, 16), (1, 1, 1, 16, 32), (3, 6, 13, 32, 48), (1, 4, 8, 48, 80), (1, 40, 36, 64, 256),
    (1, 5, 6, 256, 256),
])
def test_winograd_conv_matches_a_float64_conv(n, h, w, c, o):
    x, k = random((n, h, w, c), 14), random((3, 3, c, o), 15) / np.sqrt(9 * c)
    got = np.asarray(jax.jit(cpu_kernels.conv3x3_winograd)(x, k))
    want = numpy_conv(x, k)
    # F(4x4, 3x3)'s transforms cost accuracy: ~1e-5 of the largest output at worst, against
    # under 1e-6 for XLA's direct float32 sum (measured up to 1.2e-5 at 256 -> 256 channels).
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-5 * np.abs(want).max())


@pytest.mark.parametrize("n,h,w,c,o", [
    (2, 9, 7, 16, 16), (1, 1, 1, 16, 32), (3, 6, 13, 32, 48), (2, 64, 52, 16, 256), (1, 5, 6, 256, 256),
])
def test_winograd_weight_grad_matches_a_float64_gradient(n, h, w, c, o):
    x, g = random((n, h, w, c), 16), random((n, h, w, o), 17)
    got = np.asarray(jax.jit(cpu_kernels.conv3x3_winograd_weight_grad)(x, g))
    want = numpy_weight_grad(x, g)
    assert got.shape == (3, 3, c, o)
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-5 * np.abs(want).max())


def test_winograd_conv_with_affine_relu_folds_an_eval_batch_norm():
    x, k = random((2, 9, 7, 16), 30), random((3, 3, 16, 48), 31) / 12
    scale, shift = random((48,), 32), random((48,), 33)
    got = np.asarray(jax.jit(cpu_kernels.conv3x3_winograd_affine_relu)(x, k, scale, shift))
    want = np.maximum(numpy_conv(x, k) * np.asarray(scale) + np.asarray(shift), 0)
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-5 * np.abs(want).max())
    assert (got == 0).mean() > 0.3  # the ReLU did clip
    # a NaN stays a NaN, as jax.nn.relu keeps it
    nan_shift = shift.at[5].set(jnp.nan)
    got = np.asarray(cpu_kernels.conv3x3_winograd_affine_relu(x, k, scale, nan_shift))
    assert np.isnan(got[..., 5]).all() and not np.isnan(np.delete(got, 5, axis=-1)).any()


def test_eval_mode_conv_norm_relu_runs_as_one_call_with_the_same_values_and_gradients(monkeypatch):
    from binjax.models import layers

    block = layers.ConvNormAct(16, 32, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(34)
    block.norm.mean[...] = jnp.asarray(rng.normal(0, 0.3, 32), jnp.float32)
    block.norm.var[...] = jnp.asarray(rng.uniform(0.5, 2, 32), jnp.float32)
    block.norm.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, 32), jnp.float32)
    block.norm.bias[...] = jnp.asarray(rng.normal(0, 0.3, 32), jnp.float32)
    x = random((2, 12, 10, 16), 35)
    eval_block = nnx.view(block, use_running_average=True)
    train_block = nnx.view(block, use_running_average=False)

    def run(module):
        graphdef, state = nnx.split(module)

        def loss(state, x):
            y = nnx.merge(graphdef, state)(x)
            return jnp.sum(jnp.sin(y)), y

        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        return fn(state, x), fn.lower(state, x).compile().as_text()

    (fused, hlo) = run(eval_block)
    assert cpu_kernels.CONV3X3_WINOGRAD_AFFINE_RELU in hlo
    assert cpu_kernels.CONV3X3_WINOGRAD_AFFINE_RELU not in run(train_block)[1]
    monkeypatch.setattr(layers.ConvNormAct, "_folds_into_conv", lambda self, x: False)
    (plain, plain_hlo) = run(eval_block)
    assert cpu_kernels.CONV3X3_WINOGRAD_AFFINE_RELU not in plain_hlo
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


@pytest.mark.parametrize("weight_grad", [cpu_kernels.conv3x3_weight_grad, cpu_kernels.conv3x3_winograd_weight_grad])
def test_weight_grads_are_the_same_bits_on_every_call(weight_grad):
    # the images are shared out over threads; the sum must not depend on which thread took which
    x, g = random((8, 40, 36, 16), 40), random((8, 40, 36, 32), 41)
    fn = jax.jit(weight_grad)
    first = np.asarray(fn(x, g))
    for _ in range(10):
        np.testing.assert_array_equal(np.asarray(fn(x, g)), first)


def test_winograd_kernels_take_empty_batches():
    x, k = jnp.zeros((0, 5, 5, 16)), random((3, 3, 16, 32), 1)
    assert jax.jit(cpu_kernels.conv3x3_winograd)(x, k).shape == (0, 5, 5, 32)
    dk = jax.jit(cpu_kernels.conv3x3_winograd_weight_grad)(x, jnp.zeros((0, 5, 5, 32)))
    np.testing.assert_array_equal(dk, np.zeros((3, 3, 16, 32)))


def test_winograd_kernels_reject_channels_they_are_not_blocked_for():
    with pytest.raises(ValueError, match="multiples of 16 channels, got 8 -> 16"):
        cpu_kernels.conv3x3_winograd(random((1, 4, 4, 8), 0), random((3, 3, 8, 16), 1))
    with pytest.raises(ValueError, match="multiples of 16 channels, got 16 -> 24"):
        cpu_kernels.conv3x3_winograd_weight_grad(random((1, 4, 4, 16), 0), random((1, 4, 4, 24), 1))


@pytest.mark.parametrize("conv,c,o", [(cpu_kernels.conv3x3_to16, 3, 16), (cpu_kernels.conv3x3_winograd, 16, 32)])
def test_forward_convs_under_a_mesh_keep_the_batch_split(conv, c, o):
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x, k = random((8, 12, 10, c), 12), random((3, 3, c, o), 13)
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    fn = jax.jit(conv)
    got = fn(xs, jax.device_put(k, NamedSharding(mesh, P())))
    np.testing.assert_allclose(got, xla_conv(x, k), rtol=2e-5, atol=2e-4)
    assert got.sharding.spec[0] == "data"
    hlo = fn.lower(xs, k).compile().as_text()
    assert "all-gather" not in hlo and "all-reduce" not in hlo
    assert cpu_kernels.flops_in(hlo) * mesh.size == 2 * 9 * 8 * 12 * 10 * c * o  # the direct conv's


@pytest.mark.parametrize("weight_grad", [cpu_kernels.conv3x3_weight_grad, cpu_kernels.conv3x3_winograd_weight_grad])
@pytest.mark.parametrize("axes,shape,spec", [
    (("data",), (8,), P("data")),
    (("data", "fsdp"), (4, 2), P(("data", "fsdp"))),
    (("data", "fsdp"), (4, 2), P("data")),  # batch split over 'data' only: 'fsdp' pairs agree
])
def test_weight_grad_under_a_mesh_splits_the_batch(axes, shape, spec, weight_grad):
    mesh = jax.make_mesh(shape, axes, axis_types=(jax.sharding.AxisType.Auto,) * len(axes))
    x, g = random((8, 12, 10, 16), 2), random((8, 12, 10, 32), 3)
    batch = NamedSharding(mesh, spec)
    xs, gs = jax.device_put(x, batch), jax.device_put(g, batch)
    fn = jax.jit(weight_grad)
    got = fn(xs, gs)
    want = xla_weight_grad(x, g)
    winograd = weight_grad is cpu_kernels.conv3x3_winograd_weight_grad
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=3e-5 * float(jnp.abs(want).max()) if winograd else 1e-4)
    assert got.sharding.is_fully_replicated
    hlo = fn.lower(xs, gs).compile().as_text()
    # each device works on its own images: no activation is gathered, one all-reduce adds them
    assert "all-gather" not in hlo
    assert hlo.count("all-reduce(") == 1
    assert "f32[1,12,10,16]" in hlo
    # benchmarks add the custom call's FLOPs, which XLA's cost analysis counts as 0
    assert cpu_kernels.flops_in(hlo) * mesh.size == 2 * 9 * 8 * 12 * 10 * 16 * 32


def loss_and_grads(conv, x, k):
    return jax.jit(jax.value_and_grad(lambda x, k: jnp.sum(jnp.sin(conv(x, k, (1, 1), "SAME", dimension_numbers=NHWC))),
                                      (0, 1)))(x, k)


# (8 -> 32): kernel gradient only; (1 -> 16): and the forward pass (to 16 channels); (16 -> 16),
# (16 -> 32), (32 -> 48): all three by Winograd.
@pytest.mark.parametrize("c,o", [(8, 32), (1, 16), (16, 16), (16, 32), (32, 48)])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_drop_in_conv_matches_lax(dtype, c, o):
    x, k = random((2, 10, 12, c), 4).astype(dtype), random((3, 3, c, o), 5).astype(dtype)
    got = loss_and_grads(convolution.conv_general_dilated, x, k)
    want = loss_and_grads(jax.lax.conv_general_dilated, x, k)
    winograd = c % 16 == 0
    tol = 2e-2 if dtype == jnp.bfloat16 else 1e-4 if winograd else 1e-5
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=tol,
                                   atol=tol * float(jnp.abs(b.astype(jnp.float32)).max()))


def test_drop_in_conv_takes_the_kernels_only_for_3x3_same_stride_1():
    def uses_kernel(x, k, target=None, **kw):
        def loss(x, k):
            return jnp.sum(convolution.conv_general_dilated(x, k, dimension_numbers=NHWC, **kw) ** 2)
        hlo = jax.jit(jax.grad(loss, (0, 1))).lower(x, k).as_text()
        return any(t in hlo for t in ([target] if target else WEIGHT_GRADS))

    to16 = dict(window_strides=(1, 1), padding="SAME", target=cpu_kernels.CONV3X3_TO16)
    winograd = dict(to16, target=cpu_kernels.CONV3X3_WINOGRAD)
    assert uses_kernel(random((1, 8, 8, 3), 6), random((3, 3, 3, 16), 7), **to16)
    assert not uses_kernel(random((1, 8, 8, 16), 6), random((3, 3, 16, 16), 7), **to16)
    assert uses_kernel(random((1, 8, 8, 16), 6), random((3, 3, 16, 16), 7), **winograd)
    assert uses_kernel(random((1, 8, 8, 32), 6), random((3, 3, 32, 48), 7), **winograd)
    winograd_wgrad = dict(to16, target=cpu_kernels.CONV3X3_WINOGRAD_WGRAD)
    assert uses_kernel(random((1, 8, 8, 32), 6), random((3, 3, 32, 48), 7), **winograd_wgrad)
    assert not uses_kernel(random((1, 8, 8, 3), 6), random((3, 3, 3, 16), 7), **winograd_wgrad)
    assert not uses_kernel(random((1, 8, 8, 8), 6), random((3, 3, 8, 32), 7), **winograd)  # C % 16

    x = random((1, 8, 8, 16), 6)
    assert uses_kernel(x, random((3, 3, 16, 16), 7), window_strides=(1, 1), padding="SAME")
    assert uses_kernel(x, random((3, 3, 16, 16), 7), window_strides=(1, 1), padding=((1, 1), (1, 1)))
    assert not uses_kernel(x, random((3, 3, 16, 16), 7), window_strides=(2, 2), padding="SAME")
    assert not uses_kernel(x, random((3, 3, 16, 16), 7), window_strides=(1, 1), padding="VALID")
    assert not uses_kernel(x, random((5, 5, 16, 16), 7), window_strides=(1, 1), padding="SAME")
    assert not uses_kernel(x, random((3, 3, 16, 8), 7), window_strides=(1, 1), padding="SAME")  # O % 16
    assert not uses_kernel(x, random((3, 3, 4, 16), 7), window_strides=(1, 1), padding="SAME",
                           feature_group_count=4)


def test_winograd_off_keeps_the_direct_convs(monkeypatch):
    monkeypatch.setenv(convolution.WINOGRAD_ENV, "0")
    x, k = random((1, 8, 8, 16), 6), random((3, 3, 16, 32), 7)
    hlo = jax.jit(jax.grad(lambda x, k: jnp.sum(convolution.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=NHWC) ** 2), (0, 1))).lower(x, k).as_text()
    assert cpu_kernels.CONV3X3_WINOGRAD not in hlo and cpu_kernels.CONV3X3_WINOGRAD_WGRAD not in hlo
    assert cpu_kernels.CONV3X3_TO16 in hlo  # the input gradient, to 16 channels
    assert cpu_kernels.CONV3X3_WGRAD in hlo


def test_model_conv_layers_train_like_flax_conv():
    """A ConvNormAct's nnx.Conv with the drop-in gives flax's plain nnx.Conv values and gradients."""
    from binjax.models import layers

    block = layers.ConvNormAct(8, 16, norm="none", rngs=nnx.Rngs(0))
    plain = nnx.Conv(8, 16, (3, 3), padding="SAME", kernel_init=layers.he_normal, rngs=nnx.Rngs(0))
    assert block.conv.conv_general_dilated is convolution.conv_general_dilated
    np.testing.assert_array_equal(block.conv.kernel[...], plain.kernel[...])  # same init
    x = random((2, 16, 16, 8), 8)

    def grads(conv):
        return nnx.grad(lambda m: jnp.mean((m(x) - 0.3) ** 2))(conv)

    got, want = grads(block.conv), grads(plain)
    np.testing.assert_allclose(got.kernel[...], want.kernel[...], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.bias[...], want.bias[...], rtol=1e-5, atol=1e-7)


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **env})


CHECK = """
from binjax import cpu_kernels
from binjax.models import convolution, layers
from flax import nnx
import jax, jax.numpy as jnp
x, k = jnp.ones((1, 6, 6, 16)), jnp.ones((3, 3, 16, 16))
g = jax.grad(lambda k: convolution.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')).sum())(k)
print('available', cpu_kernels.available(), float(g[1, 1, 0, 0]))
block = nnx.view(layers.ConvNormAct(16, 16, rngs=nnx.Rngs(0)), use_running_average=True)
print('eval block', block(x).shape)  # fused with the kernels, the plain layers without
"""


@pytest.mark.parametrize("env", [{"CXX": "no-such-compiler"}, {"BINJAX_CPU_KERNELS": "0"}])
def test_without_the_kernel_xla_computes_the_same_gradient(env, tmp_path):
    result = run_python(CHECK, BINJAX_CACHE_DIR=str(tmp_path), **env)
    assert result.returncode == 0, result.stderr
    assert "available False 36.0" in result.stdout  # the centre tap sums x over all 6x6 pixels
    assert "eval block (1, 6, 6, 16)" in result.stdout
    if "CXX" in env:
        assert "no C++ compiler" in result.stderr


def test_a_fresh_cache_compiles_once_then_reuses_the_library(tmp_path):
    first = run_python(CHECK, BINJAX_CACHE_DIR=str(tmp_path))
    assert "available True 36.0" in first.stdout, first.stderr
    libraries = list((tmp_path / "cpu_kernels").glob("*.so"))
    assert len(libraries) == 1
    mtime = libraries[0].stat().st_mtime_ns
    second = run_python(CHECK, BINJAX_CACHE_DIR=str(tmp_path))
    assert "available True 36.0" in second.stdout, second.stderr
    assert list((tmp_path / "cpu_kernels").glob("*")) == libraries  # no rebuild, no leftovers
    assert libraries[0].stat().st_mtime_ns == mtime
