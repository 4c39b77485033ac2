"""ProposalsExplorer driven by setting ``.value`` on its sliders: its counts against the
package's proposal layer, the slider coupling and the drawing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.faster_rcnn import FasterRCNN
from tutorial_det.rpn import ProposalSettings, propose
from tutorial_det.widgets.proposals import ProposalsExplorer

IMAGE = torch.rand(3, 128, 160)


def predictions(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    anchors = grid_anchors(anchor_base(16, scales=(1, 2, 4)), (8, 10), 16)  # 720 anchors
    logits = torch.randn(len(anchors), 2, generator=g)
    deltas = torch.randn(len(anchors), 4, generator=g) * 0.2
    return anchors, logits, deltas


@pytest.fixture
def explorer() -> ProposalsExplorer:
    anchors, logits, deltas = predictions()
    gt = torch.tensor([[20.0, 30, 60, 70]])
    return ProposalsExplorer(
        IMAGE, anchors, logits, deltas, gt, min_size=4, pre_nms_top_n=500, post_nms_top_n=100
    )


def rectangles(explorer: ProposalsExplorer) -> list[Rectangle]:
    """The ground-truth boxes drawn."""
    return [p for p in explorer.ax.patches if isinstance(p, Rectangle)]


def drawn_proposals(explorer: ProposalsExplorer) -> torch.Tensor:
    """The outlines of the proposals drawn, as xyxy boxes, best first."""
    (collection,) = [c for c in explorer.ax.collections if isinstance(c, PolyCollection)]
    corners = torch.from_numpy(np.stack([p.vertices[:4] for p in collection.get_paths()])).float()
    boxes = torch.cat((corners.amin(dim=1), corners.amax(dim=1)), dim=1)
    return boxes.flip(0)


@pytest.mark.parametrize(
    ("pre", "thresh", "post"), [(500, 0.7, 100), (50, 0.5, 10), (720, 1.0, 720)]
)
def test_counts_and_boxes_match_the_proposal_layer(explorer, pre, thresh, post):
    with explorer.hold():
        explorer.pre_nms_top_n.value = pre
        explorer.nms_thresh.value = thresh
        explorer.post_nms_top_n.value = post
    anchors, logits, deltas = predictions()
    boxes, scores = propose(
        anchors,
        logits.softmax(-1)[:, 1],
        deltas,
        (128, 160),
        ProposalSettings(pre, min(post, pre), thresh, 4.0),
    )
    view = explorer.view
    assert view.anchors == 720 and view.kept == len(boxes)
    assert view.pre_nms == min(pre, view.candidates)
    torch.testing.assert_close(view.boxes, boxes)
    torch.testing.assert_close(view.scores, scores)
    assert f"; {view.kept} proposals kept" in explorer.sentence


def test_threshold_one_suppresses_nothing(explorer):
    explorer.nms_thresh.value = 1.0
    assert explorer.view.after_nms == explorer.view.pre_nms == 500
    explorer.nms_thresh.value = 0.3
    assert explorer.view.after_nms < 500


def test_post_slider_follows_the_pre_slider_down_and_back(explorer):
    assert (explorer.post_nms_top_n.value, explorer.post_nms_top_n.max) == (100, 500)
    explorer.pre_nms_top_n.value = 40
    assert explorer.post_nms_top_n.max == 40 and explorer.post_nms_top_n.value == 40
    assert explorer.view.kept <= 40
    explorer.pre_nms_top_n.value = 1
    assert (explorer.post_nms_top_n.value, explorer.view.kept) == (1, 1)
    # back up: the value last chosen for top-N after NMS returns, not the 1 it was dragged to
    explorer.pre_nms_top_n.value = 600
    assert explorer.post_nms_top_n.max == 600 and explorer.post_nms_top_n.value == 100
    assert "(top 100)" in explorer.sentence
    explorer.post_nms_top_n.value = 300  # a new choice, remembered in turn
    explorer.pre_nms_top_n.value = 200
    assert explorer.post_nms_top_n.value == 200
    explorer.pre_nms_top_n.value = 250
    assert explorer.post_nms_top_n.value == 250
    explorer.pre_nms_top_n.value = 700
    assert explorer.post_nms_top_n.value == 300


def test_drawing_shows_the_kept_proposals_and_the_ground_truth(explorer):
    explorer.post_nms_top_n.value = 7
    assert explorer.view.kept == 7
    torch.testing.assert_close(drawn_proposals(explorer), explorer.view.boxes, atol=1e-4, rtol=0)
    assert len(rectangles(explorer)) == 1  # the ground truth
    explorer.show_gt.value = False
    assert len(rectangles(explorer)) == 0 and len(drawn_proposals(explorer)) == 7
    assert explorer.picture.value[:4] == b"\x89PNG"


def test_max_drawn_caps_the_drawing_not_the_counts():
    anchors, logits, deltas = predictions()
    capped = ProposalsExplorer(IMAGE, anchors, logits, deltas, min_size=4, max_drawn=5)
    assert capped.view.kept > 5
    torch.testing.assert_close(drawn_proposals(capped), capped.view.boxes[:5], atol=1e-4, rtol=0)
    assert "best 5 drawn" in capped.ax.get_title()


def test_nothing_left_is_reported_not_raised():
    anchors = torch.tensor([[0.0, 0, 8, 8]])
    explorer = ProposalsExplorer(IMAGE, anchors, torch.zeros(1, 2), torch.zeros(1, 4), min_size=16)
    assert explorer.view is None and "Nothing to show" in explorer.sentence


def test_from_model_uses_the_model_rpn(device):
    torch.manual_seed(0)
    model = FasterRCNN(4).to(device).eval()
    gt = torch.tensor([[20.0, 30, 60, 70]], device=device)
    # the model's test-time settings; the explorer computes on the CPU wherever the model is
    explorer = ProposalsExplorer.from_model(model, IMAGE, gt)
    with torch.no_grad():
        features = model.backbone(model.transform([IMAGE])[0])
        proposals, _ = model.rpn(features, [(128, 160)])
    torch.testing.assert_close(explorer.view.boxes, proposals[0].cpu())
    assert explorer.post_nms_top_n.value == 150 and explorer.view.kept == 150
    wider = ProposalsExplorer.from_model(model, IMAGE, post_nms_top_n=300)
    assert wider.view.kept == 300
