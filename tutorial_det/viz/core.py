"""Images and boxes on matplotlib axes, with one colour per class everywhere, captions that stay
readable (:mod:`tutorial_det.viz.captions`) and legends for colours that carry meaning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from PIL import Image

from tutorial_det.boxes import check_boxes
from tutorial_det.viz.captions import add_caption

_PALETTE = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors


def class_colour(label: int) -> tuple[float, float, float]:
    """The RGB colour (floats in [0, 1]) of class ``label``: the same in every figure."""
    return _PALETTE[int(label) % len(_PALETTE)]


def to_display_image(image) -> np.ndarray:
    """An ``[H, W, 3]`` (or ``[H, W]``) array matplotlib can show.

    Accepts a ``[3, H, W]`` / ``[1, H, W]`` / ``[H, W]`` tensor (float in [0, 1] or uint8), a PIL
    image, or an ``[H, W, C]`` / ``[H, W]`` NumPy array.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3:
            if image.shape[0] not in (1, 3):
                raise ValueError(
                    f"image tensor must be [3, H, W] or [1, H, W], got {list(image.shape)}"
                )
            image = image.permute(1, 2, 0)
            if image.shape[2] == 1:
                image = image[..., 0]
        elif image.ndim != 2:
            raise ValueError(f"image tensor must be [3, H, W] or [H, W], got {list(image.shape)}")
        if image.is_floating_point():
            image = image.clamp(0, 1)
        return image.numpy()
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(f"image array must be [H, W] or [H, W, C], got shape {array.shape}")
    return array


def show_image(image, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Show an image (see :func:`to_display_image`) without axis ticks; returns the axes.

    Pixel ``(row i, column j)`` is drawn over ``[j, j + 1] x [i, i + 1]``, the box convention, so
    a box ``(x1, y1, x2, y2)`` drawn with :func:`draw_boxes` sits exactly on the pixels it covers.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    array = to_display_image(image)
    height, width = array.shape[:2]
    # Pixel (i, j) covers [j, j + 1] x [i, i + 1], so box coordinates (continuous, no "+1") land on
    # pixel edges; imshow's default would centre pixels on integers, half a pixel off.
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, extent=(0, width, height, 0))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def draw_boxes(
    ax: Axes,
    boxes: torch.Tensor,
    labels: Sequence[int] | torch.Tensor | None = None,
    scores: Sequence[float] | torch.Tensor | None = None,
    class_names: Sequence[str] | dict[int, str] | None = None,
    colour=None,
    linewidth: float = 2.0,
    linestyle: str = "-",
    alpha: float = 1.0,
    fill: bool = False,
) -> list[Rectangle]:
    """Draw ``[N, 4]`` xyxy pixel boxes on ``ax``, captioned with class name and score.

    Captions are placed when the figure is drawn: next to a corner of their box, inside the axes
    and clear of each other (:mod:`tutorial_det.viz.captions`).

    Args:
        ax: the axes (usually after :func:`show_image`).
        boxes: ``[N, 4]`` xyxy in the image's pixel coordinates.
        labels: ``[N]`` class ids: they choose each box's colour (:func:`class_colour`) and caption.
        scores: ``[N]`` confidences, appended to the caption as two decimals.
        class_names: names indexed by class id (a list, or a dict for sparse ids).
        colour: one colour for every box, overriding the class colours.
        linewidth, linestyle, alpha: the outline's style; ``fill`` also shades the inside.

    Returns:
        The ``Rectangle`` patches added, one per box, in order.
    """
    boxes = check_boxes(torch.as_tensor(boxes), ordered=False).detach().cpu()
    n = len(boxes)
    labels = None if labels is None else [int(v) for v in torch.as_tensor(labels).flatten()]
    scores = None if scores is None else [float(v) for v in torch.as_tensor(scores).flatten()]
    for name, values in (("labels", labels), ("scores", scores)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} boxes")
    patches = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        c = colour if colour is not None else class_colour(labels[i] if labels else 0)
        rect = Rectangle(
            (x1, y1),
            x2 - x1,
            y2 - y1,
            fill=fill,
            facecolor=c if fill else "none",
            edgecolor=c,
            linewidth=linewidth,
            linestyle=linestyle,
            alpha=alpha,
        )
        ax.add_patch(rect)
        patches.append(rect)
        caption = _caption(
            labels[i] if labels else None, scores[i] if scores else None, class_names
        )
        if caption:
            add_caption(ax, (x1, y1, x2, y2), caption, c)
    return patches


def draw_legend(
    ax: Axes,
    entries: Sequence[tuple[str, Any] | tuple[str, Any, dict]],
    loc: str = "lower right",
    fontsize: float = 8,
    **legend_options,
) -> Legend:
    """A legend for a figure whose colours (or line styles) carry meaning.

    Args:
        entries: ``(name, colour)`` or ``(name, colour, style)`` per entry, in order; ``style``
            holds ``Line2D`` options such as ``{"linestyle": "--", "linewidth": 3}``.
        loc, fontsize, legend_options: passed on to ``ax.legend`` (a white, slightly
            transparent frame by default).

    Example: the nine anchors of a cell, one colour per aspect ratio::

        draw_legend(ax, [(f"ratio {r:g}", class_colour(i)) for i, r in enumerate(ratios)])
    """
    handles = [
        Line2D([], [], color=entry[1], label=entry[0], **(entry[2] if len(entry) > 2 else {}))
        for entry in entries
    ]
    legend_options.setdefault("framealpha", 0.8)
    return ax.legend(handles=handles, loc=loc, fontsize=fontsize, **legend_options)


def _caption(label, score, class_names) -> str:
    parts = []
    if label is not None:
        if class_names is not None:
            try:
                parts.append(str(class_names[label]))
            except (IndexError, KeyError):
                raise ValueError(f"class_names has no entry for label {label}") from None
        else:
            parts.append(str(label))
    if score is not None:
        parts.append(f"{score:.2f}")
    return " ".join(parts)
