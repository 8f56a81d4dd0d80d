"""Dark things on a page that are not ink: what the synthetic generator adds when asked to.

The models this project released kept, as ink, the reverse side's writing showing through,
dark scan borders and binding strips, ruled and graph-paper lines, printed borders, the dark rim
of a ring stain and stamps (issue #13). The DIBCO ground truth and the extra collections leave
all of these out (docs/synthetic/README.md checks each on real pages), so here they are drawn
into the image and never into the mask:

  bleed_through  the back page's text, mirrored, offset and blurred, in the front ink's colour,
                 from faint to as dark as the front text, multiplied into the paper
  scan_border    the page's edge, slightly tilted, with a shadow, perhaps the edges of the pages
                 beneath, and the dark scanner bed beyond it (off the page the mask is 0: no ink)
  gutter         a binding gutter: a dark gradient strip across the page, over paper and ink
  ruled          ruled lines (blue / grey, a red margin) or a graph-paper grid, under the ink
  frame          a printed frame, single or double, perhaps a decorated band, under the ink
  ring_stain     coffee-ring stains: a faint fill with a rim darker at its edge, partly broken
  stamp          an inked stamp (round or oblong, with a word), coloured, partly transparent
  real_colours   paper and ink colours drawn from those measured on the real collections
                 (binjax/data/real_colours.json, written by data/measure_colours.py)

Each value of `Clutter` is the probability that a page gets that kind; all 0 (the default) is
the plain generator, bit for bit. A page's clutter draws from a random stream of its own seeded
by the page seed, so the front page's text and mask are the same with or without it.
Worker-safe: numpy and Pillow only.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from binjax.data import paper_fields, synthetic

KINDS = ("bleed_through", "scan_border", "gutter", "ruled", "frame", "ring_stain", "stamp",
         "real_colours")
_STREAM = 0xC1A77E5  # mixes into the page seed: clutter's random stream, apart from the page's
_COLOURS_FILE = pathlib.Path(__file__).with_name("real_colours.json")

# Reflectances (RGB in [0, 1]) of the things printed or inked on a page besides its text.
_LINE_COLOURS = {"blue": (0.45, 0.62, 0.92), "light blue": (0.62, 0.78, 0.96),
                 "red": (0.92, 0.42, 0.42), "grey": (0.6, 0.6, 0.6), "green": (0.55, 0.78, 0.6)}
_STAMP_COLOURS = ((0.85, 0.25, 0.3), (0.3, 0.4, 0.85), (0.5, 0.3, 0.7), (0.3, 0.3, 0.35))
_FAINTEST_BLEED = 0.15   # the faintest bleed-through, as a fraction of the front ink's darkness
_SETTINGS = ("colour_collections", "faintest_ink", "faded_ink", "darkest_bleed", "paper_shading")


@dataclasses.dataclass(frozen=True)
class Clutter:
    """Per-page probabilities of each kind of clutter (see the module docstring)."""

    bleed_through: float = 0.0
    scan_border: float = 0.0
    gutter: float = 0.0
    ruled: float = 0.0
    frame: float = 0.0
    ring_stain: float = 0.0
    stamp: float = 0.0
    real_colours: float = 0.0
    # The collections real_colours draws from, comma-separated ('' = all): a protocol fold
    # names its training collections so that no test collection lends its colours.
    colour_collections: str = ""
    # The lightest ink real_colours may draw, as a fraction of its paper (per channel). At 0.92
    # msi2015's nearly paper-coloured ink is kept; 0.6 is the plain generator's own bound
    # (synthetic._random_colours), for the arm that asks whether faint ink marked as ink teaches
    # a model to keep the faint marks DIBCO's ground truth leaves out (configs/ablations/
    # synthetic_mix.py, FAINTEST_INK).
    faintest_ink: float = 0.92
    # The share of pages whose front ink fades (lower contrast, still ink in the mask), the
    # generator's own 0.5 (synthetic._degrade), and the darkest bleed-through as a fraction of
    # the front ink's darkness (1: as dark as the front text). The arms that ask whether faded ink
    # marked as ink, or dark bleed-through marked as paper, is what costs the DIBCO years
    # (configs/ablations/synthetic_mix.py, NO_FADED_INK and DARKEST_BLEED) set them.
    faded_ink: float = synthetic.FADED_SHARE
    darkest_bleed: float = 1.0
    # How deep the plain generator's uneven light and stains darken the paper, as a fraction of
    # their own depth (1: as drawn). Below 1 the paper is lighter where they fall, as on the
    # DIBCO years (docs/ablations/dibco/synthetic_mix/dark_paper.md); configs/ablations/
    # synthetic_mix.py's LIGHT_PAPER arm sets it.
    paper_shading: float = 1.0

    def __post_init__(self):
        unknown = sorted(set(self.colour_names) - set(real_colours()))
        if unknown:
            raise ValueError(f"colour_collections: no measured colours for {unknown}; "
                             f"measured: {', '.join(real_colours())}")
        for kind in KINDS:
            _check_range(kind, getattr(self, kind), 0.0, 1.0, "a probability in [0, 1]")
        _check_range("faintest_ink", self.faintest_ink, 0.0, 1.0, "a fraction of the paper in (0, 1)",
                     open_low=True, open_high=True)
        _check_range("faded_ink", self.faded_ink, 0.0, 1.0, "a share of the pages in [0, 1]")
        _check_range("paper_shading", self.paper_shading, 0.0, 1.0, "a fraction of the shading's depth in [0, 1]")
        _check_range("darkest_bleed", self.darkest_bleed, _FAINTEST_BLEED, 1.0,
                     f"a fraction of the front ink's darkness in ({_FAINTEST_BLEED}, 1]", open_low=True)

    @property
    def colour_names(self) -> tuple[str, ...]:
        """The collections real_colours draws from (all measured ones when none is named)."""
        names = tuple(n.strip() for n in self.colour_collections.split(",") if n.strip())
        return names or tuple(real_colours())

    @classmethod
    def from_config(cls, cfg) -> Clutter | None:
        """A Clutter from config.data.synthetic.clutter; None when it changes nothing (every
        probability 0 and the generator's own share of faded pages)."""
        if cfg is None:
            return None
        values = dict(cfg)
        unknown = set(values) - set(KINDS) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}; known: {list(KINDS + _SETTINGS)}")
        clutter = cls(**values)
        return None if clutter._is_plain(KINDS) else clutter

    def _is_plain(self, kinds) -> bool:
        """True when `kinds` drawn on a page change nothing of the plain generator's page."""
        return (not any(getattr(self, k) for k in kinds) and self.faded_ink == Clutter.faded_ink
                and self.paper_shading == Clutter.paper_shading)

    def for_page(self, seed: int, height: int, width: int, channels: int) -> PageClutter | None:
        """The clutter of the page `seed`, or None when the draw gives it none."""
        rng = np.random.default_rng([int(seed) >> 32, int(seed) & 0xFFFFFFFF, _STREAM])
        draws = rng.random(len(KINDS))
        chosen = {k for k, d in zip(KINDS, draws) if d < getattr(self, k)}
        if self._is_plain(chosen):
            return None
        return PageClutter(rng, chosen, height, width, channels, self)


def _check_range(name: str, value, low: float, high: float, what: str, *,
                 open_low: bool = False, open_high: bool = False) -> None:
    """Raises ValueError naming the setting unless `value` is a number within the bounds."""
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (number and (low < value if open_low else low <= value) and (value < high if open_high else value <= high)):
        raise ValueError(f"{name}={value!r}: must be {what}")


@functools.cache
def real_colours() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """{collection: [(paper RGB, ink RGB) in [0, 1], one per page]} from real_colours.json."""
    table = json.loads(_COLOURS_FILE.read_text())["collections"]
    return {name: [(np.array(p["paper"], float) / 255, np.array(p["ink"], float) / 255)
                   for p in pages.values()] for name, pages in table.items()}


def _tone(rgb, channels: int) -> np.ndarray:
    """RGB reflectance in [0, 1] as the page's channels (grey: luma)."""
    return synthetic.channel_colour(np.asarray(rgb, float), channels)


def _multiply(page: np.ndarray, alpha: np.ndarray, tone: np.ndarray) -> None:
    """page *= 1 - alpha * (1 - tone), per channel: a transparent layer of reflectance `tone`."""
    for c in range(page.shape[-1]):
        page[..., c] *= 1 - alpha * np.float32(1 - tone[c])


class PageClutter:
    """One page's clutter: the kinds drawn for it and its own random stream."""

    def __init__(self, rng: np.random.Generator, kinds: set[str], height: int, width: int,
                 channels: int, settings: Clutter = Clutter()):
        self.rng, self.kinds, self.settings = rng, kinds, settings
        self.h, self.w, self.channels = height, width, channels

    def __repr__(self) -> str:
        return f"PageClutter({sorted(self.kinds)}, {self.h}x{self.w}x{self.channels})"

    # --------------------------------------------------------------------- hooks of _degrade

    def colours(self, paper, ink1, ink2):
        """Paper and inks (RGB in [0, 1]); measured ones with `real_colours`."""
        if "real_colours" not in self.kinds:
            return paper, ink1, ink2
        rng, names = self.rng, self.settings.colour_names
        pages = real_colours()[names[int(rng.integers(len(names)))]]   # collections weigh alike
        paper, ink = pages[int(rng.integers(len(pages)))]
        paper = np.clip(paper * rng.uniform(0.95, 1.05) + rng.normal(0, 0.01, 3), 0.05, 1.0)
        # Keep the ink darker than the paper, by default if only just: msi2015's is nearly
        # paper-coloured.
        inks = [np.minimum(np.clip(ink * rng.uniform(0.85, 1.15) + rng.normal(0, 0.015, 3), 0, 1),
                           self.settings.faintest_ink * paper) for _ in range(2)]
        return paper, inks[0], inks[1]

    def under_ink(self, page: np.ndarray, paper: np.ndarray, ink: np.ndarray) -> None:
        """Draws into the paper, before the front ink is composited over it (in place).

        page: HxWxC float32 in 0..255, paper and ink: the page's colours (C values, 0..255).
        """
        if "ruled" in self.kinds:
            for alpha, tone in self._ruling():
                _multiply(page, alpha, tone)
        if "frame" in self.kinds:
            alpha, tone = self._frame(ink / 255)
            _multiply(page, alpha, tone)
        if "bleed_through" in self.kinds:
            _multiply(page, self._back_page(), np.clip(ink / np.maximum(paper, 1), 0, 1))

    def over_ink(self, page: np.ndarray, mask: np.ndarray, paper: np.ndarray) -> np.ndarray:
        """Draws over paper and ink (in place); returns the mask, 0 off the page."""
        if "ring_stain" in self.kinds:
            level, tint = self._ring_stains()
            _multiply(page, level, _tone(tint, self.channels))
        if "stamp" in self.kinds:
            alpha, tone = self._stamp()
            _multiply(page, alpha, tone)
        if "gutter" in self.kinds:
            page *= self._gutter()[..., None]
        if "scan_border" in self.kinds:
            mask = self._scan_border(page, mask, paper)
        return mask

    # --------------------------------------------------------------------- the kinds

    def _coords(self):
        return (np.arange(self.h, dtype=np.float32)[:, None],
                np.arange(self.w, dtype=np.float32)[None, :])

    def _lines(self, coord: np.ndarray, spacing: float, width: float, phase: float) -> np.ndarray:
        """Anti-aliased coverage of lines `width` px wide every `spacing` px along `coord`."""
        d = np.abs((coord - phase) % spacing - spacing / 2) - spacing / 2   # minus distance
        return np.clip(width / 2 + 0.5 + d, 0, 1)

    def _ruling(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Ruled or graph paper as layers (coverage HxW, tone): lines at a slight tilt,
        unevenly printed; ruled paper may have a red margin line (or two)."""
        rng = self.rng
        y, x = self._coords()
        t = math.radians(rng.normal(0, 0.6))
        across, along = y * math.cos(t) - x * math.sin(t), x * math.cos(t) + y * math.sin(t)
        colour = list(_LINE_COLOURS)[int(rng.choice(5, p=[0.35, 0.2, 0.1, 0.25, 0.1]))]
        layers = []
        if rng.random() < 0.35:   # graph paper: a grid, often every fifth line bolder
            step, width = rng.uniform(7, 28), rng.uniform(0.6, 1.6)
            alpha = np.maximum(self._lines(across, step, width, rng.uniform(0, step)),
                               self._lines(along, step, width, rng.uniform(0, step)))
            if rng.random() < 0.5:
                bold = width * rng.uniform(1.5, 2.5)
                alpha = np.maximum(alpha, np.maximum(
                    self._lines(across, 5 * step, bold, rng.uniform(0, 5 * step)),
                    self._lines(along, 5 * step, bold, rng.uniform(0, 5 * step))))
        else:
            step = rng.uniform(18, 60)
            alpha = self._lines(across, step, rng.uniform(0.7, 2.5), rng.uniform(0, step))
            if rng.random() < 0.5:
                x0 = rng.uniform(0.05, 0.25) * self.w
                margin = self._lines(along, 4 * self.w, rng.uniform(0.8, 2.0), x0 + 2 * self.w)
                if rng.random() < 0.4:
                    margin = np.maximum(margin, self._lines(along, 4 * self.w, 1.0,
                                                            x0 + rng.uniform(3, 6) + 2 * self.w))
                layers.append((margin * np.float32(rng.uniform(0.5, 1.0)),
                               _tone(_LINE_COLOURS["red"], self.channels)))
        alpha = alpha * np.float32(rng.uniform(0.35, 1.0))
        alpha *= np.clip(0.85 + 0.3 * paper_fields.smooth_noise(rng, self.h, self.w, 60), 0, 1)
        tone = _tone(np.clip(np.array(_LINE_COLOURS[colour]) * rng.uniform(0.85, 1.1), 0, 1),
                     self.channels)
        return [(alpha, tone)] + layers

    def _frame(self, ink: np.ndarray):
        """A printed frame: one or two rectangles inset from the edges, perhaps a decorated band.

        ink: the text's ink as the page's channels, in [0, 1] (one value on a grey page).
        """
        rng = self.rng
        img = Image.new("L", (self.w, self.h), 0)
        draw = ImageDraw.Draw(img)
        inset = [int(rng.uniform(0.01, 0.08) * s) for s in (self.w, self.h, self.w, self.h)]
        box = [inset[0], inset[1], self.w - 1 - inset[2], self.h - 1 - inset[3]]
        width = int(rng.integers(1, 5))
        draw.rectangle(box, outline=255, width=width)
        if rng.random() < 0.6:   # a second rule inside the first, perhaps with a band between
            gap = int(rng.uniform(3, 14))
            inner = [box[0] + gap, box[1] + gap, box[2] - gap, box[3] - gap]
            if inner[2] > inner[0] and inner[3] > inner[1]:
                draw.rectangle(inner, outline=255, width=max(1, width - int(rng.integers(2))))
                if gap >= 6 and rng.random() < 0.6:
                    _decorate(draw, rng, box, inner)
        alpha = np.asarray(img.filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255
        # Printed in the text's ink or in a colour of its own.
        rgb = ink if self.channels == 3 else np.repeat(ink, 3)
        rgb = rgb if rng.random() < 0.5 else np.array(
            [_LINE_COLOURS["red"], (0.55, 0.35, 0.2), _LINE_COLOURS["blue"]][int(rng.integers(3))])
        return alpha * np.float32(rng.uniform(0.6, 1.0)), _tone(rgb, self.channels)

    def _back_page(self) -> np.ndarray:
        """Bleed-through darkness in [0, 1] (HxW): the back page's text, at full strength the
        front ink's colour. Laid out at half size, mirrored, shifted, blurred and uneven."""
        rng = self.rng
        bh, bw = max(8, self.h // 2), max(8, self.w // 2)
        back = np.maximum(*synthetic.layout_ink(rng, bh, bw, scale=0.5))[:, ::-1]
        dy, dx = (int(rng.uniform(-0.1, 0.1) * s) for s in (bh, bw))
        back = np.roll(back, (dy, dx), axis=(0, 1))
        img = Image.fromarray((back * 255).astype(np.uint8))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 2.0)))
        back = np.asarray(img.resize((self.w, self.h), Image.Resampling.BILINEAR), np.float32)
        back = np.clip(back * np.float32(rng.uniform(1.0, 1.6) / 255), 0, 1)
        uneven = np.clip(0.75 + 0.4 * paper_fields.smooth_noise(rng, self.h, self.w, 80), 0.2, 1)
        strength = rng.uniform(_FAINTEST_BLEED, self.settings.darkest_bleed)   # faint ... as dark as the front text
        return back * uneven * np.float32(strength)

    def _ring_stains(self):
        """Coffee rings (darkness HxW, brown tint): a faint fill, a rim dark at its edge."""
        rng = self.rng
        lh, lw = max(4, self.h // 2), max(4, self.w // 2)
        yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
        level = np.zeros((lh, lw), np.float32)
        wobble = paper_fields.smooth_noise(rng, lh, lw, rng.uniform(6, 20))
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(0.12, 0.4) * min(lh, lw)
            cy, cx = rng.uniform(0, lh), rng.uniform(0, lw)
            d = np.hypot((yy - cy) / (r * rng.uniform(0.85, 1.15)), (xx - cx) / r)
            d += 0.02 * wobble
            rim_w = rng.uniform(0.015, 0.05)
            fill, rim = rng.uniform(0.02, 0.12), rng.uniform(0.3, 0.75)
            # Darkest at the rim, fading inwards over a few rim widths and very fast outwards.
            ring = np.where(d < 1, fill + rim * np.exp(-np.maximum(1 - d, 0) / (3 * rim_w)),
                            (fill + rim) * np.exp(-(np.maximum(d - 1, 0) / rim_w) ** 2))
            angle = np.arctan2(yy - cy, xx - cx)
            phase, turns = rng.uniform(0, 2 * np.pi), int(rng.integers(1, 4))
            broken = np.clip(0.6 + 0.7 * np.sin(turns * angle + phase), 0.05, 1)  # partial rims
            ring = ring * np.where(np.abs(d - 1) < 0.1, broken, 1)
            level = 1 - (1 - level) * (1 - np.clip(ring, 0, 1))
        tint = np.array([1.0, rng.uniform(0.7, 0.85), rng.uniform(0.4, 0.65)]) * rng.uniform(0.5, 0.8)
        return paper_fields.upsample(np.clip(level, 0, 1), self.h, self.w), tint

    def _stamp(self):
        """An inked stamp (coverage HxW, tone): round or oblong rings around a word, rotated,
        unevenly inked, partly transparent."""
        rng = self.rng
        size = int(max(24, rng.uniform(0.18, 0.45) * min(self.h, self.w)))
        img = Image.new("L", (2 * size, size if rng.random() < 0.5 else 2 * size), 0)
        draw = ImageDraw.Draw(img)
        w, h = img.size
        pen = max(1, size // 40)
        if rng.random() < 0.6:
            draw.ellipse([pen, pen, w - 1 - pen, h - 1 - pen], outline=255, width=2 * pen)
            draw.ellipse([5 * pen, 5 * pen, w - 1 - 5 * pen, h - 1 - 5 * pen], outline=255, width=pen)
        else:
            draw.rectangle([pen, pen, w - 1 - pen, h - 1 - pen], outline=255, width=2 * pen)
        font = synthetic.load_font(int(rng.integers(len(synthetic.FONT_FILES))), max(6, h // 5))
        word = " ".join(synthetic.random_words(rng, 2)).upper()[:12]
        draw.text((w / 2, h / 2), word, font=font, fill=255, anchor="mm")
        img = img.rotate(rng.uniform(-35, 35), resample=Image.Resampling.BILINEAR, expand=True)
        patch = np.asarray(img, np.float32) / 255
        patch *= np.clip(0.7 + 0.5 * paper_fields.smooth_noise(rng, *patch.shape, max(4, size / 8)), 0, 1)
        alpha = np.zeros((self.h, self.w), np.float32)
        y0, x0 = int(rng.uniform(-0.2, 0.9) * self.h), int(rng.uniform(-0.2, 0.9) * self.w)
        synthetic.paste_max(alpha, patch, x0, y0)
        tone = _tone(_STAMP_COLOURS[int(rng.integers(len(_STAMP_COLOURS)))], self.channels)
        return alpha * np.float32(rng.uniform(0.45, 0.95)), tone

    def _gutter(self) -> np.ndarray:
        """A binding gutter's shadow (factor HxW): a dark strip, steep on one side."""
        rng = self.rng
        y, x = self._coords()
        vertical = rng.random() < 0.75
        pos = (rng.uniform(-0.05, 0.15) if rng.random() < 0.6 else rng.uniform(0.3, 0.7))
        if rng.random() < 0.5:
            pos = 1 - pos
        coord, size = (x, self.w) if vertical else (y, self.h)
        d = (coord - pos * size) / (rng.uniform(0.02, 0.12) * size)
        d = np.where(d < 0, d * rng.uniform(1.0, 3.0), d)   # the binding side falls off faster
        shade = np.exp(-d ** 2) * np.float32(rng.uniform(0.35, 0.85))
        if rng.random() < 0.5:   # the crease itself
            shade = np.maximum(shade, np.exp(-(d * 8) ** 2) * np.float32(rng.uniform(0.6, 0.95)))
        return (1 - shade).astype(np.float32)

    def _scan_border(self, page: np.ndarray, mask: np.ndarray, paper: np.ndarray) -> np.ndarray:
        """The page's edge on one to three sides: a shadow inside it, maybe the edges of the
        pages beneath, the dark scanner bed beyond; off the page, no ink."""
        rng = self.rng
        y, x = self._coords()
        off = np.zeros((self.h, self.w), bool)
        sides = [s for s in range(4) if rng.random() < 0.4] or [int(rng.integers(4))]
        bed = np.float32(rng.uniform(0.02, 0.35) * 255)
        for side in sides:
            along, across, size = [(x, y, self.h), (x, self.h - 1 - y, self.h),
                                   (y, x, self.w), (y, self.w - 1 - x, self.w)][side]
            edge = rng.uniform(0.01, 0.12) * size + rng.normal(0, 0.015) * along
            wobble = paper_fields.smooth_noise(rng, 2, along.size, 40)[0].reshape(along.shape)
            edge = edge + rng.uniform(0, 2) * wobble
            inside = across - edge    # px into the page
            shadow = np.exp(-np.maximum(inside, 0) / rng.uniform(2, 25)) * np.float32(rng.uniform(0.2, 0.7))
            page *= (1 - np.where(inside >= 0, shadow, 0))[..., None]
            under = rng.uniform(3, 25) if rng.random() < 0.4 else 0.0   # the pages beneath
            stack = (inside < 0) & (inside >= -under)
            page[stack] = paper * np.float32(rng.uniform(0.45, 0.8))
            beyond = inside < -under
            page[beyond] = 0   # the scanner bed, filled below
            off |= inside < 0
        noise = paper_fields.normal_noise(rng, (self.h, self.w)) * np.float32(rng.uniform(1, 8))
        bare = off & (page.max(axis=-1) == 0)
        page[bare] = (bed + noise[bare])[:, None] * np.ones(self.channels, np.float32)
        mask = mask.copy()
        mask[off] = 0
        return mask


def _decorate(draw: ImageDraw.ImageDraw, rng, outer: list[int], inner: list[int]) -> None:
    """A printed ornament in the band between two frame rules: dots, diamonds or a zigzag."""
    gap = inner[0] - outer[0]
    r = max(1, gap // 4)
    kind = int(rng.integers(3))
    step = max(2 * r + 2, int(gap * rng.uniform(0.8, 1.6)))
    mid = [(outer[i] + inner[i]) / 2 for i in range(4)]
    edges = [((mid[0], mid[1]), (mid[2], mid[1])), ((mid[0], mid[3]), (mid[2], mid[3])),
             ((mid[0], mid[1]), (mid[0], mid[3])), ((mid[2], mid[1]), (mid[2], mid[3]))]
    for (ax, ay), (bx, by) in edges:
        n = max(1, int(math.hypot(bx - ax, by - ay) / step))
        ts = np.linspace(0, 1, n + 1)
        pts = [(ax + t * (bx - ax), ay + t * (by - ay)) for t in ts]
        if kind == 0:
            for px, py in pts:
                draw.ellipse([px - r, py - r, px + r, py + r], fill=255)
        elif kind == 1:
            for px, py in pts:
                draw.polygon([(px - r, py), (px, py - r), (px + r, py), (px, py + r)], fill=255)
        else:
            horizontal = ay == by
            zig = [(px, py + (r if i % 2 else -r)) if horizontal else (px + (r if i % 2 else -r), py)
                   for i, (px, py) in enumerate(pts)]
            draw.line(zig, fill=255, width=1)
