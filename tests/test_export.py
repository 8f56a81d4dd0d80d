"""binjax.export and the released-model lookup: exported weights predict as the checkpoint does."""

import json

import jax
import numpy as np
import pytest

from binjax import binarizers, export, pretrained, released, train
from configs import default as default_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    train.train_and_evaluate(default_config.get_config("smoke"), workdir)
    return workdir


def _predict(model, seed=0):
    x = np.random.default_rng(seed).random((2, 40, 24, 1), dtype=np.float32)
    return np.asarray(model(x))


def test_float32_export_predicts_exactly_as_the_checkpoint(trained, tmp_path):
    state, config = pretrained.load_train_state(pretrained.resolve(trained))
    out = export.export_model(state, config, tmp_path / "exp", card={"data": "synthetic"})
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "config.json", "weights.npz"]
    card = export.read_card(out)
    num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    assert card["data"] == "synthetic" and card["parameters"] == num_params and card["weights_dtype"] == "float32"
    from_checkpoint, _ = pretrained.load_model(trained)
    from_export, export_config = pretrained.load_model(out)
    assert export_config.model.to_dict() == config.model.to_dict()
    np.testing.assert_array_equal(_predict(from_export), _predict(from_checkpoint))
    # No optimizer state: the export is much smaller than the checkpoint's state.
    assert not any("opt_state" in k for k in np.load(out / "weights.npz").files)


def test_bfloat16_export_is_half_the_size_and_close(trained, tmp_path):
    state, config = pretrained.load_train_state(pretrained.resolve(trained))
    f32 = export.export_model(state, config, tmp_path / "f32", card={})
    bf16 = export.export_model(state, config, tmp_path / "bf16", card={}, dtype="bfloat16")
    assert (bf16 / "weights.npz").stat().st_size < 0.7 * (f32 / "weights.npz").stat().st_size
    a, _ = export.load_exported(f32)
    b, _ = export.load_exported(bf16)
    np.testing.assert_allclose(_predict(b), _predict(a), atol=0.05 * np.abs(_predict(a)).max())


def test_a_wrong_weight_file_names_the_weight(trained, tmp_path):
    state, config = pretrained.load_train_state(pretrained.resolve(trained))
    out = export.export_model(state, config, tmp_path / "exp", card={})
    wider = json.loads((out / "config.json").read_text())
    wider["model"]["base_width"] = 8
    (out / "config.json").write_text(json.dumps(wider))
    with pytest.raises(ValueError, match=r"weights.npz: params/.* is shaped"):
        export.load_exported(out)


def test_released_models_are_found_by_name_and_are_the_default(trained, tmp_path, monkeypatch):
    state, config = pretrained.load_train_state(pretrained.resolve(trained))
    monkeypatch.setattr(released, "RELEASED_DIR", tmp_path / "weights")
    with pytest.raises(binarizers.NoBinarizerError, match="not installed.*--checkpoint.*--method"):
        binarizers.make_binarizers()
    export.export_model(state, config, tmp_path / "weights" / released.DEFAULT_MODEL, card={})
    assert released.released_models() == [released.DEFAULT_MODEL]
    (default,) = binarizers.make_binarizers(tile=32, overlap=0.0).values()
    assert default.name == f"binjax-{released.DEFAULT_MODEL}"
    page = np.random.default_rng(0).integers(0, 256, (50, 70, 1), dtype=np.uint8)
    by_name = binarizers.make_binarizers([released.DEFAULT_MODEL], tile=32, overlap=0.0)
    assert list(by_name) == [default.name]
    np.testing.assert_array_equal(by_name[default.name](page), default(page))


def test_the_shipped_default_model_is_the_light_one():
    assert released.DEFAULT_MODEL in released.released_models()
    card = export.read_card(released.RELEASED_DIR / released.DEFAULT_MODEL)
    assert card["parameters"] < 300_000


# A page of each DIBCO year a released model's card may score it on (years it never trained on),
# one where Otsu leaves a clear margin to a good model.
UNSEEN_PAGES = {"2013": "PR05", "2014": "H07"}


@pytest.mark.parametrize("name", released.released_models())
def test_every_shipped_model_loads_and_beats_otsu_on_an_unseen_dibco_page(name, dibco_dir):
    from binjax import imageio, metrics  # noqa: PLC0415

    card = export.read_card(released.RELEASED_DIR / name)
    # The card's scores are on years the model never trained on.
    year = next(y for y in card["scores"] if y in UNSEEN_PAGES)
    (model,) = binarizers.make_binarizers([name]).values()
    page = imageio.load_image(dibco_dir / year / f"{UNSEEN_PAGES[year]}_in.png", 1)
    gt = imageio.load_mask(dibco_dir / year / f"{UNSEEN_PAGES[year]}_gt.png", "black") > 0
    otsu = binarizers.ClassicBinarizer("otsu")
    fm_model, _, _ = metrics.fmeasure(model(page), gt)
    fm_otsu, _, _ = metrics.fmeasure(otsu(page), gt)
    assert fm_model > fm_otsu + 2.0, (fm_model, fm_otsu)


def test_the_default_cards_cross_collection_figures_are_the_committed_protocol_runs():
    """The card's promise on unseen archives is recomputed from the fold models' committed scores."""
    import importlib.util  # noqa: PLC0415
    import pathlib  # noqa: PLC0415

    root = pathlib.Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("card_cross_collection", root / "docs/models/card_cross_collection.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    card = export.read_card(released.RELEASED_DIR / "collections_lite")
    section = card["cross_collection"]
    # The classic methods' scores live with the protocol's first runs, the recipe's with its study.
    roots = [root / "docs/ablations/dibco/protocol_baseline", root / "docs/ablations/dibco/synthetic_mix/runs"]
    assert script.section("binjax data.mix.synthetic_fraction=0.5", roots, section["what"]) == section
    assert len(section["collections"]) == 12
    with pytest.raises(SystemExit, match="no protocol scores"):
        script.section("binjax no such recipe", roots, "")
