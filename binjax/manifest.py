"""The manifest of a bulk run: one CSV row per page binarized, appended as each page is done.

A row is written (and flushed to the operating system) as soon as the page's output is in
place, so the manifest of a run killed even with SIGKILL lists exactly the pages whose outputs
exist, give or take the last one: a page killed between its rename and its row has an output
but no row, and a row cut short by the kill is dropped when the manifest is opened again. With
``resume`` the rows already there are kept, the run appends, and ``has`` tells which pages
already have their row, so a page is listed once however often the run is resumed; without it
the manifest starts afresh. A row is never rewritten: a page redone on resume because its
output was deleted keeps the row of the run that first wrote it.

Columns: source, page (1-based), pages (in the source), output, width, height, dpi, seconds
(read, binarize and write; a model's first page includes compiling it; empty for a page found
done by an earlier run whose row was lost),
quality (the ground-truth-free estimate of binjax.quality when a model binarizes; empty for
classic methods), expected_fm, unsure_per_ink, ink_fraction (the estimates it is chosen from),
probability (the page's probability map with --probability). quality.csv is written from these
rows (binarize.write_quality_view). A manifest from a binjax that wrote fewer columns keeps
them when a resumed run appends: the new columns are left out, not misaligned.
"""

from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Mapping
from typing import Any

PathLike = str | os.PathLike

FIELDS = ("source", "page", "pages", "output", "width", "height", "dpi", "seconds", "quality",
          "expected_fm", "unsure_per_ink", "ink_fraction", "probability")


def _key(source: PathLike, page: int) -> tuple[str, int]:
    return os.path.abspath(source), int(page)


class Manifest:
    """``<out>/manifest.csv``: ``add`` a row per page; ``has(source, page)`` for pages already listed."""

    def __init__(self, path: PathLike, *, resume: bool = False):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._listed: set[tuple[str, int]] = set()
        fields = FIELDS
        if resume and self.path.exists():
            self._drop_partial_last_row()
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                for row in reader:
                    try:
                        self._listed.add(_key(row["source"], int(row["page"])))
                    except (KeyError, TypeError, ValueError):
                        continue  # not a row of ours: kept in the file, ignored here
                fields = reader.fieldnames or FIELDS  # appended rows follow the file's own header
        fresh = not resume or not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "w" if fresh else "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=FIELDS if fresh else fields)
        if fresh:
            self._writer.writeheader()
            self._file.flush()

    def _drop_partial_last_row(self) -> None:
        """A run killed while writing a row leaves it without its newline: cut it off."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def has(self, source: PathLike, page: int) -> bool:
        return _key(source, page) in self._listed

    def add(self, row: Mapping[str, Any]) -> None:
        """Appends one page's row (keys of FIELDS; floats to 6 significant digits) and flushes it."""
        key = _key(row["source"], row["page"])
        if key in self._listed:
            return
        self._listed.add(key)
        self._writer.writerow({k: _cell(row.get(k)) for k in self._writer.fieldnames})
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):  # a (x, y) resolution: one number when both axes agree
        return "x".join(f"{v:g}" for v in dict.fromkeys(value))
    return str(value)


def read_rows(path: PathLike) -> list[dict[str, str]]:
    """The rows of a manifest, as strings (for tests and for scripts that pick pages up)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
