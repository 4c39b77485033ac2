"""PriorsExplorer: one feature cell's SSD priors on an image, and the ground truths they match."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.axes import Axes

from tutorial_det.anchors import prior_boxes
from tutorial_det.boxes import box_convert, box_iou
from tutorial_det.ssd import SMALL_SSD_ASPECT_RATIOS, SMALL_SSD_SCALES, SMALL_SSD_STRIDES
from tutorial_det.viz.core import draw_boxes, draw_legend, to_display_image
from tutorial_det.widgets.base import (
    GT_COLOUR,
    Explorer,
    cell_sliders,
    draw_cell_backdrop,
    draw_ground_truth,
    format_numbers,
    frame,
    ground_truth,
    parse_numbers,
    regrid_cell_sliders,
)

#: Priors that match a ground truth (IoU >= threshold) are green, the others orange.
MATCHED_COLOUR = "#2ca02c"
UNMATCHED_COLOUR = "#ff7f0e"


@dataclass(frozen=True)
class PriorsView:
    """One cell's priors and their overlaps with the ground truth.

    Attributes:
        level: index of the feature map; stride: its input pixels per cell.
        feature_size: ``(rows, columns)`` of the map, ``(H // stride, W // stride)``.
        scale, next_scale: ``s_k`` (from the control) and ``s_{k+1}`` (the configured scale of
            the next map): the second square prior has side ``sqrt(s_k * s_{k+1})``.
        ratios: the aspect ratios other than 1 (each adds ``a`` and ``1 / a``).
        priors_per_cell, level_total: priors per cell and on the whole map.
        cell: ``(row, column)``.
        cell_priors: ``[A, 4]`` xyxy pixels, in :func:`tutorial_det.anchors.prior_boxes` order.
        iou: ``[A, G]`` IoU of each of them with each ground truth.
        matched: ``[A]`` int64, the best ground truth of each prior when its IoU reaches the
            threshold, else -1 (the threshold rule of SSD's matching; the forced best-prior rule
            needs every prior of the image and is not shown here).
        threshold: the IoU threshold.
    """

    level: int
    stride: int
    feature_size: tuple[int, int]
    scale: float
    next_scale: float
    ratios: tuple[float, ...]
    priors_per_cell: int
    level_total: int
    cell: tuple[int, int]
    cell_priors: torch.Tensor
    iou: torch.Tensor
    matched: torch.Tensor
    threshold: float

    @property
    def matched_gt(self) -> list[int]:
        """Indices of the ground truths matched by at least one of the cell's priors."""
        return sorted(set(self.matched[self.matched >= 0].tolist()))


class PriorsExplorer(Explorer):
    """Pick a feature map, a prior scale, aspect ratios and a cell; see the cell's priors on the
    image and which ground truths they match.

    Controls (set ``.value`` to drive it from code): :attr:`level` (``IntSlider``: which feature
    map; choosing one resets :attr:`scale` to that map's configured scale and keeps the selected
    cell over the same image point), :attr:`scale` (``FloatSlider``, ``s_k`` as a fraction of the
    image side), :attr:`ratios` (``Text``: ratios other than 1, e.g. ``"2"`` or ``"2, 3"``),
    :attr:`row`, :attr:`column` (``IntSlider`` over the map's cells) and :attr:`threshold`
    (``FloatSlider``, the matching IoU).

    Args:
        image: the picture (``[3, H, W]`` tensor, PIL image or array).
        gt_boxes: ``[G, 4]`` xyxy ground truth; gt_labels / class_names caption them.
        strides, scales, aspect_ratios: the detector's priors (default: the small SSD of
            :mod:`tutorial_det.ssd`): one stride and ratio list per map, one more scale than maps.
        level, row, column: the starting map and cell (default: map 0, the middle cell).
    """

    def __init__(
        self,
        image,
        gt_boxes: torch.Tensor,
        gt_labels: Sequence[int] | torch.Tensor | None = None,
        class_names: Sequence[str] | dict[int, str] | None = None,
        strides: Sequence[int] = SMALL_SSD_STRIDES,
        scales: Sequence[float] = SMALL_SSD_SCALES,
        aspect_ratios: Sequence[Sequence[float]] = SMALL_SSD_ASPECT_RATIOS,
        level: int = 0,
        row: int | None = None,
        column: int | None = None,
        threshold: float = 0.5,
    ) -> None:
        self.image = to_display_image(image)
        self.image_size = tuple(int(v) for v in self.image.shape[:2])
        self.gt_boxes, self.gt_names = ground_truth(gt_boxes, gt_labels, class_names)
        if not (len(strides) == len(aspect_ratios) == len(scales) - 1 >= 1):
            raise ValueError(
                f"need one stride and one ratio list per feature map and one more scale: got "
                f"{len(strides)} strides, {len(aspect_ratios)} aspect_ratios, {len(scales)} scales"
            )
        if min(strides) < 1 or max(strides) > min(self.image_size):
            raise ValueError(
                f"strides {tuple(strides)} must lie in [1, {min(self.image_size)}] for this image"
            )
        self.strides = tuple(int(s) for s in strides)
        self.scales = tuple(float(s) for s in scales)
        self.aspect_ratios = tuple(tuple(float(r) for r in a) for a in aspect_ratios)
        if not 0 <= level < len(self.strides):
            raise ValueError(f"level must be in [0, {len(self.strides) - 1}], got {level}")
        rows, columns = (v // self.strides[level] for v in self.image_size)
        self.level = widgets.IntSlider(
            value=level, min=0, max=len(self.strides) - 1, description="feature map"
        )
        self.scale = widgets.FloatSlider(
            value=self.scales[level], min=0.02, max=1.5, step=0.005, description="scale s_k"
        )
        self.ratios = widgets.Text(
            value=format_numbers(self.aspect_ratios[level]),
            description="ratios besides 1 (w / h)",
            continuous_update=False,
        )
        self.row, self.column = cell_sliders(rows, columns, row, column)
        self.threshold = widgets.FloatSlider(
            value=threshold, min=0.05, max=1.0, step=0.05, description="match: IoU >="
        )
        super().__init__(
            [self.level, self.scale, self.ratios, self.row, self.column, self.threshold],
            figsize=(6.0, 6.0 * self.image_size[0] / self.image_size[1] + 0.4),
        )

    def sync_controls(self, change: dict) -> None:
        """A new feature map: its configured scale and ratios, and the cell under the same point."""
        if change["owner"] is not self.level:
            return
        old, new = self.strides[change["old"]], self.strides[change["new"]]
        self.scale.value = self.scales[change["new"]]
        self.ratios.value = format_numbers(self.aspect_ratios[change["new"]])
        regrid_cell_sliders((self.row, self.column), self.image_size, old, new)

    def compute(self) -> PriorsView:
        level = int(self.level.value)
        stride = self.strides[level]
        text = self.ratios.value.strip()
        ratios = parse_numbers(text, "ratios") if text else ()
        if any(abs(r - 1) < 1e-9 for r in ratios):
            raise ValueError("ratios: leave out 1, the two square priors are always there")
        rows, columns = (v // stride for v in self.image_size)
        scale, next_scale = round(float(self.scale.value), 6), self.scales[level + 1]
        normalised = prior_boxes(
            [(rows, columns)],
            (scale, next_scale),
            [ratios],
            steps=(stride,),
            image_size=self.image_size,
        )
        height, width = self.image_size
        pixels = torch.tensor([width, height, width, height], dtype=torch.float32)
        per_cell = 2 + 2 * len(ratios)
        row, column = int(self.row.value), int(self.column.value)
        first = (row * columns + column) * per_cell
        cell = box_convert(normalised[first : first + per_cell], "cxcywh", "xyxy") * pixels
        iou = box_iou(cell, self.gt_boxes)
        threshold = round(float(self.threshold.value), 6)
        matched = torch.full((per_cell,), -1, dtype=torch.int64)
        if len(self.gt_boxes):
            best, index = iou.max(dim=1)
            matched = torch.where(best >= threshold, index, matched)
        return PriorsView(
            level=level,
            stride=stride,
            feature_size=(rows, columns),
            scale=scale,
            next_scale=next_scale,
            ratios=ratios,
            priors_per_cell=per_cell,
            level_total=len(normalised),
            cell=(row, column),
            cell_priors=cell,
            iou=iou,
            matched=matched,
            threshold=threshold,
        )

    def describe(self, view: PriorsView) -> str:
        rows, columns = view.feature_size
        row, column = view.cell
        sizes = ", ".join(
            f"{w:.0f}x{h:.0f}"
            for w, h in (view.cell_priors[:, 2:] - view.cell_priors[:, :2]).tolist()
        )
        text = (
            f"Feature map {view.level} (stride {view.stride}, {rows} x {columns} cells): "
            f"{view.priors_per_cell} priors per cell, {view.level_total} on the map. Cell (row "
            f"{row}, column {column}), centred at ({(column + 0.5) * view.stride:g}, "
            f"{(row + 0.5) * view.stride:g}), has priors of {sizes} px (w x h)."
        )
        if view.iou.numel() == 0:
            return text + " The image has no ground truth."
        best = float(view.iou.max())
        prior, gt = divmod(int(view.iou.argmax()), view.iou.shape[1])
        count = int((view.matched >= 0).sum())
        matched = ", ".join(self.gt_names[g] for g in view.matched_gt) or "none"
        return text + (
            f" Best IoU with a ground truth: {best:.2f}, prior {prior} with {self.gt_names[gt]}. "
            f"Priors with IoU >= {view.threshold:g}: {count} of {view.priors_per_cell}; ground truths "
            f"matched: {matched}."
        )

    def draw(self, ax: Axes, view: PriorsView) -> None:
        draw_cell_backdrop(ax, self.image, view.stride, view.cell)
        matched = set(view.matched_gt)
        for g, box in enumerate(self.gt_boxes):
            draw_ground_truth(
                ax,
                box[None],
                [self.gt_names[g]],
                linewidth=3 if g in matched else 1,
                fill=g in matched,
                alpha=0.35 if g in matched else 1.0,
            )
        for box, m in zip(view.cell_priors, view.matched.tolist(), strict=True):
            draw_boxes(
                ax,
                box[None],
                colour=MATCHED_COLOUR if m >= 0 else UNMATCHED_COLOUR,
                linewidth=2 if m >= 0 else 1.2,
                linestyle="-" if m >= 0 else "--",
            )
        frame(ax, view.cell_priors, self.image_size)
        entries = [
            (f"prior, IoU >= {view.threshold:g}", MATCHED_COLOUR),
            ("prior, no match", UNMATCHED_COLOUR, {"linestyle": "--"}),
            ("ground truth (shaded: matched)", GT_COLOUR, {"linewidth": 3}),
        ]
        draw_legend(ax, entries, fontsize=7)
        ax.set_title(
            f"map {view.level} (stride {view.stride}): the priors of cell {view.cell}", fontsize=10
        )
