"""The models shipped inside the package (binjax/weights/<name>/), named without loading JAX.

The launchers build their --help texts before JAX loads (launch/common.py splits the CPU into
host devices first), so the default model's name and the shipped names live here, away from
binjax.pretrained (which loads them and needs JAX).
"""

from __future__ import annotations

import pathlib

RELEASED_DIR = pathlib.Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "weights.npz"  # what makes a folder an export (is_export; binjax.export.WEIGHTS)
# What binarize and evaluate use when no model or method is named: the protocol's recipe (contrast-
# stretched pages) trained on every collection; dibco_lite was the default before 2026-12-06.
DEFAULT_MODEL = "collections_lite"


def is_export(path: str | pathlib.Path) -> bool:
    """Whether `path` is an export folder (binjax.export writes and loads them)."""
    return (pathlib.Path(path) / WEIGHTS_FILE).is_file()


def released_models() -> list[str]:
    """Names of the models shipped in binjax/weights/."""
    if not RELEASED_DIR.is_dir():
        return []
    return sorted(p.name for p in RELEASED_DIR.iterdir() if is_export(p))


def names_for_help() -> str:
    """'collections_lite, dibco_lite, dibco_unet': the shipped models as --help texts list them."""
    return ", ".join(released_models()) or "none installed"
