"""ProposalsExplorer: the proposal layer of a region proposal network, live as its three knobs
(top-N before NMS, the NMS threshold, top-N after NMS) change."""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection

from tutorial_det.boxes import check_boxes
from tutorial_det.rpn import candidate_boxes, objectness_probability, select_proposals
from tutorial_det.viz.core import draw_boxes, show_image, to_display_image
from tutorial_det.widgets.base import GT_COLOUR, Explorer, set_slider

#: Proposals go from yellow (best) to dark purple (worst kept) on matplotlib's viridis scale.
PROPOSAL_COLOURS = "viridis"


@dataclass(frozen=True)
class ProposalsView:
    """What the proposal layer keeps for the current controls.

    Attributes:
        boxes: ``[P, 4]`` xyxy proposals, best first; ``scores``: ``[P]`` their objectness.
        anchors: number of anchors (one candidate box each).
        candidates: boxes left after decoding, clipping and removing boxes under ``min_size``.
        pre_nms: boxes entering NMS (``min(pre_nms_top_n, candidates)``).
        after_nms: boxes NMS keeps.
        kept: proposals kept after the top-N after NMS (``len(boxes)``).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    anchors: int
    candidates: int
    pre_nms: int
    after_nms: int
    kept: int


class ProposalsExplorer(Explorer):
    """Explore the proposal layer on one image.

    The RPN's predictions are given once (anchors, objectness, deltas); decoding, clipping and
    the ``min_size`` filter are done once (:func:`tutorial_det.rpn.candidate_boxes`), and every
    change of a control reruns the selection (:func:`tutorial_det.rpn.select_proposals`).

    Controls (set ``.value`` to drive it from code): :attr:`pre_nms_top_n` (``IntSlider``),
    :attr:`nms_thresh` (``FloatSlider``), :attr:`post_nms_top_n` (``IntSlider``) and
    :attr:`show_gt` (``Checkbox``). The picture draws the kept proposals coloured by rank (at
    most ``max_drawn`` of them, the best ones; one ``PolyCollection`` in :attr:`Explorer.ax`) over
    the image, and the ground truth as dashed blue rectangles.

    Args:
        image: the picture (``[3, H, W]`` tensor, PIL image or array); its size clips the boxes.
        anchors: ``[K, 4]`` xyxy anchors of the RPN.
        logits: ``[K, 2]`` (background, object) logits, or ``[K]`` objectness probabilities.
        deltas: ``[K, 4]`` predicted ``(dx, dy, dw, dh)``.
        gt_boxes: optional ``[G, 4]`` xyxy ground truth, drawn in blue.
        min_size: smallest proposal side kept, pixels.
        pre_nms_top_n, nms_thresh, post_nms_top_n: starting values (the paper's training values).
        max_drawn: at most this many proposals are drawn (all are counted).
    """

    def __init__(
        self,
        image,
        anchors: torch.Tensor,
        logits: torch.Tensor,
        deltas: torch.Tensor,
        gt_boxes: torch.Tensor | None = None,
        *,
        min_size: float = 16.0,
        pre_nms_top_n: int = 12000,
        nms_thresh: float = 0.7,
        post_nms_top_n: int = 2000,
        max_drawn: int = 300,
    ) -> None:
        self.image = to_display_image(image)
        self.image_size = tuple(int(v) for v in self.image.shape[:2])
        # the explorer computes on the CPU, whatever device the model's outputs come from
        anchors = check_boxes(anchors.detach().cpu().float(), "anchors")
        logits = logits.detach().cpu().float()
        scores = objectness_probability(logits) if logits.ndim == 2 else logits
        self.anchor_count = len(anchors)
        self.boxes, self.scores = candidate_boxes(
            anchors, scores, deltas.detach().cpu().float(), self.image_size, min_size
        )
        self.gt_boxes = (
            torch.zeros(0, 4)
            if gt_boxes is None
            else check_boxes(torch.as_tensor(gt_boxes).cpu().float().as_subclass(torch.Tensor))
        )
        self.max_drawn = int(max_drawn)
        top = max(len(self.boxes), 1)
        self.pre_nms_top_n = widgets.IntSlider(
            value=min(pre_nms_top_n, top), min=1, max=top, description="top-N before NMS"
        )
        self.nms_thresh = widgets.FloatSlider(
            value=nms_thresh, min=0.05, max=1.0, step=0.05, description="NMS IoU threshold"
        )
        self.post_nms_top_n = widgets.IntSlider(
            value=min(post_nms_top_n, self.pre_nms_top_n.value),
            min=1,
            max=self.pre_nms_top_n.value,
            description="top-N after NMS",
        )
        self._post_nms_wanted = self.post_nms_top_n.value
        self.show_gt = widgets.Checkbox(value=True, description="draw ground truth")
        super().__init__(
            [self.pre_nms_top_n, self.nms_thresh, self.post_nms_top_n, self.show_gt],
            figsize=(6.5, 6.5 * self.image_size[0] / self.image_size[1] + 0.4),
        )

    @classmethod
    def from_model(cls, model, image: torch.Tensor, gt_boxes=None, **options) -> ProposalsExplorer:
        """The explorer for ``model``'s RPN on ``image`` ``[3, H, W]``: ``model`` is a
        :class:`tutorial_det.faster_rcnn.FasterRCNN` (its backbone and ``rpn``). The controls
        start at the model's test-time proposal settings unless ``options`` say otherwise."""
        settings = model.rpn.test_proposals
        options.setdefault("min_size", settings.min_size)
        options.setdefault("pre_nms_top_n", settings.pre_nms_top_n)
        options.setdefault("nms_thresh", settings.nms_thresh)
        options.setdefault("post_nms_top_n", settings.post_nms_top_n)
        with torch.no_grad():
            batch, _ = model.transform([image])
            anchors, logits, deltas = model.rpn.predict(model.backbone(batch))
        return cls(image, anchors, logits[0], deltas[0], gt_boxes, **options)

    def sync_controls(self, change: dict) -> None:
        # top-N after NMS can never exceed top-N before it: lowering the first pulls the second
        # down with it, and raising it again gives back the value last chosen for the second.
        if change["owner"] is self.post_nms_top_n:
            self._post_nms_wanted = change["new"]
        elif change["owner"] is self.pre_nms_top_n:
            pre = self.pre_nms_top_n.value
            set_slider(self.post_nms_top_n, min(self._post_nms_wanted, pre), pre)

    def compute(self) -> ProposalsView:
        if len(self.boxes) == 0:
            raise ValueError(
                f"no candidate box is left of the {self.anchor_count} anchors after clipping and "
                "the min_size filter"
            )
        pre = int(self.pre_nms_top_n.value)
        survivors, scores = select_proposals(
            self.boxes, self.scores, pre, round(self.nms_thresh.value, 6), None
        )
        post = int(self.post_nms_top_n.value)
        return ProposalsView(
            boxes=survivors[:post],
            scores=scores[:post],
            anchors=self.anchor_count,
            candidates=len(self.boxes),
            pre_nms=min(pre, len(self.boxes)),
            after_nms=len(survivors),
            kept=min(post, len(survivors)),
        )

    def describe(self, view: ProposalsView) -> str:
        return (
            f"{view.anchors} anchors; {view.candidates} boxes after clipping and the size "
            f"filter; the best {view.pre_nms} enter NMS (threshold "
            f"{round(self.nms_thresh.value, 6):g}); {view.after_nms} survive; {view.kept} "
            f"proposals kept (top {self.post_nms_top_n.value})."
        )

    def draw(self, ax: Axes, view: ProposalsView) -> None:
        show_image(self.image, ax=ax)
        drawn = min(view.kept, self.max_drawn)
        # One collection of outlines (fast to render), worst first so the best lie on top.
        x1, y1, x2, y2 = view.boxes[:drawn].flip(0).unbind(1)
        corners = torch.stack((x1, y1, x2, y1, x2, y2, x1, y2), dim=1).reshape(-1, 4, 2)
        ranks = torch.arange(drawn - 1, -1, -1, dtype=torch.float32) / max(drawn - 1, 1)
        colours = matplotlib.colormaps[PROPOSAL_COLOURS](1.0 - ranks.numpy())
        ax.add_collection(
            PolyCollection(
                corners.numpy(), closed=True, facecolors="none", edgecolors=colours, linewidths=1.0
            )
        )
        if self.show_gt.value and len(self.gt_boxes):
            draw_boxes(ax, self.gt_boxes, colour=GT_COLOUR, linewidth=2.5, linestyle="--")
        height, width = self.image_size
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        more = f" (best {drawn} drawn)" if drawn < view.kept else ""
        ax.set_title(f"{view.kept} proposals{more}; yellow = best", fontsize=10)
