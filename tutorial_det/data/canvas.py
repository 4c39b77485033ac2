"""Drawing pieces shared by the synthetic data sets: textured backgrounds, pixel noise, colours that
stand out from what they are drawn on, and binary masks of shapes and text.

Canvases are NumPy float32 arrays of shape ``[3, H, W]`` with values in [0, 1] (channels first, as
the tensors the data sets return). Pixel ``(row r, column c)`` covers the square
``[c, c + 1] x [r, r + 1]`` in the continuous xyxy coordinates of the boxes, so a mask pasted with
its top-left pixel at ``(x0, y0)`` has the box ``(x0, y0, x0 + width, y0 + height)``.

Every function draws its randomness from the ``numpy.random.Generator`` it is given, so a picture
is a pure function of the generator's seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

#: Shapes that :func:`shape_mask` can draw, in the order :class:`ShapesDataset` numbers them.
SHAPE_NAMES = ("circle", "square", "triangle", "hexagon", "star")

BACKGROUNDS = ("textured", "flat")


def _regular_polygon(corners: int, radius: float = 0.5, phase: float = -math.pi / 2) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(corners) / corners
    return radius * np.stack((np.cos(angles), np.sin(angles)), axis=1)


def _star(points: int = 5, outer: float = 0.5, inner: float = 0.21) -> np.ndarray:
    angles = -math.pi / 2 + math.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack((radii * np.cos(angles), radii * np.sin(angles)), axis=1)


# Vertices (x right, y down) of each polygon shape for size 1, centred on the origin and spanning
# 1 in width when not rotated: a shape's "size" is its width before rotation.
_POLYGONS = {
    "square": np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]),
    "triangle": np.array([[0.0, -0.433], [0.5, 0.433], [-0.5, 0.433]]),
    "hexagon": _regular_polygon(6, phase=0.0),
    "star": _star() / (2 * _star()[:, 0].max()),
}


def shape_mask(shape: str, size: float, angle: float = 0.0) -> np.ndarray:
    """A tight boolean mask ``[h, w]`` of one shape: every row and column has a pixel set.

    Args:
        shape: one of :data:`SHAPE_NAMES`.
        size: width of the shape before rotation, in pixels (>= 2); a circle's diameter.
        angle: rotation in degrees, counter-clockwise on screen (ignored for circles).
    """
    if shape not in SHAPE_NAMES:
        raise ValueError(f"shape={shape!r} is not one of {SHAPE_NAMES}")
    if not size >= 2:
        raise ValueError(f"size must be at least 2 pixels, got {size}")
    side = math.ceil(size * 1.5) + 4
    centre = side / 2
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        r = size / 2
        draw.ellipse((centre - r, centre - r, centre + r - 1, centre + r - 1), fill=255)
    else:
        theta = math.radians(angle)
        rotation = np.array(
            [[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]]
        )
        # PIL fills both boundary pixels of a polygon: vertices (size - 1) apart span size pixels.
        points = _POLYGONS[shape] @ rotation * (size - 1) + centre
        draw.polygon([tuple(p) for p in points.tolist()], fill=255)
    return np.asarray(image.crop(image.getbbox()), dtype=bool)


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Mono Bold (bundled with matplotlib, so always available offline) at ``size``
    px."""
    properties = font_manager.FontProperties(family="DejaVu Sans Mono", weight="bold")
    path = font_manager.findfont(properties, fallback_to_default=False)
    return ImageFont.truetype(path, max(int(size), 1))


def text_mask(text: str, size: int) -> np.ndarray:
    """A tight boolean mask ``[h, w]`` of ``text`` written in :func:`font` at ``size`` px."""
    face = font(size)
    left, top, right, bottom = face.getbbox(text)
    image = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(image).text((1 - left, 1 - top), text, font=face, fill=255)
    box = image.getbbox()
    if box is None:
        return np.zeros((0, 0), dtype=bool)
    return np.asarray(image.crop(box), dtype=bool)


@lru_cache(maxsize=32)
def _upsampling_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``[n_out, n_in]`` linear interpolation weights that stretch ``n_in`` samples over
    ``n_out`` pixels (``M @ v`` resamples a vector ``v``)."""
    positions = (np.arange(n_out) + 0.5) / n_out * (n_in - 1)
    lower = np.minimum(np.floor(positions).astype(int), n_in - 2)
    frac = positions - lower
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    matrix[np.arange(n_out), lower] = 1 - frac
    matrix[np.arange(n_out), lower + 1] = frac
    return matrix


@lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs / max(width, height), ys / max(width, height)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour ``[3]`` float32 in [0, 1]."""
    return rng.random(3, dtype=np.float32)


def flat_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``[3, H, W]`` float32 of one random colour."""
    colour = random_colour(rng)
    return np.broadcast_to(colour[:, None, None], (3, height, width)).copy()


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``[3, H, W]`` float32 in [0, 1]: smooth low-frequency colour noise around a random base
    colour, sometimes blended with a colour gradient, sometimes with faint stripes.

    Everything varies slowly (a few cycles per image at most), so a shape whose colour keeps a
    distance from the local mean (:func:`contrasting_colour`) stays visible on it.
    """
    base = random_colour(rng) * 0.8 + 0.1
    cells = int(rng.integers(2, 7))
    blobs = (rng.random((3, cells, cells), dtype=np.float32) - 0.5) * rng.uniform(0.1, 0.35)
    ry, rx = _upsampling_matrix(height, cells), _upsampling_matrix(width, cells)
    canvas = base[:, None, None] + ry @ blobs @ rx.T
    xs, ys = _pixel_grid(height, width)
    if rng.random() < 0.4:
        theta = rng.uniform(0, 2 * math.pi)
        ramp = math.cos(theta) * xs + math.sin(theta) * ys
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        other = random_colour(rng) * 0.8 + 0.1
        strength = rng.uniform(0.3, 0.7)
        canvas = canvas + strength * ramp[None] * (other - base)[:, None, None]
    if rng.random() < 0.3:
        theta = rng.uniform(0, math.pi)
        cycles = rng.uniform(4, 14)
        phase = math.cos(theta) * xs + math.sin(theta) * ys
        stripes = np.sin((2 * math.pi * cycles) * phase + rng.uniform(0, 2 * math.pi))
        canvas = canvas + rng.uniform(0.02, 0.06) * stripes[None]
    return np.clip(canvas, 0.0, 1.0).astype(np.float32, copy=False)


def background(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """A ``[3, H, W]`` background of ``kind`` ``"textured"`` or ``"flat"``."""
    if kind == "textured":
        return textured_background(rng, height, width)
    if kind == "flat":
        return flat_background(rng, height, width)
    raise ValueError(f"background={kind!r} is not one of {BACKGROUNDS}")


def add_pixel_noise(rng: np.random.Generator, canvas: np.ndarray, max_std: float) -> np.ndarray:
    """Add zero-mean pixel noise of a random standard deviation in ``[0, max_std]`` and clip to
    [0, 1] (in place; returns ``canvas``). ``max_std == 0`` leaves the canvas untouched.

    The noise is uniform rather than Gaussian: it has the same standard deviation and is six
    times cheaper to draw, which matters for data generated during training.
    """
    if max_std > 0:
        half_width = rng.uniform(0, max_std) * math.sqrt(3)
        noise = rng.random(canvas.shape, dtype=np.float32)
        canvas += (2 * half_width) * noise - half_width
        np.clip(canvas, 0.0, 1.0, out=canvas)
    return canvas


def contrasting_colour(
    rng: np.random.Generator, avoid: Sequence[np.ndarray], min_distance: float = 0.4
) -> np.ndarray:
    """A random colour ``[3]`` at least ``min_distance`` (Euclidean, RGB in [0, 1]) from every
    colour in ``avoid`` (e.g. the mean of the background under a shape and the colours of the
    shapes it overlaps).

    A few random draws are tried first; if none is far enough, the corner of the RGB cube farthest
    from the avoided colours is returned. Cube corners are 1 apart, so a ball of radius below 0.5
    holds at most one of them: with fewer than 8 colours to avoid, some corner is at least 0.5
    from all of them, and the result is at least ``min(min_distance, 0.5)`` away from each.
    """
    avoid = np.asarray(avoid, dtype=np.float32).reshape(-1, 3)
    for _ in range(8):
        colour = random_colour(rng)
        if len(avoid) == 0 or np.linalg.norm(avoid - colour, axis=1).min() >= min_distance:
            return colour
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), np.float32)
    corners = corners.reshape(3, -1).T
    nearest = np.linalg.norm(corners[:, None] - avoid[None], axis=2).min(axis=1)
    return corners[int(nearest.argmax())]


def paint(canvas: np.ndarray, mask: np.ndarray, x0: int, y0: int, colour: np.ndarray) -> None:
    """Fill the pixels of ``mask`` (``[h, w]`` bool), placed with its top-left pixel at column
    ``x0`` and row ``y0``, with ``colour`` (``[3]``), in place. The mask must fit in the canvas."""
    h, w = mask.shape
    region = canvas[:, y0 : y0 + h, x0 : x0 + w]
    region[:, mask] = colour[:, None]
