"""The Faster R-CNN checks (anchor order, RPN loss, RoI head loss, proposal targets): right
answers written differently pass; the walkthrough's mistakes are named by their cause."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tutorial_det.boxes import box_iou, encode_boxes
from tutorial_det.exercises import (
    check_proposal_targets,
    check_roi_head_loss,
    check_rpn_loss,
    check_to_anchor_order,
)
from tutorial_det.exercises.mistakes.faster_rcnn import RPN_LOSS, TO_ANCHOR_ORDER
from tutorial_det.roi import proposal_targets, roi_head_loss
from tutorial_det.rpn import rpn_loss, to_anchor_order


def order_by_views(output, k):
    n, channels, height, width = output.shape
    return output.view(n, channels // k, k, height, width).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


def order_loop(output, k):
    n, channels, height, width = output.shape
    rows = [
        output[b, a * k : (a + 1) * k, i, j]
        for b in range(n)
        for i in range(height)
        for j in range(width)
        for a in range(channels // k)
    ]
    return torch.stack(rows).reshape(n, -1, k)


@pytest.mark.parametrize(
    "fn",
    [
        to_anchor_order,
        order_by_views,
        order_loop,
        lambda out, k: (
            out.movedim(1, -1).flatten(1, 2).unflatten(1, (-1, 1)).reshape(len(out), -1, k)
        ),
    ],
)
def test_right_anchor_orders_pass(fn):
    assert check_to_anchor_order(fn, verbose=False)


def test_the_22500_anchor_case_names_the_cause_not_the_shape():
    result = check_to_anchor_order(TO_ANCHOR_ORDER.named("order_without_permute").fn, verbose=False)
    seed_case = [f for f in result.failures if f.startswith("[the walkthrough's 50 x 50 map")]
    assert seed_case and "expected shape" not in seed_case[0]  # the shape is right
    assert result.headline.startswith("check_to_anchor_order: You reshape without permuting")


def rpn_loss_ignore_index(logits, deltas, labels, target_deltas):
    count = max(int((labels >= 0).sum()), 1)
    objectness = F.cross_entropy(
        logits.reshape(-1, 2), labels.reshape(-1), ignore_index=-1, reduction="sum"
    )
    positive = labels == 1
    box = F.smooth_l1_loss(deltas[positive], target_deltas[positive], beta=1 / 9, reduction="sum")
    return objectness / count, box / count


def rpn_loss_loop(logits, deltas, labels, target_deltas):
    objectness, box, count = 0.0, 0.0, 0
    for logit, delta, label, target in zip(
        logits.reshape(-1, 2),
        deltas.reshape(-1, 4),
        labels.reshape(-1).tolist(),
        target_deltas.reshape(-1, 4),
        strict=True,
    ):
        if label < 0:
            continue
        count += 1
        objectness += -torch.log_softmax(logit, 0)[label]
        if label == 1:
            diff = (delta - target).abs()
            box += torch.where(diff < 1 / 9, 0.5 * diff**2 * 9, diff - 0.5 / 9).sum()
    count = max(count, 1)
    return torch.as_tensor(objectness) / count, torch.as_tensor(box) / count


@pytest.mark.parametrize("fn", [rpn_loss, rpn_loss_ignore_index, rpn_loss_loop])
def test_right_rpn_losses_pass(fn):
    assert check_rpn_loss(fn, verbose=False)


def test_the_seeds_label_loss_twice_is_named():
    def seed_total(logits, deltas, labels, targets):
        label_loss = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), ignore_index=-1)
        return label_loss, label_loss  # the box term is the label loss again

    result = check_rpn_loss(seed_total, verbose=False)
    assert result.causes[0] is RPN_LOSS.named("rpn_label_loss_twice")


def roi_loss_by_hand(class_logits, box_deltas, labels, target_deltas):
    count = max(len(labels), 1)
    classifier = F.cross_entropy(class_logits, labels, reduction="sum") / count
    rows = torch.arange(len(labels))[labels > 0]
    own = box_deltas[rows, labels[rows]]
    return classifier, F.smooth_l1_loss(
        own, target_deltas[rows], beta=1 / 9, reduction="sum"
    ) / count


def roi_loss_loop(class_logits, box_deltas, labels, target_deltas):
    classifier = class_logits.sum() * 0
    box = class_logits.sum() * 0
    for logits, deltas, label, target in zip(
        class_logits, box_deltas, labels.tolist(), target_deltas, strict=True
    ):
        classifier = classifier - torch.log_softmax(logits, 0)[label]
        if label > 0:
            box = box + F.smooth_l1_loss(deltas[label], target, beta=1 / 9, reduction="sum")
    count = max(len(labels), 1)
    return classifier / count, box / count


@pytest.mark.parametrize("fn", [roi_head_loss, roi_loss_by_hand, roi_loss_loop])
def test_right_roi_losses_pass(fn):
    assert check_roi_head_loss(fn, verbose=False)


def targets_by_hand(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    labels = torch.zeros(len(candidates), dtype=torch.int64)
    deltas = torch.zeros_like(candidates)
    if len(gt_boxes):
        best, matched = box_iou(candidates, gt_boxes).max(dim=1)
        positive = best >= 0.5
        labels[positive] = gt_labels[matched[positive]]
        deltas[positive] = encode_boxes(
            gt_boxes[matched[positive]], candidates[positive], (10, 10, 5, 5)
        )
    return candidates, labels, deltas


def targets_negatives_first(proposals, gt_boxes, gt_labels):
    """The same rows in another order: the check compares them as a set."""
    rois, labels, deltas = targets_by_hand(proposals, gt_boxes, gt_labels)
    order = labels.argsort(stable=True)
    return rois[order], labels[order], deltas[order]


@pytest.mark.parametrize(
    "fn",
    [
        lambda p, g, lab: proposal_targets(
            p, g, lab, batch_size_per_image=10_000, positive_fraction=0.5
        ),
        targets_by_hand,
        targets_negatives_first,
    ],
)
def test_right_proposal_targets_pass(fn):
    assert check_proposal_targets(fn, verbose=False)
