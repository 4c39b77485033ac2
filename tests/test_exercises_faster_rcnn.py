"""The Faster R-CNN exercise checks: the reference passes, and the seed notebook's bugs (and
other usual mistakes) fail the case written for them."""

from __future__ import annotations

import torch.nn.functional as F

from tutorial_det.exercises import (
    check_proposal_targets,
    check_roi_head_loss,
    check_rpn_loss,
    check_to_anchor_order,
)
from tutorial_det.roi import proposal_targets, roi_head_loss
from tutorial_det.rpn import rpn_loss, to_anchor_order


def failed(result) -> list[str]:
    return [message.split("]")[0].lstrip("[") for message in result.failures]


def test_references_pass():
    assert check_to_anchor_order(to_anchor_order, verbose=False)
    assert check_rpn_loss(rpn_loss, verbose=False)
    assert check_roi_head_loss(roi_head_loss, verbose=False)
    assert check_proposal_targets(
        lambda p, g, lab: proposal_targets(
            p, g, lab, batch_size_per_image=10_000, positive_fraction=0.5
        ),
        verbose=False,
    )


def test_reshape_without_permute_fails():
    result = check_to_anchor_order(lambda out, k: out.reshape(len(out), -1, k), verbose=False)
    assert not result and "a 2 x 3 map: rows outside, columns inside" in failed(result)
    assert "one cell, two anchors" not in failed(result)  # a single cell cannot show it


def test_column_major_order_fails():
    result = check_to_anchor_order(
        lambda out, k: out.permute(0, 3, 2, 1).reshape(len(out), -1, k), verbose=False
    )
    assert "a 2 x 3 map: rows outside, columns inside" in failed(result)


def test_seed_rpn_loss_fails_every_case():
    def seed_total(logits, deltas, labels, targets):
        label_loss = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), ignore_index=-1)
        return label_loss, 10 * label_loss  # label loss twice, no box term

    result = check_rpn_loss(seed_total, verbose=False)
    assert "the total is label + lambda x box, not label twice" in failed(result)
    assert "nothing sampled gives 0, not NaN" in failed(result)


def test_box_loss_divided_by_positives_fails():
    def by_positives(logits, deltas, labels, targets):
        objectness, box = rpn_loss(logits, deltas, labels, targets)
        return objectness, box * (labels >= 0).sum() / (labels == 1).sum().clamp(min=1)

    result = check_rpn_loss(by_positives, verbose=False)
    assert "normalised by the sampled anchors, not by the positives" in failed(result)
    assert "nothing sampled gives 0, not NaN" not in failed(result)


def test_roi_loss_bugs_fail():
    def every_class(logits, deltas, labels, targets):
        positive = labels > 0
        box = F.smooth_l1_loss(
            deltas[positive],
            targets[positive, None].expand(-1, deltas.shape[1], 4),
            beta=1 / 9,
            reduction="sum",
        )
        return F.cross_entropy(logits, labels), box / len(labels)

    assert "the positive's own class only" in failed(
        check_roi_head_loss(every_class, verbose=False)
    )

    def by_positives(logits, deltas, labels, targets):
        classifier, box = roi_head_loss(logits, deltas, labels, targets)
        return classifier, box * len(labels) / (labels > 0).sum().clamp(min=1)

    assert "normalised by the RoIs sampled here, not by another stage's positives" in failed(
        check_roi_head_loss(by_positives, verbose=False)
    )


def test_proposal_targets_without_ground_truths_added_fails():
    def no_gt(proposals, gt_boxes, gt_labels):
        return proposal_targets(
            proposals,
            gt_boxes,
            gt_labels,
            batch_size_per_image=10_000,
            positive_fraction=0.5,
            add_ground_truth=False,
        )

    result = check_proposal_targets(no_gt, verbose=False)
    assert "add the ground truths to the proposals" in failed(result)
    assert "no ground truth: everything is background" not in failed(result)
