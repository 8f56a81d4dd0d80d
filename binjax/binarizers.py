"""Binarizers: what maps a page to an ink mask.

A binarizer maps an uint8 HxWxC page to a bool HxW ink mask (True = ink) and says how many
``channels`` it reads. A ``ModelBinarizer`` wraps a trained checkpoint (``pretrained.load_model``
+ tiled inference); a ``ClassicBinarizer`` wraps a doxapy method (``baselines.binarize_classic``
on the grey page). ``make_binarizers`` builds them from launcher-style specs (``parse_method``);
``default_binarizer`` is where the released default model (``released.DEFAULT_MODEL``) plugs in. Used by
binjax.evaluate (scoring against ground truth) and binjax.binarize (files on disk).
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from binjax import baselines, imageio, released, text_scale
from binjax import contrast as contrast_lib
from binjax import page_context
from binjax.errors import ConfigError

# = binjax.inference.DEFAULT_OVERLAP, which this module does not import: it loads JAX.
DEFAULT_OVERLAP = 0.125

PathLike = str | os.PathLike


class NoBinarizerError(ValueError):
    """Neither a checkpoint nor a classic method was given, and there is no default model yet."""


class ClassicBinarizer:
    """A doxapy method (``baselines.METHODS``) with optional parameters, on the grey page."""

    channels = 1

    def __init__(self, method: str, params: Mapping[str, float] | None = None, *, name: str | None = None):
        self.method, self.params = method, dict(params or {})
        # Check names and values now, not on the first page (doxapy would ignore a typo).
        baselines.check_params(method, self.params)
        self.name = name or method + "".join(f"_{k}{v:g}" for k, v in sorted(self.params.items()))
        self.description = (f"classic {method} ({', '.join(f'{k}={v:g}' for k, v in self.params.items())})"
                            if self.params else f"classic {method} (default parameters)")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return baselines.binarize_classic(imageio.to_channels(image, 1)[..., 0], self.method, **self.params)


class ModelBinarizer:
    """A trained checkpoint with tiled, blended full-page inference (binjax.inference).

    ``checkpoint`` is a workdir (its best checkpoint, else its latest), a manager directory or a
    step directory. Pages are converted to the channels the model was trained on
    (``config.data.channels``); read files with ``imageio.load_image(path, self.channels)``.
    all_devices: shard each batch of tiles over every local device (batch_size is rounded up to
    a multiple of their number); False: the default device only.
    """

    def __init__(self, checkpoint: PathLike, *, tile: int = 512, overlap: float = DEFAULT_OVERLAP, batch_size: int = 4,
                 flip_tta: bool = False, threshold: float = 0.5, rescale: str | float | None = None,
                 contrast: str | None = None, name: str = "model", all_devices: bool = True):
        check_inference_options(tile=tile, overlap=overlap, batch_size=batch_size, flip_tta=flip_tta,
                                threshold=threshold, rescale=rescale, contrast=contrast)
        # Text scale (binjax.text_scale): None, 'auto' or a factor; None is the plain path.
        self.rescale = text_scale.parse_rescale(rescale)
        # JAX and the model code load only when a model is used: classic-only runs stay light.
        import jax  # noqa: PLC0415

        from binjax import inference, pretrained  # noqa: PLC0415

        # a checkpoint step (the newest that restores) or an export folder
        model, self.config, self.step_dir = pretrained.load_model_and_source(checkpoint)
        self.channels = int(self.config.data.channels)
        # Page contrast normalization (binjax.contrast): as asked, else as the model was trained.
        self.contrast = (contrast_lib.parse_contrast(contrast)
                         or contrast_lib.parse_contrast(self.config.data.get("contrast", "none")))
        self.context = page_context.parse_context(self.config.data.get("context", "none"))
        self.options = dict(tile=int(tile), overlap=float(overlap), batch_size=int(batch_size),
                            flip_tta=bool(flip_tta), threshold=float(threshold))
        self._binarize_page = inference.binarize_page
        # Tiles of a batch are spread over all local devices: several GPUs, or the host devices
        # that launch/common.py splits a CPU into (one per core).
        self._predict_fn = inference.make_predict_fn(model, devices=jax.local_devices() if all_devices else None)
        self.num_devices = self._predict_fn.num_devices
        self.name = name
        self.description = (f"model {self.config.model.name} from {self.step_dir} ({self.channels} channel(s); "
                            + ", ".join(f"{k}={v}" for k, v in self.options.items())
                            + (f", rescale={self.rescale}" if self.rescale is not None else "")
                            + (f", contrast={self.contrast}" if self.contrast != "none" else "")
                            + (f", context={self.context}" if self.context != "none" else "")
                            + f"; {self.num_devices} {jax.devices()[0].platform} device(s))")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.rescale is not None:
            return self.probability(image) > self.options["threshold"]
        ink = self._binarize_page(self._predict_fn, self._with_context(self._prepared(image)), **self.options)
        return np.asarray(ink, dtype=bool)

    def _prepared(self, image: np.ndarray) -> np.ndarray:
        """The page in the model's image channels, contrast-normalized as it asks."""
        return contrast_lib.normalize(imageio.to_channels(image, self.channels), self.contrast)

    def _with_context(self, page: np.ndarray) -> np.ndarray:
        """The prepared page with the model's page-context channel, if it takes one
        (config.data.context): computed on the whole page, at the scale the model sees it."""
        return page_context.add_context(page, self.context)

    def probability(self, image: np.ndarray) -> np.ndarray:
        """float32 HxW ink probability of the page (what __call__ thresholds): the tiled
        inference's own page-sized accumulator, no copy."""
        from binjax import inference  # noqa: PLC0415

        options = {k: v for k, v in self.options.items() if k != "threshold"}
        image = self._prepared(image)
        if self.rescale is None:
            return inference.sliding_window_predict(self._predict_fn, self._with_context(image), **options)
        return text_scale.rescaled_probability(
            lambda page: inference.sliding_window_predict(self._predict_fn, self._with_context(page), **options), image,
            text_scale.page_factor(self.rescale, image), tile=self.options["tile"])


Binarizer = ClassicBinarizer | ModelBinarizer


def parse_method(spec: str) -> tuple[str, dict[str, float]]:
    """'sauvola' or 'sauvola:window=51:k=0.3' -> ('sauvola', {'window': 51, 'k': 0.3})."""
    method, *assignments = [part.strip() for part in spec.strip().split(":")]
    params: dict[str, float] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            number = float(value)
        except ValueError:
            raise ConfigError(f"--method={spec}: parameters are written name=number after a colon, "
                              "e.g. 'sauvola:window=51:k=0.3'") from None
        params[key] = int(number) if number.is_integer() else number
    return method.lower(), params


def check_inference_options(*, tile: int = 512, overlap: float = DEFAULT_OVERLAP, batch_size: int = 4,
                            flip_tta: bool = False, threshold: float = 0.5,
                            rescale: str | float | None = None, contrast: str | None = None) -> None:
    """Raises ConfigError naming the flag when a model-inference option is out of range.

    Called before any model loads or page is read, so a bad flag fails once, not once per page
    (and --threshold=nan or 2 no longer writes blank pages).
    """
    del flip_tta  # a bool: nothing to check
    if not (isinstance(tile, (int, np.integer)) and 1 <= tile <= 65536):
        raise ConfigError(f"--tile={tile}: the tile size must be an integer in [1, 65536] pixels")
    if not (math.isfinite(overlap) and 0.0 <= overlap < 1.0):
        raise ConfigError(f"--overlap={overlap}: must be a fraction of the tile in [0, 1)")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ConfigError(f"--batch={batch_size}: tiles per forward pass must be an integer >= 1")
    if not (math.isfinite(threshold) and 0.0 < threshold < 1.0):
        raise ConfigError(f"--threshold={threshold}: the ink probability threshold must be in (0, 1), "
                          "exclusive (0 or 1 would make every pixel ink, or none)")
    text_scale.parse_rescale(rescale)  # ConfigError naming --rescale
    contrast_lib.parse_contrast(contrast)  # ConfigError naming --contrast


def default_binarizer(**inference_options) -> Binarizer:
    """The binarizer used when none is named: the released default model (released.DEFAULT_MODEL)."""
    check_inference_options(**inference_options)
    if released.DEFAULT_MODEL not in released.released_models():
        raise NoBinarizerError(
            f"no binarizer given and the released model {released.DEFAULT_MODEL!r} is not installed "
            f"(looked in {released.RELEASED_DIR}): pass --checkpoint=WORKDIR (a trained model) or "
            f"--method=NAME (a classic method: {', '.join(baselines.list_methods())})")
    return ModelBinarizer(released.DEFAULT_MODEL, name=f"binjax-{released.DEFAULT_MODEL}", **inference_options)


def make_binarizers(checkpoints: Sequence[PathLike] = (), methods: Sequence[str] = (),
                    **inference_options) -> dict[str, Binarizer]:
    """Name -> binarizer for checkpoints (tiled model inference) and classic method specs.

    One checkpoint is named 'model'; several are named after their workdirs. Methods are
    named by their spec ('sauvola', 'sauvola_k0.3_window51'). inference_options go to every
    ModelBinarizer (tile, overlap, batch_size, flip_tta, threshold); they and every method
    spec are checked (ConfigError) before any model loads.
    """
    check_inference_options(**inference_options)
    specs = [parse_method(spec) for spec in methods]
    for method, params in specs:
        baselines.check_params(method, params)
    if not checkpoints and not methods:
        binarizer = default_binarizer(**inference_options)
        return {binarizer.name: binarizer}
    binarizers: dict[str, Binarizer] = {}

    def add(b: Binarizer) -> None:
        if b.name in binarizers:
            raise ValueError(f"binarizer {b.name!r} is given twice")
        binarizers[b.name] = b

    shipped = released.released_models()
    for checkpoint in checkpoints:
        if str(checkpoint) in shipped:
            name = f"binjax-{checkpoint}"
        else:
            name = "model" if len(checkpoints) == 1 else _model_name(checkpoint, binarizers)
        add(ModelBinarizer(checkpoint, name=name, **inference_options))
    for method, params in specs:
        add(ClassicBinarizer(method, params))
    return binarizers


def _model_name(checkpoint: PathLike, taken: Mapping[str, Any]) -> str:
    parts = pathlib.Path(checkpoint).absolute().parts
    # workdir/best/400 -> 'model-workdir-400'; workdir -> 'model-workdir'
    tail = [p for p in parts[-3:] if p not in ("best", "checkpoints")]
    base = "model-" + "-".join(tail[-2:] if tail and tail[-1].isdigit() else tail[-1:])
    name, i = safe_name(base), 2
    while name in taken:
        name, i = f"{safe_name(base)}-{i}", i + 1
    return name


def safe_name(name: str) -> str:
    """A page or binarizer name as a file name (no path separators, no spaces)."""
    return re.sub(r"[^0-9A-Za-z._=+-]+", "_", str(name)).strip("_") or "_"
