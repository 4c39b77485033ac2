"""AnchorExplorer: every anchor of an image's feature grid, and one cell's anchors drawn on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.axes import Axes

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.viz.anchors import draw_anchors
from tutorial_det.viz.core import class_colour, draw_legend, to_display_image
from tutorial_det.widgets.base import (
    Explorer,
    cell_sliders,
    draw_cell_backdrop,
    format_numbers,
    frame,
    parse_numbers,
    regrid_cell_sliders,
)


@dataclass(frozen=True)
class AnchorView:
    """The anchors selected by an :class:`AnchorExplorer`'s controls.

    Attributes:
        stride: input pixels per feature cell.
        feature_size: ``(rows, columns)`` of the feature grid: ``(H // stride, W // stride)``.
        anchors_per_cell: ``len(ratios) * len(scales)``.
        total: anchors on the whole grid, ``rows * columns * anchors_per_cell``.
        inside: how many of them lie entirely inside the image.
        cell: ``(row, column)`` of the selected cell.
        cell_anchors: ``[anchors_per_cell, 4]`` xyxy anchors of that cell, ratio by ratio.
        cell_inside: ``[anchors_per_cell]`` bool, which of them lie inside the image.
        ratios, scales: the values in use.
    """

    stride: int
    feature_size: tuple[int, int]
    anchors_per_cell: int
    total: int
    inside: int
    cell: tuple[int, int]
    cell_anchors: torch.Tensor
    cell_inside: torch.Tensor
    ratios: tuple[float, ...]
    scales: tuple[float, ...]


class AnchorExplorer(Explorer):
    """Change the stride, aspect ratios, scales and the cell; see the anchor counts and the cell's
    anchors on the image.

    Controls (set ``.value`` to drive it from code): :attr:`stride` (``IntSlider``),
    :attr:`ratios` and :attr:`scales` (``Text``, numbers separated by commas), :attr:`row` and
    :attr:`column` (``IntSlider`` over the feature grid; their range follows the stride, and a
    new stride keeps the selected cell over the same image point).

    Args:
        image: the picture (``[3, H, W]`` tensor, PIL image or array); its size sets the grid.
        stride, ratios, scales: starting values (Faster R-CNN's 16, 0.5/1/2, 8/16/32).
        row, column: the starting cell (default: the middle of the grid).
    """

    def __init__(
        self,
        image,
        stride: int = 16,
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        scales: Sequence[float] = (8, 16, 32),
        row: int | None = None,
        column: int | None = None,
    ) -> None:
        self.image = to_display_image(image)
        self.image_size = tuple(int(v) for v in self.image.shape[:2])
        smallest = min(self.image_size)
        if smallest < 4:
            raise ValueError(f"image is {self.image_size[0]} x {self.image_size[1]}: too small")
        max_stride = min(64, smallest)
        if not 1 <= stride <= max_stride:
            raise ValueError(f"stride must be in [1, {max_stride}] for this image, got {stride}")
        rows, columns = (v // stride for v in self.image_size)
        self.stride = widgets.IntSlider(
            value=stride, min=4 if stride >= 4 else 1, max=max_stride, step=1, description="stride"
        )
        self.ratios = widgets.Text(
            value=format_numbers(ratios), description="ratios (h / w)", continuous_update=False
        )
        self.scales = widgets.Text(
            value=format_numbers(scales),
            description="scales (x stride)",
            continuous_update=False,
        )
        self.row, self.column = cell_sliders(rows, columns, row, column)
        super().__init__([self.stride, self.ratios, self.scales, self.row, self.column])

    def sync_controls(self, change: dict) -> None:
        """A new stride: resize the row and column sliders, keeping the same image point."""
        if change["owner"] is not self.stride:
            return
        regrid_cell_sliders((self.row, self.column), self.image_size, change["old"], change["new"])

    def compute(self) -> AnchorView:
        stride = int(self.stride.value)
        ratios = parse_numbers(self.ratios.value, "ratios")
        scales = parse_numbers(self.scales.value, "scales")
        rows, columns = (v // stride for v in self.image_size)
        per_cell = len(ratios) * len(scales)
        anchors = grid_anchors(anchor_base(stride, ratios, scales), (rows, columns), stride)
        inside = inside_anchors(anchors, self.image_size)
        row, column = int(self.row.value), int(self.column.value)
        first = (row * columns + column) * per_cell
        return AnchorView(
            stride=stride,
            feature_size=(rows, columns),
            anchors_per_cell=per_cell,
            total=len(anchors),
            inside=int(inside.sum()),
            cell=(row, column),
            cell_anchors=anchors[first : first + per_cell],
            cell_inside=inside[first : first + per_cell],
            ratios=ratios,
            scales=scales,
        )

    def describe(self, view: AnchorView) -> str:
        rows, columns = view.feature_size
        row, column = view.cell
        stride = view.stride
        return (
            f"{view.total} anchors ({rows} x {columns} cells x {view.anchors_per_cell} per "
            f"cell), {view.inside} inside the image. Cell (row {row}, column {column}) is centred "
            f"at ({(column + 0.5) * stride:g}, {(row + 0.5) * stride:g}): "
            f"{int(view.cell_inside.sum())} of its {view.anchors_per_cell} anchors lie inside."
        )

    def draw(self, ax: Axes, view: AnchorView) -> None:
        draw_cell_backdrop(ax, self.image, view.stride, view.cell)
        n_scales = len(view.scales)
        colours = [class_colour(i // n_scales) for i in range(view.anchors_per_cell)]
        draw_anchors(ax, view.cell_anchors, self.image_size, colours=colours)
        frame(ax, view.cell_anchors, self.image_size)
        entries = [(f"ratio {r:g}", class_colour(i)) for i, r in enumerate(view.ratios)]
        draw_legend(ax, [*entries, ("crosses the border", "black", {"linestyle": "--"})])
        ax.set_title(f"stride {view.stride}: the anchors of cell {view.cell}", fontsize=10)
