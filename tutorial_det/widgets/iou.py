"""IoUExplorer: two boxes moved and resized by sliders, their IoU live, intersection and union
shaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.axes import Axes

from tutorial_det.boxes import box_area, box_iou
from tutorial_det.viz.anchors import draw_overlap
from tutorial_det.viz.captions import add_caption
from tutorial_det.widgets.base import Explorer


@dataclass(frozen=True)
class IoUView:
    """Two boxes and the numbers that make their IoU.

    Attributes:
        box_a, box_b: ``[4]`` xyxy.
        area_a, area_b: their areas.
        intersection_size: ``(width, height)`` of their overlap (0 where they do not overlap).
        intersection, union: areas; ``union = area_a + area_b - intersection``.
        iou: ``intersection / union`` (from :func:`tutorial_det.boxes.box_iou`).
    """

    box_a: torch.Tensor
    box_b: torch.Tensor
    area_a: float
    area_b: float
    intersection_size: tuple[float, float]
    intersection: float
    union: float
    iou: float


class IoUExplorer(Explorer):
    """Move and resize two boxes on a square canvas and watch their IoU.

    Controls (``IntSlider``): :attr:`a_left`, :attr:`a_top`, :attr:`a_width`, :attr:`a_height`
    and the same for box B (``b_left`` ...). A box may run past the canvas' right or bottom edge:
    its IoU is still exact, only the drawing is cut. Widths and heights go down to 0: a
    zero-area box is drawn as a line or a point, and two of them have IoU 0 (lesson 00).

    Args:
        box_a, box_b: starting boxes, xyxy.
        canvas: side of the square canvas in pixels (the sliders' range).
    """

    def __init__(
        self,
        box_a: Sequence[float] = (20, 20, 120, 120),
        box_b: Sequence[float] = (70, 70, 170, 170),
        canvas: int = 200,
    ) -> None:
        if canvas < 2:
            raise ValueError(f"canvas must be at least 2 pixels, got {canvas}")
        self.canvas = int(canvas)
        sliders = []
        for name, box in (("A", box_a), ("B", box_b)):
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            if (
                not (0 <= x1 <= x2 <= x1 + canvas and 0 <= y1 <= y2 <= y1 + canvas)
                or max(x1, y1) > canvas
            ):
                raise ValueError(
                    f"box_{name.lower()} = {tuple(box)} must be xyxy with 0 <= x1 <= x2, "
                    f"0 <= y1 <= y2, corner and size within the {canvas}-pixel canvas"
                )
            for key, value in (("left", x1), ("top", y1), ("width", x2 - x1), ("height", y2 - y1)):
                # a width or height of 0 is allowed: lesson 00's zero-area boxes
                slider = widgets.IntSlider(
                    value=value, min=0, max=self.canvas, description=f"{name} {key}"
                )
                setattr(self, f"{name.lower()}_{key}", slider)
                sliders.append(slider)
        super().__init__(sliders, figsize=(5.0, 5.0))

    def _box(self, name: str) -> torch.Tensor:
        left, top, width, height = (
            float(getattr(self, f"{name}_{key}").value)
            for key in ("left", "top", "width", "height")
        )
        return torch.tensor([left, top, left + width, top + height], dtype=torch.float64)

    def compute(self) -> IoUView:
        a, b = self._box("a"), self._box("b")
        size = (torch.minimum(a[2:], b[2:]) - torch.maximum(a[:2], b[:2])).clamp(min=0)
        area_a, area_b = box_area(torch.stack((a, b))).tolist()
        intersection = float(size[0] * size[1])
        return IoUView(
            box_a=a,
            box_b=b,
            area_a=area_a,
            area_b=area_b,
            intersection_size=(float(size[0]), float(size[1])),
            intersection=intersection,
            union=area_a + area_b - intersection,
            iou=float(box_iou(a[None], b[None])[0, 0]),
        )

    def describe(self, view: IoUView) -> str:
        w, h = view.intersection_size
        parts = (
            f"Intersection {w:g} x {h:g} = {view.intersection:g}; "
            f"union {view.area_a:g} + {view.area_b:g} - {view.intersection:g} = {view.union:g}."
        )
        if view.union == 0:
            return (
                "IoU = 0: both boxes have zero area, so 0 / 0 would be NaN; box_iou defines "
                f"the IoU of an empty union as 0. {parts}"
            )
        return f"IoU = {view.intersection:g} / {view.union:g} = {view.iou:.3f}. {parts}"

    def draw(self, ax: Axes, view: IoUView) -> None:
        draw_overlap(ax, view.box_a, view.box_b)
        for name, box, colour in (("A", view.box_a, "tab:blue"), ("B", view.box_b, "tab:orange")):
            x1, y1, x2, y2 = box.tolist()
            if x1 == x2 or y1 == y2:  # a zero-area box has no outline: draw the line or point
                ax.plot([x1, x2], [y1, y2], color=colour, linewidth=2.5, marker="o")
            add_caption(ax, (x1, y1, x2, y2), name, colour, fontsize=11)
        ax.set_xlim(0, self.canvas)
        ax.set_ylim(self.canvas, 0)  # y grows downwards, as in an image
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_title(f"IoU {view.iou:.3f}: intersection (dark) / union (all shading)", fontsize=10)
