"""Binarizing files on disk: the library side of launch/binarize.py.

Which files (``expand_inputs``: files, folders, globs), where their outputs go without ever
overwriting an input (``plan_outputs``), and the loop that reads, binarizes and writes them,
skipping unreadable files (``binarize_files``). Binarizers come from binjax.binarizers.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
from collections.abc import Sequence
from typing import Literal

import numpy as np

from binjax import imageio
from binjax.binarizers import Binarizer

PathLike = str | os.PathLike

# What a folder argument contributes (explicit files and globs may have any extension).
FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
_GLOB_CHARS = re.compile(r"[*?\[]")


def expand_inputs(args: Sequence[str], *, skip_stem_suffix: str = "") -> tuple[list[pathlib.Path], list[str]]:
    """(image files, problems) from files, folders (their images, not recursive) and globs.

    Globs are expanded here too (quoted ones reach us unexpanded; '**' recurses). Files are
    kept in argument order without duplicates. In folders, files whose stem ends with
    ``skip_stem_suffix`` are left out: they are the outputs of an earlier run with that suffix.
    A missing path or a glob matching nothing is a problem (reported, not fatal).
    """
    files: list[pathlib.Path] = []
    seen: set[pathlib.Path] = set()
    problems: list[str] = []

    def add(path: pathlib.Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(path)

    def add_folder(folder: pathlib.Path) -> None:
        found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in FOLDER_EXTENSIONS
                       and not (skip_stem_suffix and p.stem.endswith(skip_stem_suffix)))
        if not found:
            problems.append(f"{folder}: no images in this folder ({', '.join(FOLDER_EXTENSIONS)})")
        for p in found:
            add(p)

    import glob  # noqa: PLC0415

    for arg in args:
        path = pathlib.Path(arg).expanduser()
        if path.is_dir():
            add_folder(path)
        elif path.is_file():
            add(path)
        elif _GLOB_CHARS.search(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
            matched = [pathlib.Path(m) for m in matches if os.path.isfile(m)]
            if not matched:
                problems.append(f"{arg}: no files match this pattern")
            for p in matched:
                add(p)
        else:
            problems.append(f"{arg}: no such file or folder")
    return files, problems


def plan_outputs(inputs: Sequence[pathlib.Path], *, out_dir: PathLike | None, suffix: str = "",
                 extension: str = ".png") -> tuple[list[tuple[pathlib.Path, pathlib.Path]], list[str]]:
    """(input, output) pairs and the conflicts that forbid the run.

    The output is ``<out_dir or the input's folder>/<stem><suffix><extension>``. A conflict is an
    output that is (or would replace) one of the inputs, or two inputs writing the same output;
    a caller must refuse to run when there is any, so an input is never overwritten.
    """
    if out_dir is None and suffix is None:
        raise ValueError("give an output folder or a suffix for outputs beside the inputs")
    resolved_inputs = {p.resolve(): p for p in inputs}
    # (device, inode) catches what paths miss: hard links, and case-insensitive file systems.
    input_inodes = {(st.st_dev, st.st_ino): p for p in inputs if (st := _stat(p)) is not None}
    jobs, conflicts = [], []
    writers: dict[pathlib.Path, pathlib.Path] = {}
    for src in inputs:
        folder = pathlib.Path(out_dir) if out_dir is not None else src.parent
        dst = folder / f"{src.stem}{suffix or ''}{extension}"
        key = dst.resolve()
        clash = resolved_inputs.get(key)
        if clash is None and (st := _stat(dst)) is not None:
            clash = input_inodes.get((st.st_dev, st.st_ino))
        if clash is not None:
            conflicts.append(f"{src}: its output {dst} would overwrite the input {clash}")
        elif key in writers:
            conflicts.append(f"{src}: its output {dst} is also the output of {writers[key]}")
        else:
            writers[key] = src
            jobs.append((src, dst))
    return jobs, conflicts


def _stat(path: pathlib.Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def binarize_files(binarizer: Binarizer, jobs: Sequence[tuple[pathlib.Path, pathlib.Path]], *,
                   foreground: Literal["white", "black"] = "black", bits: int = 1,
                   progress: bool = True, page_fn=None) -> list[str]:
    """Binarizes each (input, output) pair; returns one message per file that was skipped.

    Inputs are read at the binarizer's channels (grey, RGB, RGBA, 16-bit, palette: see
    imageio.load_image); outputs have the input's size, ink ``foreground`` ('black' = ink 0),
    1- or 8-bit. A file that cannot be read or binarized is skipped with a message naming it
    (printed to stderr at once) and the loop goes on. page_fn(src, dst, image) -> ink, when
    given, binarizes instead of the binarizer (e.g. quality.PageReport: probability maps and
    quality estimates from the same pass).
    """
    import tqdm  # noqa: PLC0415

    skipped = []
    bar = tqdm.tqdm(jobs, unit="img", desc="binarize", disable=not progress, dynamic_ncols=True)
    for src, dst in bar:
        try:
            image = imageio.load_image(src, binarizer.channels)
            ink = np.asarray(binarizer(image) if page_fn is None else page_fn(src, dst, image), dtype=bool)
            dst.parent.mkdir(parents=True, exist_ok=True)
            imageio.save_mask(dst, ink, foreground=foreground, bits=bits)
        except (ValueError, OSError) as e:  # ImageError is a ValueError and names the file
            message = str(e) if str(e).startswith(str(src)) else f"{src}: {e}"
            skipped.append(message)
            tqdm.tqdm.write(f"skipped {message}", file=sys.stderr)
    bar.close()
    return skipped
