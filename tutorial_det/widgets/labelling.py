"""LabellingExplorer: the RPN's anchor labels on an image, live as the thresholds and the
sampling change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from matplotlib.axes import Axes

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.labelling import label_anchors, sample_labels
from tutorial_det.viz.anchors import draw_labelled_anchors
from tutorial_det.viz.core import show_image, to_display_image
from tutorial_det.widgets.base import Explorer, draw_ground_truth, ground_truth


def _counts(labels: torch.Tensor) -> tuple[int, int, int]:
    return int((labels == 1).sum()), int((labels == 0).sum()), int((labels == -1).sum())


@dataclass(frozen=True)
class LabellingView:
    """Labels of the inside anchors for the current controls.

    Attributes:
        labels: ``[K]`` int64 in {1, 0, -1} for the ``K`` inside anchors, from
            :func:`tutorial_det.labelling.label_anchors`.
        sampled: ``[K]`` after :func:`tutorial_det.labelling.sample_labels`, or None when
            sampling is off.
        counts: ``(positive, negative, ignored)`` of ``labels``.
        sampled_counts: the same for ``sampled`` (None when sampling is off).
        batch_size_per_image: the mini-batch size asked for (None when sampling is off).
    """

    labels: torch.Tensor
    sampled: torch.Tensor | None
    counts: tuple[int, int, int]
    sampled_counts: tuple[int, int, int] | None
    batch_size_per_image: int | None


class LabellingExplorer(Explorer):
    """Label an image's anchors positive / negative / ignored and sample a mini-batch.

    Only anchors lying entirely inside the image are labelled (the others are ignored in
    training, as in the Faster R-CNN paper). Controls (set ``.value`` to drive it from code):
    :attr:`pos_thresh`, :attr:`neg_thresh` (``FloatSlider``), :attr:`sample` (``Checkbox``),
    :attr:`batch_size_per_image` (``IntSlider``), :attr:`positive_fraction` (``FloatSlider``),
    :attr:`seed` (``IntSlider``: which random mini-batch) and :attr:`show_positive`,
    :attr:`show_negative`, :attr:`show_ignored` (``Checkbox``: what is drawn).

    Args:
        image: the picture (``[3, H, W]`` tensor, PIL image or array); its size sets the grid.
        gt_boxes: ``[G, 4]`` xyxy ground-truth boxes.
        gt_labels: ``[G]`` class ids; class_names: their names (a list or dict). The boxes are
            captioned ``gt 0``, ``gt 1``, ... (``gt 0 (person)`` with labels), as the lessons
            number them.
        stride, ratios, scales: the anchors (Faster R-CNN's 16, 0.5/1/2, 8/16/32).
        pos_thresh, neg_thresh, batch_size_per_image, positive_fraction, seed: starting values.
    """

    def __init__(
        self,
        image,
        gt_boxes: torch.Tensor,
        gt_labels: Sequence[int] | torch.Tensor | None = None,
        class_names: Sequence[str] | dict[int, str] | None = None,
        stride: int = 16,
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        scales: Sequence[float] = (8, 16, 32),
        pos_thresh: float = 0.7,
        neg_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.image = to_display_image(image)
        self.image_size = tuple(int(v) for v in self.image.shape[:2])
        self.gt_boxes, self.gt_names = ground_truth(gt_boxes, gt_labels, class_names)
        feature_size = (self.image_size[0] // stride, self.image_size[1] // stride)
        every = grid_anchors(anchor_base(stride, ratios, scales), feature_size, stride)
        self.total = len(every)
        self.anchors = every[inside_anchors(every, self.image_size)]
        self.pos_thresh = widgets.FloatSlider(
            value=pos_thresh, min=0.05, max=1.0, step=0.05, description="positive: IoU >="
        )
        self.neg_thresh = widgets.FloatSlider(
            value=neg_thresh, min=0.0, max=1.0, step=0.05, description="negative: IoU <"
        )
        self.sample = widgets.Checkbox(value=True, description="sample a mini-batch")
        self.batch_size_per_image = widgets.IntSlider(
            value=batch_size_per_image, min=0, max=1024, step=16, description="batch size"
        )
        self.positive_fraction = widgets.FloatSlider(
            value=positive_fraction,
            min=0.0,
            max=1.0,
            step=0.05,
            description="max positive share",
        )
        self.seed = widgets.IntSlider(value=seed, min=0, max=99, description="sampling seed")
        self.show_positive = widgets.Checkbox(value=True, description="draw positives")
        self.show_negative = widgets.Checkbox(value=True, description="draw negatives")
        self.show_ignored = widgets.Checkbox(value=False, description="draw ignored")
        super().__init__(
            [
                self.pos_thresh,
                self.neg_thresh,
                self.sample,
                self.batch_size_per_image,
                self.positive_fraction,
                self.seed,
                self.show_positive,
                self.show_negative,
                self.show_ignored,
            ],
            figsize=(6.5, 6.5 * self.image_size[0] / self.image_size[1] + 0.4),
        )

    def compute(self) -> LabellingView:
        # Sliders in the browser can send 0.7000000000000001 for 0.7: keep what the user meant.
        pos, neg = round(self.pos_thresh.value, 6), round(self.neg_thresh.value, 6)
        if neg > pos:
            raise ValueError(
                f"the negative threshold ({neg:g}) is above the positive one ({pos:g}): an anchor "
                "cannot be both; lower the negative threshold or raise the positive one"
            )
        labels, _ = label_anchors(self.anchors, self.gt_boxes, pos, neg)
        if not self.sample.value:
            return LabellingView(labels, None, _counts(labels), None, None)
        generator = torch.Generator().manual_seed(int(self.seed.value))
        batch = int(self.batch_size_per_image.value)
        sampled = sample_labels(labels, batch, round(self.positive_fraction.value, 6), generator)
        return LabellingView(labels, sampled, _counts(labels), _counts(sampled), batch)

    def describe(self, view: LabellingView) -> str:
        pos, neg, ign = view.counts
        inside = len(self.anchors)
        text = (
            f"{inside} of {self.total} anchors lie inside the image (the other "
            f"{self.total - inside} are ignored). Labelled: {pos} positive, {neg} negative, "
            f"{ign} ignored."
        )
        if view.sampled_counts is None:
            return text + " No sampling: every labelled anchor counts in the loss."
        pos, neg, ign = view.sampled_counts
        return (
            text + f" Sampled (batch {view.batch_size_per_image}): {pos} positive, {neg} negative, "
            f"{ign} ignored."
        )

    def draw(self, ax: Axes, view: LabellingView) -> None:
        show_image(self.image, ax=ax)
        labels = view.labels if view.sampled is None else view.sampled
        show = [
            label
            for label, box in (
                (-1, self.show_ignored),
                (0, self.show_negative),
                (1, self.show_positive),
            )
            if box.value
        ]
        draw_labelled_anchors(ax, self.anchors, labels, show=show)
        draw_ground_truth(ax, self.gt_boxes, self.gt_names, linewidth=3)
        height, width = self.image_size
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        if show:
            ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
        which = "sampled mini-batch" if view.sampled is not None else "all labels"
        ax.set_title(f"anchor labels ({which}); ground truth in blue", fontsize=10)
