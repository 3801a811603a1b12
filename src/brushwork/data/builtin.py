"""Built-in procedural abstract art: a deterministic dataset that ships with brushwork.

Five recognisable abstract styles (the label of each image is its style), drawn with PIL from a
seeded random state, so the demo and the tests run anywhere without downloading anything.
Each painting is drawn at 4x resolution and downsampled for soft, anti-aliased edges.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STYLES = ("grid", "circles", "stripes", "colour_fields", "drips")

_PRIMARIES = [(200, 30, 35), (25, 60, 160), (240, 200, 30), (245, 242, 232), (20, 20, 20)]


def _palette(rng: np.random.RandomState, n: int) -> list[tuple[int, int, int]]:
    """n harmonious colours: one random hue family with spread in hue, saturation and value."""
    import colorsys

    base = rng.uniform(0, 1)
    colours = []
    for _ in range(n):
        h = (base + rng.normal(0, 0.12)) % 1.0
        s = float(np.clip(rng.uniform(0.35, 0.95), 0, 1))
        v = float(np.clip(rng.uniform(0.35, 1.0), 0, 1))
        colours.append(tuple(int(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)))
    return colours


def _grid(draw: ImageDraw.ImageDraw, size: int, rng: np.random.RandomState) -> None:
    """Mondrian-like: recursive rectangular splits, thick black lines, a few primary cells."""
    draw.rectangle([0, 0, size, size], fill=_PRIMARIES[3])
    cells = [(0, 0, size, size)]
    for _ in range(rng.randint(4, 9)):
        i = rng.randint(len(cells))
        x0, y0, x1, y1 = cells.pop(i)
        if (x1 - x0) > (y1 - y0):
            cut = int(x0 + (x1 - x0) * rng.uniform(0.25, 0.75))
            cells += [(x0, y0, cut, y1), (cut, y0, x1, y1)]
        else:
            cut = int(y0 + (y1 - y0) * rng.uniform(0.25, 0.75))
            cells += [(x0, y0, x1, cut), (x0, cut, x1, y1)]
    line = max(2, size // 40)
    for x0, y0, x1, y1 in cells:
        if rng.uniform() < 0.35:
            draw.rectangle([x0, y0, x1, y1], fill=_PRIMARIES[rng.randint(3)])
        draw.rectangle([x0, y0, x1, y1], outline=_PRIMARIES[4], width=line)


def _circles(draw: ImageDraw.ImageDraw, size: int, rng: np.random.RandomState) -> None:
    """Kandinsky-like: concentric and overlapping circles on a dark ground."""
    colours = _palette(rng, 6)
    draw.rectangle([0, 0, size, size], fill=tuple(c // 4 for c in colours[0]))
    for _ in range(rng.randint(3, 7)):
        cx, cy = rng.uniform(0.1, 0.9, size=2) * size
        radius = rng.uniform(0.08, 0.35) * size
        for ring in range(rng.randint(1, 4)):
            r = radius * (1 - ring / 4)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colours[rng.randint(1, 6)])


def _stripes(draw: ImageDraw.ImageDraw, size: int, rng: np.random.RandomState) -> None:
    """Hard-edged stripes of varying width at one of four angles."""
    colours = _palette(rng, 5)
    angle = rng.choice([0, 45, 90, 135])
    pos, span = -size, 3 * size
    while pos < span:
        width = rng.uniform(0.03, 0.15) * size
        poly = [(pos, -size), (pos + width, -size), (pos + width, 2 * size), (pos, 2 * size)]
        if angle:
            c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
            mid = size / 2
            poly = [(mid + (x - mid) * c - (y - mid) * s, mid + (x - mid) * s + (y - mid) * c)
                    for x, y in poly]
        draw.polygon(poly, fill=colours[rng.randint(5)])
        pos += width


def _colour_fields(draw: ImageDraw.ImageDraw, size: int, rng: np.random.RandomState) -> None:
    """Rothko-like: two or three stacked soft rectangles on a saturated ground."""
    colours = _palette(rng, 4)
    draw.rectangle([0, 0, size, size], fill=colours[0])
    n = rng.randint(2, 4)
    margin = size * rng.uniform(0.06, 0.12)
    height = (size - 2 * margin) / n
    for i in range(n):
        y0 = margin + i * height + height * 0.06
        draw.rectangle([margin, y0, size - margin, y0 + height * 0.88], fill=colours[1 + i])


def _drips(draw: ImageDraw.ImageDraw, size: int, rng: np.random.RandomState) -> None:
    """Pollock-like: tangled random-walk drips of paint on a canvas-coloured ground."""
    draw.rectangle([0, 0, size, size], fill=(222, 210, 185))
    colours = _palette(rng, 4) + [(20, 20, 20), (250, 250, 245)]
    for _ in range(rng.randint(8, 16)):
        point = rng.uniform(0, size, size=2)
        heading = rng.uniform(0, 2 * np.pi)
        path = [tuple(point)]
        for _ in range(rng.randint(10, 30)):
            heading += rng.normal(0, 0.6)
            point = point + size * 0.05 * np.array([np.cos(heading), np.sin(heading)])
            path.append(tuple(point))
        draw.line(path, fill=colours[rng.randint(len(colours))], width=int(rng.uniform(1, 4) * size / 64) + 1)


_PAINTERS = {"grid": _grid, "circles": _circles, "stripes": _stripes,
             "colour_fields": _colour_fields, "drips": _drips}


def paint(style: str, index: int, resolution: int) -> Image.Image:
    """One deterministic painting of ``style``; the same (style, index) always gives the same image."""
    rng = np.random.RandomState((STYLES.index(style) * 1_000_003 + index) % (2**32))
    big = 4 * resolution
    img = Image.new("RGB", (big, big))
    _PAINTERS[style](ImageDraw.Draw(img), big, rng)
    if style == "colour_fields":
        img = img.filter(ImageFilter.GaussianBlur(big / 60))  # Rothko's feathered edges
    return img.resize((resolution, resolution), Image.LANCZOS)


def builtin_abstract(resolution: int, per_style: int = 200) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The whole dataset: uint8 images [N, 3, R, R], int64 labels [N], style names."""
    images = np.empty((len(STYLES) * per_style, 3, resolution, resolution), dtype=np.uint8)
    labels = np.repeat(np.arange(len(STYLES)), per_style)
    for i, (style_id, index) in enumerate(zip(labels, np.tile(np.arange(per_style), len(STYLES)))):
        images[i] = np.asarray(paint(STYLES[style_id], int(index), resolution)).transpose(2, 0, 1)
    return images, labels.astype(np.int64), list(STYLES)
