"""Synthetic licence plates seen from random viewpoints: the data set of the WPOD-Net lesson.

Lesson 08 draws it step by step.

A plate is drawn flat (:func:`render_plate`: light background, dark border, random letters and
digits in DejaVu Sans Mono, which matplotlib ships, so nothing is downloaded), then warped by the
homography of a random 3-D view (yaw, pitch, roll and a pinhole projection: oblique views,
rotation, foreshortening) onto a textured background with clutter (random shapes and stray text).

The four corners of each plate are exact: the warp sends the flat plate's corners
``(0, 0), (w, 0), (w, h), (0, h)`` to ``target["corners"]``, in continuous xyxy pixel coordinates
(the convention of the boxes: pixel column ``c`` spans ``[c, c + 1]``). They are ordered as the
plate reads: top-left, top-right, bottom-right, bottom-left of the plate's text. Every plate lies
fully inside the image, so its box (the bounding box of its corners) needs no clipping.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from tutorial_det.boxes import box_iou
from tutorial_det.data.canvas import (
    SHAPE_NAMES,
    add_pixel_noise,
    background,
    contrasting_colour,
    font,
    paint,
    shape_mask,
    text_mask,
)
from tutorial_det.data.synthetic import Item, SyntheticDataset, Transforms, check_count_range
from tutorial_det.geometry import homography

#: Class names, indexed by label: every object is a plate.
CLASSES = ("background", "plate")

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q: plates avoid them next to 1 and 0
DIGITS = "0123456789"
# Layouts of the plate text: L = letter, D = digit (Brazilian, European, and US-like styles).
_LAYOUTS = ("LLL DDDD", "LL DDD LL", "LLDD LLL", "DLLL DDD", "LLL DDD")


def random_plate_text(rng: np.random.Generator) -> str:
    """Random plate text such as ``"AB 123 CD"`` in one of a few common layouts."""
    layout = _LAYOUTS[int(rng.integers(len(_LAYOUTS)))]
    pick = {"L": LETTERS, "D": DIGITS}
    return "".join(c if c == " " else pick[c][int(rng.integers(len(pick[c])))] for c in layout)


def render_plate(
    text: str,
    width: int,
    height: int,
    paper: tuple[int, int, int] = (235, 235, 225),
    ink: tuple[int, int, int] = (20, 20, 25),
    band: tuple[int, int, int] | None = None,
) -> Image.Image:
    """The flat plate: an RGB image ``width x height`` with a light ``paper`` background, a dark
    border and ``text`` in bold DejaVu Sans Mono, centred and as large as fits; ``band`` adds a
    coloured strip on the left (as on European plates)."""
    if width < 8 or height < 4:
        raise ValueError(f"a plate must be at least 8 x 4 pixels, got {width} x {height}")
    image = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(image)
    border = max(1, round(height * 0.07))
    draw.rectangle((0, 0, width - 1, height - 1), outline=ink, width=border)
    left = border
    if band is not None:
        band_width = max(2, round(width * 0.08))
        draw.rectangle((border, border, border + band_width - 1, height - 1 - border), fill=band)
        left += band_width
    # Fit the text: measure it at 100 px and scale (glyph extents grow linearly with size).
    probe = font(100).getbbox(text)
    scale = min(
        0.68 * height / (probe[3] - probe[1]), 0.9 * (width - left - border) / (probe[2] - probe[0])
    )
    size = max(4, int(100 * scale))
    centre = ((left + width - border) / 2, height / 2)
    draw.text(centre, text, font=font(size), fill=ink, anchor="mm")
    return image


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3-D rotation (radians): yaw about the vertical axis, pitch about the horizontal axis, then
    roll in the image plane."""
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_roll @ r_pitch @ r_yaw


def view_quad(aspect: float, yaw: float, pitch: float, roll: float, distance: float) -> np.ndarray:
    """Corners ``[4, 2]`` (TL, TR, BR, BL) of a plate of width 1 and height ``1 / aspect`` seen by
    a pinhole camera ``distance`` plate widths away after rotating it by yaw, pitch and roll
    (radians), centred on the origin and scaled back to about unit width."""
    half_w, half_h = 0.5, 0.5 / aspect
    flat = np.array(
        [[-half_w, -half_h, 0], [half_w, -half_h, 0], [half_w, half_h, 0], [-half_w, half_h, 0]]
    )
    turned = flat @ _rotation(yaw, pitch, roll).T
    projected = turned[:, :2] * (distance / (distance + turned[:, 2:]))
    return projected - projected.mean(axis=0)


class PlatesDataset(SyntheticDataset):
    """``length`` images with licence plates; item ``i`` is a pure function of ``(seed, i)``.

    Args:
        length: number of items.
        seed: the data set's seed; a different seed gives an independent set.
        image_size: side of the square images in pixels.
        min_plates, max_plates: plates per image, drawn uniformly (``min_plates=0`` allows images
            without a plate). Plates never overlap; fewer are drawn when no free place is found.
        plate_width: (smallest, largest) width in pixels of a plate's box, drawn log-uniformly
            (WPOD-Net's paper: about 40-200 px in 208 px crops; the default, 32-104 px in 128,
            stays a little inside that range so that tilted plates fit).
        aspect: (smallest, largest) width / height of the flat plate.
        max_yaw, max_pitch, max_roll: largest view angles in degrees (turning left / right,
            tilting towards / away, rotating in the image plane), each drawn uniformly.
        background: ``"textured"`` or ``"flat"``; ``clutter``: draw random shapes and stray text
            behind the plates.
        pixel_noise: largest standard deviation of the pixel noise (0 = none).
        transforms: optional ``transforms(image, target) -> (image, target)``, applied last.

    Item ``i``: ``(image, target)``; ``image`` ``[3, H, W]`` float32 in [0, 1]; ``target`` has
    ``"boxes"`` ``[N, 4]`` float32 xyxy (bounding box of each plate's corners), ``"labels"``
    ``[N]`` int64 ones, ``"corners"`` ``[N, 4, 2]`` float32 (x, y) in the order top-left,
    top-right, bottom-right, bottom-left of the plate as it reads, ``"text"`` a list of N
    strings, and ``"image_id"`` ``i``.
    """

    min_image_size = 32

    def __init__(
        self,
        length: int,
        seed: int = 0,
        image_size: int = 128,
        min_plates: int = 1,
        max_plates: int = 1,
        plate_width: tuple[float, float] = (32.0, 104.0),
        aspect: tuple[float, float] = (2.0, 4.5),
        max_yaw: float = 45.0,
        max_pitch: float = 30.0,
        max_roll: float = 15.0,
        background: str = "textured",
        clutter: bool = True,
        pixel_noise: float = 0.04,
        transforms: Transforms | None = None,
    ) -> None:
        super().__init__(length, seed, image_size, background, pixel_noise, transforms)
        check_count_range(min_plates, max_plates, "min_plates, max_plates", 0)
        low, high = plate_width
        if not 16 <= low <= high <= image_size - 2:
            raise ValueError(
                f"plate_width must be (low, high) with 16 <= low <= high <= image_size - 2 = "
                f"{image_size - 2}, got {plate_width}"
            )
        if not 1 <= aspect[0] <= aspect[1] <= 8:
            raise ValueError(f"aspect must be (low, high) with 1 <= low <= high <= 8, got {aspect}")
        for name, value, limit in (
            ("max_yaw", max_yaw, 75),
            ("max_pitch", max_pitch, 75),
            ("max_roll", max_roll, 45),
        ):
            if not 0 <= value <= limit:
                raise ValueError(f"{name} must be in [0, {limit}] degrees, got {value}")
        self.min_plates, self.max_plates = min_plates, max_plates
        self.plate_width = (float(low), float(high))
        self.aspect = (float(aspect[0]), float(aspect[1]))
        self.max_angles = tuple(math.radians(a) for a in (max_yaw, max_pitch, max_roll))
        self.clutter = bool(clutter)
        self.classes = CLASSES

    def render(self, rng: np.random.Generator) -> Item:
        """One image and its target (without ``image_id``) drawn from ``rng``."""
        size = self.image_size
        canvas = background(rng, self.background, size, size)
        if self.clutter:
            self._draw_clutter(rng, canvas)
        n = int(rng.integers(self.min_plates, self.max_plates + 1))
        boxes = torch.zeros((0, 4))
        quads, texts = [], []
        for _ in range(n):
            quad = self._random_quad(rng)
            lo, hi = quad.min(axis=0), quad.max(axis=0)
            # Keep a one-pixel margin so that the warped plate's blurred edge stays inside too.
            offsets = rng.uniform(1 - lo, size - 1 - hi, size=(20, 2))
            candidates = np.concatenate((lo + offsets, hi + offsets), axis=1)
            free = (box_iou(torch.from_numpy(candidates).float(), boxes) <= 0).all(dim=1)
            if not bool(free.any()):
                continue
            k = int(free.nonzero()[0])
            quad = (quad + offsets[k]).astype(np.float32)
            text = random_plate_text(rng)
            self._draw_plate(rng, canvas, quad, text)
            boxes = torch.cat((boxes, torch.from_numpy(candidates[k : k + 1]).float()))
            quads.append(quad)
            texts.append(text)
        add_pixel_noise(rng, canvas, self.pixel_noise)
        corners = torch.from_numpy(np.array(quads, dtype=np.float32).reshape(-1, 4, 2))
        target = {
            "boxes": boxes,
            "labels": torch.ones(len(texts), dtype=torch.int64),
            "corners": corners,
            "text": texts,
        }
        return torch.from_numpy(canvas), target

    def _random_quad(self, rng: np.random.Generator) -> np.ndarray:
        """Corners ``[4, 2]`` of one plate, centred on the origin, sized to fit the image."""
        aspect = rng.uniform(*self.aspect)
        yaw, pitch, roll = (rng.uniform(-a, a) for a in self.max_angles)
        quad = view_quad(aspect, yaw, pitch, roll, distance=rng.uniform(1.5, 4.0))
        low, high = self.plate_width
        width = math.exp(rng.uniform(math.log(low), math.log(high)))
        extent = quad.max(axis=0) - quad.min(axis=0)
        scale = min(width / extent[0], (self.image_size - 2) / extent[1])
        return quad * scale

    def _draw_plate(
        self, rng: np.random.Generator, canvas: np.ndarray, quad: np.ndarray, text: str
    ) -> None:
        """Warp a freshly rendered plate onto ``canvas`` (in place) so that its corners land on
        ``quad``."""
        # Render the flat plate at about its size in the image, so the warp barely resamples.
        top, bottom = np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[3])
        left, right = np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1])
        width = max(8, round(max(top, bottom)))
        height = max(4, round(max(left, right)))
        shade = rng.uniform(0.65, 1.0)  # light falling on the plate
        paper = (np.array([235, 235, 225]) + rng.integers(-25, 21, 3)) * shade
        if rng.random() < 0.25:  # yellow plates
            paper = np.array([235, 200, 40]) * shade
        ink = rng.integers(0, 60, 3) * shade
        band = (
            tuple(int(v) for v in np.array([30, 60, 170]) * shade) if rng.random() < 0.3 else None
        )
        flat = render_plate(
            text, width, height, tuple(int(v) for v in paper), tuple(int(v) for v in ink), band
        )
        # PIL's perspective transform maps each output pixel back into the flat plate, so it
        # wants the homography from the image quad to the flat rectangle. Premultiplied alpha
        # ("RGBa") keeps the warped edge from darkening.
        rectangle = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
        coeffs = homography(torch.from_numpy(quad), torch.from_numpy(rectangle)).flatten()[:8]
        size = canvas.shape[1:][::-1]
        warped = flat.convert("RGBa").transform(
            size, Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR
        )
        rgba = np.asarray(warped, dtype=np.float32).transpose(2, 0, 1) / 255
        alpha = rgba[3:]
        canvas *= 1 - alpha
        canvas += rgba[:3]

    def _draw_clutter(self, rng: np.random.Generator, canvas: np.ndarray) -> None:
        """Random shapes and stray dark text, drawn behind the plates (in place)."""
        size = canvas.shape[1]
        for _ in range(int(rng.integers(0, 6))):
            shape = SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))]
            mask = shape_mask(shape, rng.uniform(6, size / 3), rng.uniform(0, 360))
            self._paint_somewhere(rng, canvas, mask, None)
        for _ in range(int(rng.integers(0, 3))):
            mask = text_mask(random_plate_text(rng)[: int(rng.integers(2, 6))], rng.integers(7, 16))
            self._paint_somewhere(rng, canvas, mask, rng.uniform(0, 0.25, 3).astype(np.float32))

    @staticmethod
    def _paint_somewhere(
        rng: np.random.Generator, canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray | None
    ) -> None:
        h, w = mask.shape
        size = canvas.shape[1]
        if h == 0 or h > size or w > size:
            return
        x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        if colour is None:
            under = canvas[:, y0 : y0 + h, x0 : x0 + w].mean(axis=(1, 2))
            colour = contrasting_colour(rng, [under], min_distance=0.25)
        paint(canvas, mask, x0, y0, colour)
