"""The region proposal network: head outputs in anchor order, the proposal layer against
torchvision's operations, the loss against torchvision's RegionProposalNetwork, edge cases."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork as TorchvisionRPN

from tutorial_det.anchors import anchor_base, grid_anchors
from tutorial_det.labelling import anchor_targets
from tutorial_det.naive import anchors_loop
from tutorial_det.rpn import (
    TEST_PROPOSALS,
    ProposalSettings,
    RegionProposalNetwork,
    RPNHead,
    candidate_boxes,
    objectness_probability,
    propose,
    rpn_loss,
    select_proposals,
    to_anchor_order,
)

# --------------------------------------------------------------------------- head and order


def test_head_channels_and_initialisation():
    torch.manual_seed(0)
    head = RPNHead(512, 9)
    assert head.cls_logits.out_channels == 18 and head.bbox_pred.out_channels == 36
    for layer in (head.conv, head.cls_logits, head.bbox_pred):
        assert torch.count_nonzero(layer.bias) == 0
        assert abs(layer.weight.std().item() - 0.01) < 1e-3
        assert abs(layer.weight.mean().item()) < 1e-3
    logits, deltas = head(torch.randn(1, 512, 50, 50))
    assert logits.shape == (1, 18, 50, 50) and deltas.shape == (1, 36, 50, 50)
    with pytest.raises(ValueError, match="num_anchors must be a positive int"):
        RPNHead(512, 0)


def test_to_anchor_order_matches_the_row_major_anchor_loop():
    # A map whose channel a * 4 + d at cell (i, j) holds coordinate d of anchor (i, j, a),
    # built with the seed-style loop (rows outside, columns inside): after to_anchor_order,
    # row k must be anchor k of grid_anchors.
    height, width, stride = 3, 5, 16
    anchors = anchors_loop((height, width), stride)  # [H * W * 9, 4]
    grid = anchors.reshape(height, width, 9 * 4).permute(2, 0, 1)[None]  # [1, 36, H, W]
    ordered = to_anchor_order(grid, 4)[0]
    torch.testing.assert_close(ordered, grid_anchors(anchor_base(), (3, 5), 16), rtol=0, atol=1e-4)
    # reshaping without the permute mixes cells: row 1 would hold channels 4..7 of cell (0, 0)
    assert not torch.allclose(grid.reshape(1, -1, 4)[0], ordered)


def test_column_major_anchors_do_not_line_up_with_the_predictions():
    # The walkthrough's anchors went column by column; a head's output permuted to (N, H, W, A) goes
    # row by row. On a non-square map the two orders place anchor k on different cells.
    anchors = grid_anchors(anchor_base(), (3, 5), 16).reshape(3, 5, 9, 4)
    column_major = anchors.permute(1, 0, 2, 3).reshape(-1, 4)
    row_major = anchors.reshape(-1, 4)
    same = (column_major == row_major).all(dim=1)
    assert same[:9].all()  # cell (0, 0) is first in both orders
    assert not same[9:18].any()  # next: cell (1, 0) versus cell (0, 1)


def test_rpn_predictions_line_up_with_the_anchors():
    # Features carry each cell's row and column; the 3x3 conv passes them through and the box
    # conv turns them into the anchor of that cell: predict() must return the anchors themselves.
    rpn = RegionProposalNetwork(2, stride=16, mid_channels=2)
    height, width = 4, 6
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    features = torch.stack((cols, rows))[None]  # channel 0: column j, channel 1: row i
    with torch.no_grad():
        rpn.head.conv.weight.zero_()
        rpn.head.conv.weight[0, 0, 1, 1] = rpn.head.conv.weight[1, 1, 1, 1] = 1.0
        weight = torch.zeros(36, 2, 1, 1)
        for a in range(9):
            for d in range(4):
                weight[a * 4 + d, d % 2] = 16.0  # x coordinates follow j, y coordinates follow i
        rpn.head.bbox_pred.weight.copy_(weight)
        rpn.head.bbox_pred.bias.copy_(rpn.base_anchors.reshape(-1))
        anchors, logits, deltas = rpn.predict(features)
    assert anchors.shape == (height * width * 9, 4) and logits.shape == (1, height * width * 9, 2)
    assert torch.equal(deltas[0], anchors)


# --------------------------------------------------------------------------- proposal layer


def torchvision_proposals(anchors, scores, deltas, image_size, settings):
    """The same steps with torchvision's operations (its BoxCoder with weights 1, 1, 1, 1)."""
    coder = torchvision.models.detection._utils.BoxCoder((1.0, 1.0, 1.0, 1.0))
    boxes = coder.decode_single(deltas, anchors)
    boxes = torchvision.ops.clip_boxes_to_image(boxes, image_size)
    keep = torchvision.ops.remove_small_boxes(boxes, settings.min_size)
    boxes, scores = boxes[keep], scores[keep]
    top = scores.topk(min(settings.pre_nms_top_n, len(scores))).indices
    boxes, scores = boxes[top], scores[top]
    keep = torchvision.ops.nms(boxes, scores, settings.nms_thresh)[: settings.post_nms_top_n]
    return boxes[keep], scores[keep]


@given(
    seed=st.integers(0, 10_000),
    pre=st.integers(1, 400),
    post=st.integers(1, 300),
    thresh=st.sampled_from([0.3, 0.5, 0.7, 0.9]),
    min_size=st.sampled_from([0.0, 4.0, 16.0]),
)
def test_propose_matches_torchvision_operations(seed, pre, post, thresh, min_size):
    generator = torch.Generator().manual_seed(seed)
    anchors = grid_anchors(anchor_base(16, scales=(1, 2, 4)), (6, 7), 16)  # 378 anchors
    deltas = torch.randn(len(anchors), 4, generator=generator) * 0.5
    scores = torch.rand(len(anchors), generator=generator)
    settings = ProposalSettings(pre, post, thresh, min_size)
    boxes, kept_scores = propose(anchors, scores, deltas, (96, 112), settings)
    want_boxes, want_scores = torchvision_proposals(anchors, scores, deltas, (96, 112), settings)
    torch.testing.assert_close(boxes, want_boxes, rtol=0, atol=1e-4)
    assert torch.equal(kept_scores, want_scores)
    assert len(boxes) <= post
    assert bool((boxes[:, 2] <= 112).all() and (boxes[:, 3] <= 96).all() and (boxes >= 0).all())


def test_proposal_layer_known_answer():
    anchors = torch.tensor(
        [
            [0.0, 0, 20, 20],  # kept, best
            [1, 1, 21, 21],  # IoU 0.82 with the first: suppressed at 0.7
            [-30, -30, 10, 10],  # clipped to [0, 0, 10, 10]: too small for min_size 16
            [50, 50, 90, 90],  # kept
            [60, 60, 200, 200],  # crosses the 100 x 100 image: clipped to [60, 60, 100, 100]
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.99, 0.5, 0.7])
    boxes, candidates = candidate_boxes(anchors, scores, torch.zeros(5, 4), (100, 100), 16)
    assert candidates.tolist() == pytest.approx([0.9, 0.8, 0.5, 0.7])
    assert boxes[-1].tolist() == [60, 60, 100, 100]
    kept, kept_scores = select_proposals(boxes, candidates, 10, 0.7, None)
    assert kept_scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    # top-N before NMS keeps the two best candidates only; top-N after NMS then keeps one
    assert select_proposals(boxes, candidates, 2, 0.7, None)[1].tolist() == pytest.approx([0.9])
    assert select_proposals(boxes, candidates, 10, 0.7, 2)[1].tolist() == pytest.approx([0.9, 0.7])
    # NMS at 0.9 no longer suppresses the second anchor
    assert len(select_proposals(boxes, candidates, 10, 0.9, None)[0]) == 4


def test_degenerate_and_outside_boxes_are_removed_not_returned():
    anchors = torch.tensor([[200.0, 200, 300, 300], [10, 10, 10, 40], [-50, 10, -5, 40]])
    boxes, scores = propose(
        anchors, torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, 4), (100, 100), TEST_PROPOSALS
    )
    assert boxes.shape == (0, 4) and scores.shape == (0,)  # all clip to zero width
    boxes, _ = propose(
        anchors, torch.ones(3), torch.zeros(3, 4), (100, 100), ProposalSettings(10, 10, 0.7, 0.0)
    )
    assert boxes.shape == (3, 4)  # with min_size 0, zero-width boxes stay (torchvision's rule)


def test_proposal_settings_validation():
    with pytest.raises(ValueError, match="pre_nms_top_n must be a positive int"):
        ProposalSettings(0, 10)
    with pytest.raises(ValueError, match="nms_thresh must be in"):
        ProposalSettings(10, 10, 1.5)
    with pytest.raises(ValueError, match="scores .* must be \\[K\\]"):
        candidate_boxes(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3, 4), (10, 10), 0)


# --------------------------------------------------------------------------- loss


def random_batch(seed: int, images: int = 2, anchors: int = 300):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(images, anchors, 2, generator=generator)
    deltas = torch.randn(images, anchors, 4, generator=generator)
    targets = torch.randn(images, anchors, 4, generator=generator)
    labels = torch.randint(-1, 2, (images, anchors), generator=generator)
    # at most 128 positives and 256 in all per image: torchvision's sampler then keeps them all
    for i in range(images):
        labels[i, 100:] = -1
    return logits, deltas, labels, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rpn_loss_matches_torchvision(seed, device):
    logits, deltas, labels, targets = (t.to(device) for t in random_batch(seed))
    tv_rpn = TorchvisionRPN(AnchorGenerator(), torch.nn.Identity(), 0.7, 0.3, 256, 0.5, {}, {}, 0.7)
    # two logits (background b, object o) are one logit o - b: softmax CE = sigmoid BCE
    objectness = (logits[..., 1] - logits[..., 0]).reshape(-1, 1)
    want_obj, want_box = tv_rpn.compute_loss(
        objectness,
        deltas.reshape(-1, 4),
        [image_labels.float() for image_labels in labels],
        list(targets),
    )
    obj, box = rpn_loss(logits, deltas, labels, targets)
    torch.testing.assert_close(obj, want_obj)
    torch.testing.assert_close(box, want_box)
    # box_weight scales the box term only
    obj10, box10 = rpn_loss(logits, deltas, labels, targets, box_weight=10.0)
    torch.testing.assert_close(obj10, obj)
    torch.testing.assert_close(box10, 10 * box)


def test_rpn_loss_known_answer():
    # Two sampled anchors (one positive, one negative), one ignored; beta 1: textbook smooth L1.
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, -5.0]])
    deltas = torch.tensor([[0.5, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
    labels = torch.tensor([1, 0, -1])
    obj, box = rpn_loss(logits, deltas, labels, torch.zeros(3, 4), beta=1.0)
    assert obj.item() == pytest.approx(torch.log(torch.tensor(2.0)).item())  # ln 2 per anchor
    assert box.item() == pytest.approx((0.5 * 0.5**2 + (2.0 - 0.5)) / 2)  # one positive, S = 2


def test_rpn_loss_with_nothing_sampled_is_zero_and_connected():
    logits = torch.randn(1, 5, 2, requires_grad=True)
    deltas = torch.randn(1, 5, 4, requires_grad=True)
    obj, box = rpn_loss(logits, deltas, torch.full((1, 5), -1), torch.zeros(1, 5, 4))
    assert obj.item() == 0 and box.item() == 0
    (obj + box).backward()
    assert logits.grad is not None and torch.count_nonzero(logits.grad) == 0


def test_rpn_loss_validation():
    logits, deltas, labels, targets = random_batch(0)
    with pytest.raises(ValueError, match="logits .* and deltas"):
        rpn_loss(logits[..., :1], deltas, labels, targets)
    with pytest.raises(ValueError, match=r"labels\[0, 3\] = 2 is not one of 1, 0, -1"):
        bad = labels.clone()
        bad[0, 3] = 2
        rpn_loss(logits, deltas, bad, targets)
    with pytest.raises(TypeError, match="labels must be int64"):
        rpn_loss(logits, deltas, labels.float(), targets)


# --------------------------------------------------------------------------- the module


def small_rpn(**options) -> RegionProposalNetwork:
    torch.manual_seed(0)
    return RegionProposalNetwork(
        8,
        scales=(1, 2, 4),
        train_proposals=ProposalSettings(300, 50, 0.7, 1.0),
        test_proposals=ProposalSettings(200, 20, 0.7, 1.0),
        **options,
    )


def test_rpn_training_gives_losses_and_proposals_per_image(device):
    rpn = small_rpn().to(device).train()
    features = torch.randn(2, 8, 8, 8, device=device, requires_grad=True)
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 40, 50]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # no object
    ]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    # the second image is smaller than the padded batch: its proposals stay inside 96 x 64
    proposals, losses = rpn(features, [(128, 128), (96, 64)], targets)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert [len(p) <= 50 for p in proposals] == [True, True]
    assert bool((proposals[1][:, 2] <= 64).all() and (proposals[1][:, 3] <= 96).all())
    assert not proposals[0].requires_grad
    sum(losses.values()).backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_rpn_without_ground_truth_has_no_box_loss():
    rpn = small_rpn().train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    _, losses = rpn(torch.randn(1, 8, 8, 8), [(128, 128)], [empty])
    assert losses["loss_rpn_box_reg"].item() == 0
    # 256 negatives sampled, each close to ln 2 with the untrained head
    assert losses["loss_objectness"].item() == pytest.approx(0.693, abs=0.01)


def test_rpn_eval_uses_the_test_settings_and_returns_no_loss():
    rpn = small_rpn().eval()
    proposals, losses = rpn(torch.randn(1, 8, 8, 8), [(128, 128)])
    assert losses == {} and len(proposals[0]) <= 20
    with pytest.raises(ValueError, match="needs one target per image"):
        rpn.train()(torch.randn(1, 8, 8, 8), [(128, 128)])
    with pytest.raises(ValueError, match="image_sizes has 2 entries for a batch of 1"):
        rpn(torch.randn(1, 8, 8, 8), [(128, 128), (128, 128)])


@pytest.mark.parametrize("ignore", [True, False])
def test_border_anchors_ignored_or_kept(monkeypatch, ignore):
    import tutorial_det.rpn as rpn_module

    seen = []

    def spy(anchors, gt_boxes, image_size=None, **options):
        seen.append(image_size)
        return anchor_targets(anchors, gt_boxes, image_size, **options)

    monkeypatch.setattr(rpn_module, "anchor_targets", spy)
    rpn = small_rpn(ignore_border_anchors=ignore).train()
    target = {"boxes": torch.tensor([[0.0, 0, 30, 30]]), "labels": torch.tensor([1])}
    rpn(torch.randn(1, 8, 8, 8), [(128, 96)], [target])
    assert seen == [(128, 96) if ignore else None]


def test_objectness_probability_is_the_sigmoid_of_the_logit_difference():
    logits = torch.randn(10, 2)
    torch.testing.assert_close(
        objectness_probability(logits), torch.sigmoid(logits[:, 1] - logits[:, 0])
    )


def test_two_objectness_logits_under_adam_learn_like_one_at_twice_the_rate():
    # The pair (background b, object o) is one logit o - b, but each of the two layers gets
    # the same gradient, negated, and Adam moves each by the learning rate: o - b moves twice
    # as far per step as torchvision's single logit (whose layer needs 2 x lr to keep up).
    torch.manual_seed(0)
    ours = RPNHead(8, 3)
    theirs = torchvision.models.detection.rpn.RPNHead(8, 3)
    conv = theirs.conv[0][0]
    with torch.no_grad():
        conv.weight.copy_(ours.conv.weight)
        conv.bias.copy_(ours.conv.bias)
        theirs.cls_logits.weight.copy_(ours.cls_logits.weight[1::2] - ours.cls_logits.weight[0::2])
        theirs.cls_logits.bias.copy_(ours.cls_logits.bias[1::2] - ours.cls_logits.bias[0::2])
    features = torch.randn(2, 8, 5, 5)
    labels = torch.randint(-1, 2, (2, 75))
    sampled = labels >= 0

    def train(logit_rate: float) -> tuple[Tensor, Tensor]:
        ours_head, their_head = copy.deepcopy(ours), copy.deepcopy(theirs)
        ours_opt = torch.optim.Adam(ours_head.parameters(), lr=1e-2)
        their_opt = torch.optim.Adam(
            [
                {"params": their_head.conv.parameters()},
                {"params": their_head.cls_logits.parameters(), "lr": logit_rate},
            ],
            lr=1e-2,
        )
        for _ in range(10):
            pair = to_anchor_order(ours_head(features)[0], 2)
            loss = F.cross_entropy(pair[sampled], labels[sampled])
            one = to_anchor_order(their_head([features])[0][0], 1).squeeze(-1)
            their_loss = F.binary_cross_entropy_with_logits(one[sampled], labels[sampled].float())
            for optimizer, value in ((ours_opt, loss), (their_opt, their_loss)):
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
        weights = ours_head.cls_logits.weight
        return weights[1::2] - weights[0::2], their_head.cls_logits.weight

    difference, single = train(logit_rate=2e-2)
    torch.testing.assert_close(difference, single, rtol=1e-4, atol=1e-6)
    difference, single = train(logit_rate=1e-2)
    assert not torch.allclose(difference, single, rtol=1e-2, atol=1e-4)
