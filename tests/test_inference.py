"""Sliding-window inference: exactness on one tile, no seams, flip TTA, odd sizes, batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from binjax.inference import (binarize_page, gaussian_importance_map, make_predict_fn,
                              sliding_window_predict, tile_starts)
from binjax.models import create_model


def tiny_unet(in_channels=1, seed=0):
    # Bilinear upsampling: a random transposed-conv U-Net paints a 2x2 checkerboard whose
    # pixel-to-pixel steps would drown the tile seams this file looks for. 'rbg' keys: see
    # tests/test_models.py (threefry initialisers compile slowly on CPU).
    model = create_model("unet", in_channels=in_channels, rngs=nnx.Rngs(jax.random.key(seed, impl="rbg")),
                         depth=2, base_width=4, upsample="resize")
    model.eval()
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_unet()


@pytest.fixture(scope="module")
def predict(model):
    return make_predict_fn(model)


_forward = nnx.jit(lambda model, x: jax.nn.sigmoid(model(x)))


def direct(model, image):
    """Sigmoid of one forward pass of the whole uint8 image (the reference for tiling)."""
    x = jnp.asarray(image[None].astype(np.float32) / np.float32(255.0))
    return np.asarray(_forward(model, x))[0, ..., 0]


def smooth_page(height, width, channels=1):
    y, x = np.mgrid[0:height, 0:width]
    page = (120 + 40 * np.sin(y / 40.0) + 20 * np.cos(x / 50.0)).astype(np.uint8)
    return np.repeat(page[..., None], channels, axis=2)


def noisy_page(height, width, channels=1, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


# ---------------------------------------------------------------- exactness
def test_one_tile_equals_direct_forward(model, predict):
    page = noisy_page(64, 64)
    prob = sliding_window_predict(predict, page, tile=64)
    assert prob.shape == (64, 64) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, direct(model, page), atol=1e-5)


def test_small_page_is_reflect_padded_to_one_tile(model, predict):
    page = noisy_page(37, 50)
    prob = sliding_window_predict(predict, page, tile=64)
    padded = np.pad(page, ((0, 27), (0, 14), (0, 0)), mode="reflect")
    np.testing.assert_allclose(prob, direct(model, padded)[:37, :50], atol=1e-5)


def test_flip_tta_is_average_of_flipped_passes(model, predict):
    page = noisy_page(64, 64)
    prob = sliding_window_predict(predict, page, tile=64, flip_tta=True)
    passes = [
        direct(model, page),
        direct(model, page[:, ::-1])[:, ::-1],
        direct(model, page[::-1, :])[::-1, :],
        direct(model, page[::-1, ::-1])[::-1, ::-1],
    ]
    np.testing.assert_allclose(prob, np.mean(passes, axis=0), atol=1e-5)
    assert np.abs(prob - passes[0]).max() > 1e-3  # the flips did change something


# ---------------------------------------------------------------- seams
def tile_boundary_steps(prob, reference, starts, tile, axis):
    """Max |step| of prob, and of prob - reference, across the tile edges along `axis`."""
    length = prob.shape[axis]
    edges = sorted(({s for s in starts[1:]} | {s + tile for s in starts[:-1]}) - {length})
    take = lambda a, idx: np.take(a, idx, axis=axis)[4:-4] if axis == 1 else np.take(a, idx, axis=axis)[:, 4:-4]
    before = [e - 1 for e in edges]
    error = prob - reference
    return (np.abs(take(prob, edges) - take(prob, before)).max(),
            np.abs(take(error, edges) - take(error, before)).max())


def test_no_seams_at_tile_borders(model, predict):
    """Tiles of 32 px on a 96 x 128 page. Each tile's own border effects (zero padding in the
    convs) would show as steps at tile edges; Gaussian blending with 50 % overlap must hide them.
    Hard tiling (overlap 0, tiles partition the page exactly) is the positive control."""
    page = smooth_page(96, 128)
    whole = direct(model, page)
    interior = (slice(4, -4), slice(4, -4))
    natural_step = max(np.abs(np.diff(whole, axis=a))[interior].max() for a in (0, 1))
    results = {}
    for overlap in (0.0, 0.5):
        prob = sliding_window_predict(predict, page, tile=32, overlap=overlap, batch_size=4)
        steps = [tile_boundary_steps(prob, whole, tile_starts(prob.shape[a], 32, overlap), 32, a)
                 for a in (0, 1)]
        results[overlap] = dict(
            step=max(s for s, _ in steps),          # step of the output across tile edges
            jump=max(j for _, j in steps),          # discontinuity of the error there
            error=np.abs(prob - whole)[interior].max())
    blended, hard = results[0.5], results[0.0]
    # Blended: no step across tile edges beyond the direct output's own pixel-to-pixel steps,
    # an error that is continuous there, and close to the whole-page forward pass.
    assert blended["step"] <= natural_step, (blended, natural_step)
    assert blended["jump"] < 0.02, blended
    assert blended["error"] < 0.05, blended
    # Hard tiling does show seams, so the measure above can see them.
    assert hard["jump"] > 5 * blended["jump"], (hard, blended)
    assert hard["error"] > 3 * blended["error"], (hard, blended)


# ---------------------------------------------------------------- shapes and batching
def test_odd_page_sizes_and_channels(predict):
    for shape in [(45, 71), (7, 5), (1, 40), (33, 32)]:
        page = noisy_page(*shape)
        prob = sliding_window_predict(predict, page, tile=32, overlap=0.5)
        assert prob.shape == shape and prob.dtype == np.float32
        assert np.all((prob >= 0) & (prob <= 1))
    np.testing.assert_array_equal(  # H x W grey input is H x W x 1
        sliding_window_predict(predict, page[..., 0], tile=32),
        sliding_window_predict(predict, page, tile=32))
    rgb = make_predict_fn(tiny_unet(in_channels=3))
    assert sliding_window_predict(rgb, noisy_page(45, 71, 3), tile=32).shape == (45, 71)
    with pytest.raises(ValueError, match="takes 3 channel"):
        sliding_window_predict(rgb, noisy_page(40, 40, 1), tile=32)
    with pytest.raises(ValueError, match="uint8"):
        sliding_window_predict(predict, page.astype(np.float32), tile=32)


def test_last_batch_is_padded_to_one_shape(predict):
    page = noisy_page(70, 90)  # 4 x 5 = 20 tiles of 32 at 50 % overlap... and a partial batch of 3
    calls = []

    def recording(batch):
        calls.append(batch.shape)
        return predict(batch)

    prob = sliding_window_predict(recording, page, tile=32, overlap=0.5, batch_size=6)
    tiles = len(tile_starts(70, 32, 0.5)) * len(tile_starts(90, 32, 0.5))
    assert tiles % 6 != 0
    assert calls == [(6, 32, 32, 1)] * -(-tiles // 6)
    # Batch size and padding do not change the result.
    np.testing.assert_allclose(prob, sliding_window_predict(predict, page, tile=32, overlap=0.5, batch_size=4),
                               atol=1e-6)


def test_batches_sharded_over_devices_match_one_device(model, predict):
    page = noisy_page(70, 90)
    sharded = make_predict_fn(model, devices=jax.devices())
    assert sharded.num_devices == jax.device_count() == 8
    # batch_size 3 is rounded up to 8, one tile per device.
    np.testing.assert_allclose(sliding_window_predict(sharded, page, tile=32, batch_size=3),
                               sliding_window_predict(predict, page, tile=32, batch_size=4),
                               atol=1e-5)


def test_threshold(predict):
    page = noisy_page(45, 71)
    prob = sliding_window_predict(predict, page, tile=32)
    for threshold in (0.3, 0.5, float(np.median(prob))):
        mask = binarize_page(predict, page, tile=32, threshold=threshold)
        assert mask.dtype == bool and mask.shape == (45, 71)
        np.testing.assert_array_equal(mask, prob > threshold)
    assert 0 < binarize_page(predict, page, tile=32, threshold=float(np.median(prob))).mean() < 1


def test_logits_predictor(model, predict):
    page = noisy_page(64, 64)
    logits = make_predict_fn(model, logits=True)
    np.testing.assert_allclose(jax.nn.sigmoid(logits(page[None] / np.float32(255.0))),
                               predict(page[None] / np.float32(255.0)), atol=1e-6)
    with pytest.raises(ValueError, match="probabilities"):
        binarize_page(logits, page, tile=64)


def test_predictor_uses_eval_mode_without_touching_the_model(model, predict):
    page = noisy_page(64, 64)
    model.train()
    try:
        in_train_mode = make_predict_fn(model)
        assert model.encoder[0].conv1.norm.use_running_average is False  # caller's mode untouched
    finally:
        model.eval()
    np.testing.assert_allclose(in_train_mode(page[None] / np.float32(255.0)),
                               predict(page[None] / np.float32(255.0)), atol=1e-6)


# ---------------------------------------------------------------- building blocks
def test_tile_starts_cover_evenly():
    assert tile_starts(32, 32, 0.5) == [0]
    assert tile_starts(64, 32, 0.5) == [0, 16, 32]
    for length in (33, 70, 129, 1000):
        for overlap in (0.0, 0.25, 0.5, 0.75):
            starts = tile_starts(length, 32, overlap)
            assert starts[0] == 0 and starts[-1] == length - 32
            steps = np.diff(starts)
            assert np.all(steps <= 32 * (1 - overlap) + 1e-9) and np.all(steps > 0)
    with pytest.raises(ValueError, match="pad first"):
        tile_starts(20, 32, 0.5)


def test_gaussian_importance_map():
    weights = gaussian_importance_map(64)
    assert weights.shape == (64, 64) and weights.dtype == np.float32
    assert weights.max() == pytest.approx(1.0, abs=1e-3) and weights.min() >= 1e-4
    np.testing.assert_allclose(weights, weights[::-1, ::-1])
    np.testing.assert_allclose(weights, weights.T)
    # sigma = tile / 8: one sigma from the centre the weight is exp(-1/2).
    assert weights[31, 31 - 8] / weights[31, 31] == pytest.approx(np.exp(-0.5 * (8.5**2 - 0.5**2) / 64), rel=1e-4)


def test_one_default_overlap_everywhere():
    """The inference library, the JAX-free binarizers module (flags and ModelBinarizer) agree; the
    protocol pins its own so that scores from different sessions stay comparable."""
    import inspect

    from binjax import benchmark, binarizers, device_check, inference, protocol

    assert binarizers.DEFAULT_OVERLAP == inference.DEFAULT_OVERLAP == 0.125
    assert inspect.signature(binarizers.ModelBinarizer).parameters["overlap"].default == inference.DEFAULT_OVERLAP
    assert inspect.signature(inference.sliding_window_predict).parameters["overlap"].default == 0.125
    assert inspect.signature(benchmark.inference_throughput).parameters["overlap"].default == inference.DEFAULT_OVERLAP
    assert protocol.SCORING == {"overlap": 0.5}
    # The portable script imports no binjax, so it repeats the number; the device check reads it.
    from binjax.portable import run_stablehlo
    assert inspect.signature(run_stablehlo.ink_probability).parameters["overlap"].default == inference.DEFAULT_OVERLAP
    check = device_check.parser().parse_args(["inference", "out.json", "--config=configs/lite.py"])
    assert check.overlap == inference.DEFAULT_OVERLAP
