"""Anchors on images: the feature-cell grid, one cell's anchors, the overlap of two boxes, and
anchors coloured by their training label. Boxes are ``[N, 4]`` xyxy pixels; every function draws
on the given matplotlib ``ax`` and returns the artists it added."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.patches import Rectangle

from tutorial_det.boxes import check_boxes, check_image_size
from tutorial_det.viz.core import class_colour, draw_boxes

#: Colour and name of each anchor label (1 object, 0 background, -1 ignored) in every figure.
LABEL_COLOURS = {1: "#2ca02c", 0: "#d62728", -1: "#8c8c8c"}
LABEL_NAMES = {1: "positive", 0: "negative", -1: "ignored"}


def draw_cell_grid(
    ax: Axes,
    image_size: Sequence[int],
    stride: float,
    colour="#808080",
    linewidth: float = 0.5,
    alpha: float = 0.6,
) -> LineCollection:
    """The borders of the ``stride x stride`` feature cells over an image of ``(height, width)``:
    one line every ``stride`` pixels, as one ``LineCollection`` (returned)."""
    height, width = check_image_size(image_size)
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    xs = torch.arange(0, width + 1e-6, stride).tolist()
    ys = torch.arange(0, height + 1e-6, stride).tolist()
    segments = [[(x, 0), (x, height)] for x in xs] + [[(0, y), (width, y)] for y in ys]
    lines = LineCollection(segments, colors=colour, linewidths=linewidth, alpha=alpha)
    ax.add_collection(lines)
    return lines


def draw_cell(ax: Axes, row: int, column: int, stride: float, colour="yellow") -> Rectangle:
    """Shade the feature cell at (``row``, ``column``) and mark its centre
    ``((column + 0.5) * stride, (row + 0.5) * stride)``; returns the cell's patch."""
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    cell = torch.tensor([[column, row, column + 1, row + 1]], dtype=torch.float64) * stride
    (patch,) = draw_boxes(ax, cell, colour=colour, fill=True, alpha=0.6, linewidth=1)
    ax.plot([(column + 0.5) * stride], [(row + 0.5) * stride], "+", color="black", markersize=8)
    return patch


def draw_anchors(
    ax: Axes,
    anchors: torch.Tensor,
    image_size: Sequence[int] | None = None,
    colours: Sequence | None = None,
    linewidth: float = 1.5,
) -> list[Rectangle]:
    """Outline ``[N, 4]`` xyxy anchors, anchor ``i`` in ``colours[i]`` (default: one colour per
    index). With ``image_size`` ``(height, width)``, anchors crossing the image border are dashed.
    Returns one ``Rectangle`` per anchor, in order."""
    anchors = check_boxes(torch.as_tensor(anchors), "anchors").detach().cpu()
    if colours is not None and len(colours) != len(anchors):
        raise ValueError(f"colours has {len(colours)} entries for {len(anchors)} anchors")
    if image_size is not None:
        height, width = check_image_size(image_size)
        inside = (
            (anchors[:, 0] >= 0)
            & (anchors[:, 1] >= 0)
            & (anchors[:, 2] <= width)
            & (anchors[:, 3] <= height)
        ).tolist()
    else:
        inside = [True] * len(anchors)
    patches = []
    for i, box in enumerate(anchors):
        colour = colours[i] if colours is not None else class_colour(i)
        style = "-" if inside[i] else "--"
        patches += draw_boxes(ax, box[None], colour=colour, linewidth=linewidth, linestyle=style)
    return patches


def _difference(a: list[float], b: list[float]) -> list[list[float]]:
    """Box ``a`` minus box ``b`` as at most four disjoint xyxy boxes (left, right, top, bottom)."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    if x1 >= x2 or y1 >= y2:
        return [a] if a[2] > a[0] and a[3] > a[1] else []
    parts = [
        [a[0], a[1], x1, a[3]],  # left of the overlap, full height
        [x2, a[1], a[2], a[3]],  # right of the overlap, full height
        [x1, a[1], x2, y1],  # above the overlap
        [x1, y2, x2, a[3]],  # below the overlap
    ]
    return [p for p in parts if p[2] > p[0] and p[3] > p[1]]


def draw_overlap(
    ax: Axes,
    box_a: Sequence[float] | torch.Tensor,
    box_b: Sequence[float] | torch.Tensor,
    colours=("tab:blue", "tab:orange"),
    union_colour="#c6dbef",
    intersection_colour="#6a51a3",
) -> dict[str, list[Rectangle]]:
    """Two xyxy boxes with their union and intersection shaded: the two regions that make up IoU.

    Returns:
        ``{"intersection": [patch] (empty when the boxes do not overlap), "union": the patches
        shading the rest of the union (the parts of each box outside the other, at most 8),
        "outlines": [box a, box b]}``. The union is the ``"union"`` and ``"intersection"`` patches
        together; none of them overlap, so each shade is uniform.
    """
    boxes = check_boxes(torch.as_tensor([list(box_a), list(box_b)], dtype=torch.float64))
    a, b = boxes.tolist()
    rest = _difference(a, b) + _difference(b, a)
    inter = [max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]
    inter = [inter] if inter[2] > inter[0] and inter[3] > inter[1] else []
    shade = {"linewidth": 0, "fill": True, "alpha": 1.0}
    return {
        "union": draw_boxes(ax, torch.tensor(rest).reshape(-1, 4), colour=union_colour, **shade),
        "intersection": draw_boxes(
            ax, torch.tensor(inter).reshape(-1, 4), colour=intersection_colour, **shade
        ),
        "outlines": draw_boxes(ax, boxes[:1], colour=colours[0], linewidth=2.5)
        + draw_boxes(ax, boxes[1:], colour=colours[1], linewidth=2.5),
    }


def draw_labelled_anchors(
    ax: Axes,
    anchors: torch.Tensor,
    labels: torch.Tensor,
    show: Sequence[int] = (-1, 0, 1),
    linewidth: float = 1.0,
) -> dict[int, PolyCollection]:
    """Outline anchors in their label's colour (:data:`LABEL_COLOURS`): green positive (1), red
    negative (0), grey ignored (-1).

    Args:
        anchors: ``[N, 4]`` xyxy.
        labels: ``[N]`` integers in {1, 0, -1}.
        show: the labels to draw, in drawing order (the last on top). Thousands of anchors are
            drawn as one ``PolyCollection`` per label, fast enough to redraw in a widget.

    Returns:
        ``{label: PolyCollection}`` for each label in ``show``; ``len(c.get_paths())`` is the
        number of anchors drawn with that label.
    """
    anchors = check_boxes(torch.as_tensor(anchors), "anchors").detach().cpu()
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.shape != (len(anchors),):
        raise ValueError(
            f"labels must have shape [{len(anchors)}] (one per anchor), got {list(labels.shape)}"
        )
    for label in show:
        if label not in LABEL_COLOURS:
            raise ValueError(f"show holds {label}, which is not a label (1, 0 or -1)")
    drawn = {}
    for label in show:
        x1, y1, x2, y2 = anchors[labels == label].unbind(1)
        corners = torch.stack((x1, y1, x2, y1, x2, y2, x1, y2), dim=1).reshape(-1, 4, 2)
        # Fainter lines the more anchors there are, thicker ones for the (few) positives.
        alpha = 0.9 if len(corners) <= 50 else 0.5 if len(corners) <= 500 else 0.15
        collection = PolyCollection(
            corners.numpy(),
            facecolors="none",
            edgecolors=LABEL_COLOURS[label],
            linewidths=linewidth * (2.0 if label == 1 else 0.8),
            alpha=alpha,
            label=f"{LABEL_NAMES[label]} ({len(corners)})",
        )
        ax.add_collection(collection)
        drawn[label] = collection
    return drawn
