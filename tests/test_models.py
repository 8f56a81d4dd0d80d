"""Models: registry, fully-convolutional shapes, modes, dropout rngs, sizes, bf16, sharded BatchNorm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from binjax.models import MODELS, check_model_config, count_params, create_model, layers

# Tiny versions of every registered model, so each test compiles in a blink.
TINY = {
    "unet": dict(depth=2, widths=(4, 4, 4)),  # equal widths: fewer distinct shapes to compile
    "lite": dict(widths=(4, 4), blocks=(1, 1), head_width=4),
    "sae": dict(depth=2, width=4, kernel_size=3),
}


def key(seed=0):
    # The 'rbg' PRNG: on XLA:CPU each threefry-based initializer compiles for 1-3 s per distinct
    # parameter shape, which made building a tiny U-Net take ~30 s; rbg builds it in ~4 s.
    return jax.random.key(seed, impl="rbg")


def tiny(name, in_channels=1, seed=0, **kwargs):
    return create_model(name, in_channels=in_channels, rngs=nnx.Rngs(key(seed)),
                        **{**TINY[name], **kwargs})


def full_size_params(name, in_channels=1):
    """Parameter count of a default-size model, from shapes only (nothing is initialised)."""
    abstract = nnx.eval_shape(lambda: create_model(name, in_channels=in_channels, rngs=nnx.Rngs(0)))
    return count_params(abstract)


def batch(n, h, w, c, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, h, w, c), dtype=np.float32))


# One jitted call per (model structure, input shape): eager op-by-op calls compile every
# primitive separately and were ~4x slower here. nnx.jit also carries BatchNorm updates back.
forward = nnx.jit(lambda model, x: model(x))
forward_with_rngs = nnx.jit(lambda model, x, rngs: model(x, rngs=rngs))


@pytest.fixture(scope="module")
def grey_models():
    """One tiny 1-channel model per registered name, shared by the tests below (each test sets
    the mode it needs)."""
    return {name: tiny(name) for name in MODELS}


def test_tiny_covers_registry():
    assert set(TINY) == set(MODELS)


# ---------------------------------------------------------------- registry
def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="unknown model 'unetx'") as err:
        create_model("unetx", in_channels=1, rngs=nnx.Rngs(0))
    for name in MODELS:
        assert name in str(err.value)


def test_unknown_kwarg_names_model_and_valid_kwargs():
    with pytest.raises(ValueError, match="model 'unet' has no argument") as err:
        create_model("unet", in_channels=1, rngs=nnx.Rngs(0), base_widht=8)
    assert "base_widht" in str(err.value) and "base_width" in str(err.value)
    with pytest.raises(ValueError, match="'lite'"):
        check_model_config("lite", {"depth": 3})
    check_model_config("sae", {"width": 8, "kernel_size": 3})  # valid: no error


def test_bad_in_channels_and_input(grey_models):
    with pytest.raises(ValueError, match="in_channels"):
        create_model("unet", in_channels=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="3 channels"):
        grey_models["unet"](batch(1, 16, 16, 3))
    with pytest.raises(ValueError, match="NHWC"):
        grey_models["unet"](batch(1, 16, 16, 1)[0])


# ---------------------------------------------------------------- every model
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fully_convolutional_logits(name, grey_models):
    # Scenic-style: the same model (same parameter count) maps any H x W, odd sizes included,
    # to logits of exactly that size; 1- and 3-channel inputs.
    for channels in (1, 3):
        model = grey_models[name] if channels == 1 else tiny(name, channels)
        count = count_params(model)
        model.eval()
        for h, w in [(33, 47), (64, 64)] if channels == 1 else [(33, 47)]:
            logits = forward(model, batch(2, h, w, channels))
            assert logits.shape == (2, h, w, 1)
            assert logits.dtype == jnp.float32
            assert bool(jnp.all(jnp.isfinite(logits)))
        assert count_params(model) == count


@pytest.mark.parametrize("name", sorted(MODELS))
def test_train_and_eval_modes_differ_and_train_updates_stats(name, grey_models):
    model = grey_models[name]
    x = batch(2, 64, 64, 1)  # the eval pass reuses the compile of the test above
    stats_before = jax.tree.map(jnp.copy, nnx.state(model, nnx.BatchStat))
    model.train()
    y_train = forward(model, x)
    stats_after = nnx.state(model, nnx.BatchStat)
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), stats_before, stats_after)
    assert max(jax.tree.leaves(moved)) > 0, "train mode must update BatchNorm running statistics"
    model.eval()
    y_eval = forward(model, x)
    assert float(jnp.max(jnp.abs(y_train - y_eval))) > 1e-4
    np.testing.assert_array_equal(forward(model, x), y_eval)  # eval mode leaves the stats alone


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dropout_draws_from_call_rngs(name, grey_models):
    model = grey_models[name]
    # Same model with dropout switched on (rate is a static attribute: no rebuild needed).
    model.set_attributes(nnx.Dropout, rate=0.5)
    try:
        model.train()
        x = batch(2, 32, 32, 1)
        step_key = key(1)
        a = forward_with_rngs(model, x, nnx.Rngs(dropout=jax.random.fold_in(step_key, 1)))
        b = forward_with_rngs(model, x, nnx.Rngs(dropout=jax.random.fold_in(step_key, 1)))
        c = forward_with_rngs(model, x, nnx.Rngs(dropout=jax.random.fold_in(step_key, 2)))
        np.testing.assert_array_equal(a, b)  # same key, same mask
        assert float(jnp.max(jnp.abs(a - c))) > 0  # another step, another mask
        with pytest.raises(ValueError, match="no rngs were passed"):
            forward(model, x)  # raises while tracing: nothing is compiled
        model.eval()  # no dropout: the rngs no longer matter
        np.testing.assert_array_equal(
            forward_with_rngs(model, x, nnx.Rngs(dropout=jax.random.fold_in(step_key, 1))),
            forward_with_rngs(model, x, nnx.Rngs(dropout=jax.random.fold_in(step_key, 2))))
    finally:
        model.set_attributes(nnx.Dropout, rate=0.0)


def test_dropout_rate_is_a_constructor_argument():
    for name in MODELS:
        model = nnx.eval_shape(lambda: tiny(name, dropout=0.3))
        assert [m.rate for _, m in nnx.iter_modules(model) if isinstance(m, nnx.Dropout)] != []
        assert all(m.rate == 0.3 for _, m in nnx.iter_modules(model) if isinstance(m, nnx.Dropout))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bfloat16_compute_float32_params(name):
    # Shapes and the traced program are enough here: nothing is initialised or compiled.
    model16 = nnx.eval_shape(lambda: tiny(name, dtype=jnp.bfloat16))
    for leaf in jax.tree.leaves(nnx.state(model16, nnx.Param)):
        assert leaf.dtype == jnp.float32
    model16.eval()
    x = batch(2, 64, 64, 1)
    graphdef, state = nnx.split(model16)
    apply = lambda s, x: nnx.merge(graphdef, s)(x)
    jaxpr = jax.make_jaxpr(apply)(state, x)
    conv_dtypes = {str(eqn.invars[0].aval.dtype) for eqn in jaxpr.jaxpr.eqns
                   if eqn.primitive.name in ("conv_general_dilated", "dot_general")}
    assert conv_dtypes == {"bfloat16"}, conv_dtypes
    assert jax.eval_shape(apply, state, x).dtype == jnp.float32  # logits come back float32


def test_bfloat16_is_a_rounding_of_float32(grey_models):
    model32 = grey_models["unet"]
    model16 = tiny("unet", dtype=jnp.bfloat16)
    nnx.update(model16, nnx.state(model32))  # same weights and statistics, only the dtype differs
    model16.eval()
    model32.eval()
    x = batch(2, 64, 64, 1)
    y16, y32 = forward(model16, x), forward(model32, x)
    scale = float(jnp.max(jnp.abs(y32)))
    err = float(jnp.max(jnp.abs(y16 - y32)))
    assert 0 < err < 0.1 * scale + 0.05  # bf16 rounding, not a different function


# ---------------------------------------------------------------- U-Net
def unet_param_count(in_channels, widths):
    """Two bias-free 3x3 convs + BatchNorm (scale, bias) per level, 2x2 transposed convs with
    bias up, decoder convs seeing [upsampled, skip], a 1x1 head with bias."""
    def double_conv(cin, cout):
        return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout
    total, cin = 0, in_channels
    for w in widths:  # encoder levels and bottleneck
        total += double_conv(cin, w)
        cin = w
    for deep, w in zip(reversed(widths[1:]), reversed(widths[:-1])):
        total += 4 * deep * w + w + double_conv(2 * w, w)
    return total + widths[0] + 1


def test_unet_default_parameter_count():
    expected = unet_param_count(1, [16, 32, 64, 128, 256])
    assert full_size_params("unet") == expected
    # The PyTorch reference has ~1.94M: the same layout plus 1,472 conv biases (redundant
    # before BatchNorm, dropped here).
    assert expected + 2 * (16 + 32 + 64 + 128) * 2 + 2 * 256 == 1_943_761
    assert 1.93e6 < expected < 1.95e6


def test_unet_widths_override_base_width():
    model = nnx.eval_shape(lambda: create_model("unet", in_channels=3, rngs=nnx.Rngs(0), depth=2,
                                                widths=(4, 6, 10)))
    assert count_params(model) == unet_param_count(3, [4, 6, 10])
    with pytest.raises(ValueError, match="depth \\+ 1"):
        create_model("unet", in_channels=1, rngs=nnx.Rngs(0), depth=3, widths=(4, 8))


@pytest.mark.parametrize("kwargs", [
    dict(skips=False), dict(upsample="resize", norm="group", pad_mode="edge"), dict(norm="none"),
])
def test_unet_variants_build_and_run(kwargs, grey_models):
    model = tiny("unet", **kwargs)
    model.eval()
    logits = forward(model, batch(1, 21, 30, 1))
    assert logits.shape == (1, 21, 30, 1) and bool(jnp.all(jnp.isfinite(logits)))
    if not kwargs.get("skips", True):
        # Without skips the decoder convs see only the upsampled features: fewer weights.
        assert count_params(model) < count_params(grey_models["unet"])


def test_unknown_option_values_raise():
    with pytest.raises(ValueError, match="head must be one of"):
        tiny("lite", head="subpixel")
    with pytest.raises(ValueError, match="norm="):
        tiny("unet", norm="layer")
    with pytest.raises(ValueError, match="upsample="):
        tiny("unet", upsample="pixelshuffle")


# ---------------------------------------------------------------- lite / sae sizes
def test_lite_default_is_small():
    for channels in (1, 3):
        assert full_size_params("lite", channels) <= 300_000


def test_space_to_depth_keeps_each_pixel_and_depth_to_space_undoes_it():
    from binjax.models import lite  # noqa: PLC0415

    x = np.random.default_rng(0).random((2, 6, 8, 3), dtype=np.float32)
    blocks = np.asarray(lite.space_to_depth(x))
    assert blocks.shape == (2, 3, 4, 12)
    for row in (0, 1):  # block (i, j)'s channels (row, column, channel) hold pixel (2i+row, 2j+column)
        for column in (0, 1):
            start = (2 * row + column) * 3
            np.testing.assert_array_equal(blocks[:, :, :, start:start + 3], x[:, row::2, column::2])
    np.testing.assert_array_equal(np.asarray(lite.depth_to_space(blocks)), x)


@pytest.mark.parametrize("channels", [1, 3])
def test_lite_space_to_depth_head_maps_any_size_and_trains(channels):
    """The half-resolution head: logits of the input's exact size, a gradient for every parameter,
    and each output pixel its own (the 4 pixels of a 2x2 block are not one value repeated)."""
    model = tiny("lite", channels, head="space_to_depth")
    model.eval()
    x = batch(2, 33, 47, channels)
    logits = forward(model, x)
    assert logits.shape == (2, 33, 47, 1) and bool(jnp.all(jnp.isfinite(logits)))
    block = np.asarray(logits[0, :32:2, :46:2, 0]) - np.asarray(logits[0, 1:33:2, 1:47:2, 0])
    assert np.abs(block).max() > 1e-4
    model.train()
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    assert all(bool(jnp.any(g != 0)) for g in jax.tree.leaves(nnx.state(grads, nnx.Param)))


def test_sae_default_follows_the_paper():
    # 5 stride-2 5x5 conv layers of 64 filters down, 5 transposed up, a 5x5 head: no skips.
    per_layer = 25 * 64 * 64 + 2 * 64
    expected = (25 * 1 * 64 + 2 * 64) + 4 * per_layer + 5 * per_layer + 25 * 64 + 1
    assert full_size_params("sae") == expected


# ---------------------------------------------------------------- CPU-friendly layers
@pytest.mark.parametrize("strides,dilation,size", [(1, 1, (9, 12)), (2, 1, (9, 12)), (2, 1, (8, 8)),
                                                   (1, 2, (11, 7))])
def test_depthwise_matches_grouped_conv(strides, dilation, size):
    layer = layers.Depthwise3x3(5, strides=strides, dilation=dilation, use_bias=False,
                                dtype=jnp.float32, rngs=nnx.Rngs(key()))
    x = batch(2, *size, 5)
    reference = jax.lax.conv_general_dilated(
        x, layer.kernel[...], (strides, strides), "SAME", rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=5)
    np.testing.assert_allclose(layer(x), reference, atol=1e-5)


def test_transposed_conv_2x2_matches_flax_conv_transpose_and_its_gradients():
    reference = nnx.ConvTranspose(3, 5, (2, 2), strides=(2, 2), padding="VALID", rngs=nnx.Rngs(key()))
    reference.bias[...] = jax.random.normal(key(), (5,))
    layer = layers.ConvTranspose2x2(3, 5, dtype=jnp.float32, rngs=nnx.Rngs(0))
    # Same parameter tree, so checkpoints of either load into the other.
    assert jax.tree.map(jnp.shape, nnx.state(layer)) == jax.tree.map(jnp.shape, nnx.state(reference))
    nnx.update(layer, nnx.state(reference))
    x = batch(2, 5, 7, 3)
    np.testing.assert_allclose(layer(x), reference(x), atol=1e-5)

    def grads(module):
        return jax.grad(lambda m, x: jnp.sum(jnp.sin(m(x))), argnums=(0, 1))(module, x)

    (layer_grads, layer_dx), (ref_grads, ref_dx) = grads(layer), grads(reference)
    np.testing.assert_allclose(layer_dx, ref_dx, atol=1e-5)
    np.testing.assert_allclose(layer_grads.kernel[...], ref_grads.kernel[...], atol=1e-4)


def test_max_pool_2x2_matches_flax_max_pool_and_its_gradients():
    x = batch(2, 6, 8, 3)  # random floats: no ties, so the gradient has one owner per window
    reference = lambda x: nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")  # noqa: E731
    np.testing.assert_array_equal(layers.max_pool_2x2(x), reference(x))
    weights = batch(2, 3, 4, 3)
    grad = lambda pool: jax.grad(lambda x: jnp.sum(pool(x) * weights))(x)  # noqa: E731
    np.testing.assert_array_equal(grad(layers.max_pool_2x2), grad(reference))


def test_upsample_matches_bilinear_resize():
    x = batch(2, 5, 7, 3)
    reference = jax.image.resize(x, (2, 10, 14, 3), method="bilinear")
    np.testing.assert_allclose(layers.upsample2x(x), reference, atol=1e-6)


# ---------------------------------------------------------------- BatchNorm under sharding
@pytest.mark.parametrize("axis_type", ["auto", "explicit"])
def test_batchnorm_statistics_are_global_under_data_parallel_jit(axis_type):
    """With the batch sharded over 8 devices, a jitted train-mode forward pass computes the batch
    mean over the *global* batch (XLA inserts the cross-device reduction), so outputs and updated
    running statistics equal the single-device computation: no SyncBatchNorm or axis_name needed."""
    assert jax.device_count() == 8, "tests/conftest.py should fake 8 CPU devices"
    model = tiny("unet")
    model.train()
    graphdef, state = nnx.split(model)

    def forward(state, x):
        model = nnx.merge(graphdef, state)
        logits = model(x)
        return logits, nnx.state(model, nnx.BatchStat)

    # Per-example scales make a per-shard mean differ clearly from the global one.
    x = batch(8, 32, 32, 1) * jnp.arange(1, 9, dtype=jnp.float32)[:, None, None, None]
    logits_ref, stats_ref = jax.jit(forward)(state, jax.device_put(x, jax.devices()[0]))

    kind = jax.sharding.AxisType.Auto if axis_type == "auto" else jax.sharding.AxisType.Explicit
    mesh = jax.make_mesh((8,), ("data",), axis_types=(kind,))
    x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
    state_replicated = jax.device_put(state, NamedSharding(mesh, P()))
    with jax.set_mesh(mesh):
        logits, stats = jax.jit(forward)(state_replicated, x_sharded)
    assert len(logits.sharding.device_set) == 8
    np.testing.assert_allclose(logits, logits_ref, atol=1e-5)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(stats_ref)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Sanity: the statistics really moved away from their (0, 1) initial values.
    assert max(float(jnp.max(jnp.abs(m))) for m in jax.tree.leaves(stats)) > 1e-3


# ---------------------------------------------------------------- BatchNorm's own backward pass
def _batchnorm_run(cls, dtype, x, upstream):
    norm = cls(32, momentum=layers.BATCH_NORM_MOMENTUM, epsilon=1e-5, dtype=dtype, rngs=nnx.Rngs(0))
    norm.train()
    norm.scale[...] = jnp.linspace(0.5, 1.5, 32)
    norm.bias[...] = jnp.linspace(-1.0, 1.0, 32)

    def loss(norm, x):
        return jnp.sum(jax.nn.relu(norm(x)).astype(jnp.float32) * upstream)

    value, (grads, dx) = nnx.value_and_grad(loss, argnums=(0, 1))(norm, x)
    return [np.asarray(a, np.float32) for a in (value, dx, grads.scale[...], grads.bias[...], norm.mean[...], norm.var[...])]


def test_batchnorm_train_mode_matches_flax_values_gradients_and_statistics():
    from binjax.models import batch_norm

    x = jax.random.normal(jax.random.key(0), (4, 12, 10, 32)) * 2.0 + 0.5
    upstream = jax.random.normal(jax.random.key(1), x.shape)
    flax_run = _batchnorm_run(nnx.BatchNorm, jnp.float32, x, upstream)
    binjax_run = _batchnorm_run(batch_norm.BatchNorm, jnp.float32, x, upstream)
    for name, a, b in zip(("loss", "dx", "dscale", "dbias", "mean", "var"), flax_run, binjax_run):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * float(np.abs(a).max()), err_msg=name)
    # bfloat16 compute: binjax's statistics and gradient stay float32 inside, so its gradient is
    # far closer to the float32 one than flax's bfloat16 autodiff (0.3 % against 40 % here)
    x16 = x.astype(jnp.bfloat16)
    reference = _batchnorm_run(nnx.BatchNorm, jnp.float32, x16.astype(jnp.float32), upstream)
    ours = _batchnorm_run(batch_norm.BatchNorm, jnp.bfloat16, x16, upstream)
    for a, b in zip(reference[1:4], ours[1:4]):
        assert np.abs(a - b).max() < 0.01 * np.abs(a).max()


def test_model_batchnorm_layers_are_binjax_batchnorm_and_eval_mode_is_flax():
    from binjax.models import batch_norm

    model = tiny("unet")
    norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.BatchNorm)]
    assert norms and all(isinstance(m, batch_norm.BatchNorm) for m in norms)
    model.eval()
    plain = norms[0]
    reference = nnx.BatchNorm(plain.num_features, momentum=plain.momentum, epsilon=plain.epsilon,
                              use_running_average=True, rngs=nnx.Rngs(0))
    reference.mean[...] = jnp.full_like(reference.mean[...], 0.3)
    plain.mean[...] = reference.mean[...]
    y = jnp.ones((2, 4, 4, plain.num_features))
    np.testing.assert_array_equal(plain(y), reference(y))
