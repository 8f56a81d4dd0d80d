"""`conv_general_dilated`: lax's convolution, with faster 3x3 convs on CPU.

A drop-in for `jax.lax.conv_general_dilated` (pass it to nnx.Conv as `conv_general_dilated=`):
parameters and checkpoints are unchanged. For the U-Net's convs (3x3, stride 1, 'SAME',
NHWC/HWIO, no groups or dilation, a multiple of 16 output channels) on CPU, binjax.cpu_kernels
computes them faster than XLA:CPU (see conv3x3.cc):
  - the kernel gradient (XLA: about 4x slower);
  - between multiples of 16 channels, by Winograd F(4x4, 3x3), the same convolution with 4x
    fewer multiplications: forward and input-gradient convs 1.1-2.4x faster than XLA's
    (XNNPACK) direct convs, kernel gradients 1.1-2.2x faster than binjax's direct one; float32
    error up to ~1e-5 of the largest output (direct sums: under 1e-6);
  - other convs to 16 channels, e.g. from an input image's 1 or 3 (XLA: 1.5-7x slower).
`conv3x3_affine_relu` also folds an eval-mode BatchNorm and ReLU into a Winograd conv's store
(layers.ConvNormAct uses it at inference): one pass over each activation fewer.
Every other case, and every other platform, is plain lax. BINJAX_WINOGRAD=0 (read when a
function is traced) keeps the direct sums: XLA's convs, and binjax's own for convs to 16
channels, as before Winograd.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from jax import lax

from binjax import cpu_kernels

_NHWC = ("NHWC", "HWIO", "NHWC")
WINOGRAD_ENV = "BINJAX_WINOGRAD"


def winograd_enabled() -> bool:
    """Whether 3x3 convs between multiples of 16 channels, and their gradients, take Winograd on
    CPU (module doc)."""
    return os.environ.get(WINOGRAD_ENV, "1") != "0" and cpu_kernels.available()


def takes_winograd(channels_in: int, channels_out: int) -> bool:
    """Whether a 3x3 'SAME' conv between these channel counts takes Winograd here (module doc)."""
    return channels_in % 16 == 0 and channels_out % 16 == 0 and winograd_enabled()


def _conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)


def _cpu_conv3x3_to16(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return cpu_kernels.conv3x3_to16(x, kernel).astype(x.dtype)


def _cpu_conv3x3_winograd(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return cpu_kernels.conv3x3_winograd(x, kernel).astype(x.dtype)


def _forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
    if takes_winograd(*kernel.shape[2:]):
        cpu = _cpu_conv3x3_winograd
    elif kernel.shape[-1] == 16:
        cpu = _cpu_conv3x3_to16
    else:
        return _conv3x3(x, kernel)
    # lowered per platform: the custom calls exist on CPU only
    return lax.platform_dependent(x, kernel, cpu=cpu, default=_conv3x3)


def _xla_weight_grad(x: jax.Array, g: jax.Array, kernel: jax.Array) -> jax.Array:
    _, vjp = jax.vjp(lambda k: _conv3x3(x, k), kernel)
    return vjp(g)[0]


def _cpu_weight_grad(x: jax.Array, g: jax.Array, kernel: jax.Array) -> jax.Array:
    if takes_winograd(x.shape[-1], g.shape[-1]):
        return cpu_kernels.conv3x3_winograd_weight_grad(x, g).astype(kernel.dtype)
    return cpu_kernels.conv3x3_weight_grad(x, g).astype(kernel.dtype)


@jax.custom_vjp
def conv3x3_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3 convolution, stride 1, zero 'SAME' padding; x [N,H,W,C], kernel [3,3,C,O]."""
    return _forward(x, kernel)


def _conv3x3_fwd(x, kernel):
    return _forward(x, kernel), (x, kernel)


def _conv3x3_bwd(residuals, g):
    x, kernel = residuals
    # The input gradient is the 'SAME' conv of g with the kernel flipped in space and its
    # channel axes swapped (what XLA's own transpose rule builds).
    dx = _forward(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
    dk = lax.platform_dependent(x, g, kernel, cpu=_cpu_weight_grad, default=_xla_weight_grad)
    return dx, dk


conv3x3_same.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _affine_relu_reference(x, kernel, scale, shift):
    return jax.nn.relu(conv3x3_same(x, kernel) * scale + shift)


def _cpu_affine_relu(x, kernel, scale, shift):
    return cpu_kernels.conv3x3_winograd_affine_relu(x, kernel, scale, shift).astype(x.dtype)


@jax.custom_vjp
def _fused_affine_relu(x, kernel, scale, shift):
    return lax.platform_dependent(x, kernel, scale, shift, cpu=_cpu_affine_relu, default=_affine_relu_reference)


def _fused_affine_relu_fwd(x, kernel, scale, shift):
    return _fused_affine_relu(x, kernel, scale, shift), (x, kernel, scale, shift)


def _fused_affine_relu_bwd(residuals, g):
    # Rarely needed (a frozen BatchNorm): the unfused layers' gradient, forward recomputed.
    return jax.vjp(_affine_relu_reference, *residuals)[1](g)


_fused_affine_relu.defvjp(_fused_affine_relu_fwd, _fused_affine_relu_bwd)


def conv3x3_affine_relu(x: jax.Array, kernel: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """relu(conv3x3_same(x, kernel) * scale + shift), scale and shift [O]: a 3x3 conv followed by
    an eval-mode BatchNorm and ReLU, as one Winograd call that applies the affine map and ReLU
    as it stores (one pass over the output fewer). Only where takes_winograd(C, O)."""
    if not takes_winograd(*kernel.shape[2:]):
        raise ValueError(f"conv3x3_affine_relu: no fused {kernel.shape[2]} -> {kernel.shape[3]} "
                         "channel conv here (see takes_winograd)")
    return _fused_affine_relu(x, kernel, scale, shift)


def _is_conv3x3_same(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                     feature_group_count) -> bool:
    if lhs.ndim != 4 or rhs.shape[:2] != (3, 3) or rhs.shape[-1] % 16 or feature_group_count != 1:
        return False
    if tuple(window_strides) != (1, 1) or any(tuple(d or (1, 1)) != (1, 1) for d in (lhs_dilation, rhs_dilation)):
        return False
    same = padding == "SAME" or (not isinstance(padding, str) and tuple(map(tuple, padding)) == ((1, 1), (1, 1)))
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    return same and nhwc == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None, out_sharding=None):
    """`jax.lax.conv_general_dilated`, taking the fast 3x3 path when it applies (see module doc)."""
    fast = (cpu_kernels.available() and batch_group_count == 1 and precision is None
            and preferred_element_type is None and out_sharding is None
            and _is_conv3x3_same(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                 dimension_numbers, feature_group_count))
    if fast:
        return conv3x3_same(lhs, rhs)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type, out_sharding=out_sharding)
