"""Mistakes in the Faster R-CNN exercises of lessons 04 to 06: lining the RPN's output up with the
anchors (``check_to_anchor_order``), the RPN loss (``check_rpn_loss``), the RoI head's loss
(``check_roi_head_loss``) and its proposal targets (``check_proposal_targets``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tutorial_det.boxes import box_iou, encode_boxes
from tutorial_det.exercises.core import Catalogue

TO_ANCHOR_ORDER = Catalogue()
RPN_LOSS = Catalogue()
ROI_HEAD_LOSS = Catalogue()
PROPOSAL_TARGETS = Catalogue()

#: Smooth L1's transition point in both losses.
BETA = 1 / 9


# --------------------------------------------------------------------------- anchor order


@TO_ANCHOR_ORDER.add(
    "You reshape without permuting, which mixes values of different cells into one row: "
    "permute to (N, H, W, A * k) first, then reshape."
)
def order_without_permute(output, k):
    return output.reshape(len(output), -1, k)


@TO_ANCHOR_ORDER.add(
    "Your rows go column by column (W before H); the anchors go row by row, so permute to "
    "(N, H, W, A * k), i.e. permute(0, 2, 3, 1)."
)
def order_column_major(output, k):
    return output.permute(0, 3, 2, 1).reshape(len(output), -1, k)


@TO_ANCHOR_ORDER.add(
    "You read the channels as k groups of A; they are A groups of k (channels a * k to "
    "a * k + k - 1 belong to anchor a)."
)
def order_value_major(output, k):
    n, channels, height, width = output.shape
    grouped = output.reshape(n, k, channels // k, height, width)  # [N, k, A, H, W]
    return grouped.permute(0, 3, 4, 2, 1).reshape(n, -1, k)


@TO_ANCHOR_ORDER.add(
    "You reshape to a batch of 1 (as the walkthrough's view(1, -1, 4)); keep the batch size: "
    "reshape(N, -1, k)."
)
def order_batch_of_one(output, k):
    return output.permute(0, 2, 3, 1).reshape(1, -1, k)


@TO_ANCHOR_ORDER.add(
    "Your result has no batch dimension ([N * H * W * A, k]); keep it: [N, H * W * A, k]."
)
def order_without_batch(output, k):
    return output.permute(0, 2, 3, 1).reshape(-1, k)


# --------------------------------------------------------------------------- RPN loss


def _rpn_sums(logits, deltas, labels, target_deltas, beta=BETA):
    """Right sums: cross entropy over the sampled anchors, smooth L1 over the positives."""
    sampled, positive = labels >= 0, labels == 1
    objectness = F.cross_entropy(logits[sampled], labels[sampled], reduction="sum")
    box = F.smooth_l1_loss(deltas[positive], target_deltas[positive], beta=beta, reduction="sum")
    return objectness, box


def _sampled(labels):
    return (labels >= 0).sum().clamp(min=1)


@RPN_LOSS.add(
    "Your box term is the classification loss again (the walkthrough's label + lambda x label); "
    "it is the smooth L1 of the positives' deltas."
)
def rpn_label_loss_twice(logits, deltas, labels, target_deltas):
    objectness, _ = _rpn_sums(logits, deltas, labels, target_deltas)
    return objectness / _sampled(labels), objectness / _sampled(labels)


@RPN_LOSS.add(
    "You divide the box loss by the number of positives; both terms are divided by the number "
    "of sampled anchors (labels 0 and 1)."
)
def rpn_box_by_positives(logits, deltas, labels, target_deltas):
    objectness, box = _rpn_sums(logits, deltas, labels, target_deltas)
    return objectness / _sampled(labels), box / (labels == 1).sum().clamp(min=1)


@RPN_LOSS.add(
    "Your smooth L1 uses beta = 1 (F.smooth_l1_loss's default); this course uses beta = 1/9."
)
def rpn_beta_one(logits, deltas, labels, target_deltas):
    objectness, box = _rpn_sums(logits, deltas, labels, target_deltas, beta=1.0)
    return objectness / _sampled(labels), box / _sampled(labels)


@RPN_LOSS.add(
    "You pass the ignored anchors (label -1) to cross_entropy, which rejects the class -1: keep "
    "the sampled anchors only (labels >= 0)."
)
def rpn_ignored_in_cross_entropy(logits, deltas, labels, target_deltas):
    objectness = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1))
    _, box = _rpn_sums(logits, deltas, labels, target_deltas)
    return objectness, box / _sampled(labels)


@RPN_LOSS.add(
    "Your box loss averages over the positives' 4 x P coordinates (reduction='mean'); sum them "
    "and divide by the number of sampled anchors."
)
def rpn_box_mean_reduction(logits, deltas, labels, target_deltas):
    objectness, _ = _rpn_sums(logits, deltas, labels, target_deltas)
    positive = labels == 1
    box = F.smooth_l1_loss(deltas[positive], target_deltas[positive], beta=BETA)
    return objectness / _sampled(labels), box


@RPN_LOSS.add(
    "Your box loss counts the negatives too; only positive anchors (label 1) have a box to regress."
)
def rpn_box_on_negatives(logits, deltas, labels, target_deltas):
    objectness, _ = _rpn_sums(logits, deltas, labels, target_deltas)
    sampled = labels >= 0
    box = F.smooth_l1_loss(deltas[sampled], target_deltas[sampled], beta=BETA, reduction="sum")
    return objectness / _sampled(labels), box / _sampled(labels)


@RPN_LOSS.add("With no sampled anchor you divide 0 by 0 and get NaN: divide by max(count, 1).")
def rpn_nan_when_nothing_sampled(logits, deltas, labels, target_deltas):
    objectness, box = _rpn_sums(logits, deltas, labels, target_deltas)
    count = (labels >= 0).sum()
    return objectness / count, box / count


@RPN_LOSS.add(
    "You normalise each image by its own sampled anchors and average the images; divide the "
    "sums over the whole batch by the sampled anchors of the whole batch."
)
def rpn_per_image(logits, deltas, labels, target_deltas):
    terms = [_rpn_sums(*parts) for parts in zip(logits, deltas, labels, target_deltas, strict=True)]
    counts = [_sampled(image) for image in labels]
    objectness = torch.stack([o / c for (o, _), c in zip(terms, counts, strict=True)]).mean()
    box = torch.stack([b / c for (_, b), c in zip(terms, counts, strict=True)]).mean()
    return objectness, box


# --------------------------------------------------------------------------- RoI head loss


def _own_class(box_deltas, labels, target_deltas, rows, beta=BETA):
    """Smooth L1 sum of the deltas of each RoI's own class against its target, over ``rows``."""
    return F.smooth_l1_loss(
        box_deltas[rows, labels[rows]], target_deltas[rows], beta=beta, reduction="sum"
    )


def _positives(labels):
    return torch.where(labels > 0)[0]


def _classifier(class_logits, labels):
    """Right: the mean cross entropy of the sampled RoIs, 0 when there is none."""
    if len(labels) == 0:
        return class_logits.sum() * 0
    return F.cross_entropy(class_logits, labels)


@ROI_HEAD_LOSS.add(
    "Your box loss compares every class's deltas with the target; only the deltas of the RoI's "
    "own class count: box_deltas[i, labels[i]]."
)
def roi_loss_every_class(class_logits, box_deltas, labels, target_deltas):
    positive = labels > 0
    every = target_deltas[positive, None].expand(-1, box_deltas.shape[1], 4)
    box = F.smooth_l1_loss(box_deltas[positive], every, beta=BETA, reduction="sum")
    return _classifier(class_logits, labels), box / max(len(labels), 1)


@ROI_HEAD_LOSS.add(
    "You divide the box loss by the number of positives (the walkthrough even uses the RPN's); "
    "divide by this head's S sampled RoIs."
)
def roi_loss_by_positives(class_logits, box_deltas, labels, target_deltas):
    positive = _positives(labels)
    box = _own_class(box_deltas, labels, target_deltas, positive)
    return _classifier(class_logits, labels), box / max(len(positive), 1)


@ROI_HEAD_LOSS.add(
    "Your smooth L1 uses beta = 1 (F.smooth_l1_loss's default); this course uses beta = 1/9."
)
def roi_loss_beta_one(class_logits, box_deltas, labels, target_deltas):
    box = _own_class(box_deltas, labels, target_deltas, _positives(labels), beta=1.0)
    return _classifier(class_logits, labels), box / max(len(labels), 1)


@ROI_HEAD_LOSS.add(
    "Your box loss counts the background RoIs too; only positives (label > 0) have a box to "
    "regress."
)
def roi_loss_box_on_background(class_logits, box_deltas, labels, target_deltas):
    every = torch.arange(len(labels))
    box = _own_class(box_deltas, labels, target_deltas, every)
    return _classifier(class_logits, labels), box / max(len(labels), 1)


@ROI_HEAD_LOSS.add(
    "Your box loss averages over the positives' coordinates (reduction='mean'); sum them and "
    "divide by the number of sampled RoIs."
)
def roi_loss_box_mean_reduction(class_logits, box_deltas, labels, target_deltas):
    positive = _positives(labels)
    mine = box_deltas[positive, labels[positive]]
    box = F.smooth_l1_loss(mine, target_deltas[positive], beta=BETA)
    return _classifier(class_logits, labels), box


@ROI_HEAD_LOSS.add(
    "Your classifier loss covers the positives only; the background RoIs must learn class 0 too."
)
def roi_loss_classifier_on_positives(class_logits, box_deltas, labels, target_deltas):
    positive = _positives(labels)
    classifier = F.cross_entropy(class_logits[positive], labels[positive])
    box = _own_class(box_deltas, labels, target_deltas, positive)
    return classifier, box / max(len(labels), 1)


@ROI_HEAD_LOSS.add(
    "With no sampled RoI (S = 0) your losses are NaN (a mean over nothing): return 0 for both."
)
def roi_loss_nan_when_empty(class_logits, box_deltas, labels, target_deltas):
    box = _own_class(box_deltas, labels, target_deltas, _positives(labels))
    return F.cross_entropy(class_logits, labels), box / len(labels)


# --------------------------------------------------------------------------- proposal targets


def _match(candidates, gt_boxes):
    """Each candidate's best IoU and ground truth ``[P]``; zeros when there is none."""
    if len(gt_boxes) == 0:
        zeros = torch.zeros(len(candidates), dtype=torch.int64)
        return zeros.float(), zeros
    return box_iou(candidates, gt_boxes).max(dim=1)


def _targets(candidates, gt_boxes, gt_labels, positive, weights=(10.0, 10.0, 5.0, 5.0)):
    """Right labels and deltas for the candidates, given which of them are ``positive``."""
    _, matched = _match(candidates, gt_boxes)
    labels = torch.zeros(len(candidates), dtype=torch.int64)
    deltas = torch.zeros_like(candidates)
    if positive.any():
        labels[positive] = gt_labels[matched[positive]]
        deltas[positive] = encode_boxes(gt_boxes[matched[positive]], candidates[positive], weights)
    return candidates, labels, deltas


@PROPOSAL_TARGETS.add(
    "You leave the ground-truth boxes out of the candidates; add them to the proposals first "
    "(early in training they are the only good positives)."
)
def targets_without_ground_truths(proposals, gt_boxes, gt_labels):
    best, _ = _match(proposals, gt_boxes)
    return _targets(proposals, gt_boxes, gt_labels, best >= 0.5)


@PROPOSAL_TARGETS.add(
    "Your foreground threshold is strict (IoU > 0.5); a candidate with IoU exactly 0.5 is "
    "positive (>= 0.5)."
)
def targets_strict_threshold(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    best, _ = _match(candidates, gt_boxes)
    return _targets(candidates, gt_boxes, gt_labels, best > 0.5)


@PROPOSAL_TARGETS.add(
    "Your deltas have no weights; the RoI head's targets use the weights (10, 10, 5, 5): "
    "encode_boxes(gt, roi, weights=(10, 10, 5, 5))."
)
def targets_without_weights(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    best, _ = _match(candidates, gt_boxes)
    return _targets(candidates, gt_boxes, gt_labels, best >= 0.5, weights=(1.0, 1.0, 1.0, 1.0))


@PROPOSAL_TARGETS.add(
    "Your labels are the matched ground truths' indices; a positive's label is that ground "
    "truth's class, gt_labels[matched]."
)
def targets_index_as_label(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    best, _ = _match(candidates, gt_boxes)
    indices = torch.arange(len(gt_labels))
    return _targets(candidates, gt_boxes, indices, best >= 0.5)


@PROPOSAL_TARGETS.add(
    "Your background RoIs get deltas too; a background RoI has no box to regress: its deltas "
    "are zeros."
)
def targets_deltas_for_background(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    best, matched = _match(candidates, gt_boxes)
    candidates, labels, _ = _targets(candidates, gt_boxes, gt_labels, best >= 0.5)
    if len(gt_boxes) == 0:
        return candidates, labels, torch.zeros_like(candidates)
    return candidates, labels, encode_boxes(gt_boxes[matched], candidates, (10.0, 10.0, 5.0, 5.0))


@PROPOSAL_TARGETS.add(
    "Your deltas go from the ground truth to the RoI; they move the RoI onto its ground truth: "
    "encode_boxes(gt, roi, ...), ground truth first."
)
def targets_deltas_reversed(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    best, matched = _match(candidates, gt_boxes)
    positive = best >= 0.5
    candidates, labels, deltas = _targets(candidates, gt_boxes, gt_labels, positive)
    if positive.any():
        weights = (10.0, 10.0, 5.0, 5.0)
        deltas[positive] = encode_boxes(candidates[positive], gt_boxes[matched[positive]], weights)
    return candidates, labels, deltas


@PROPOSAL_TARGETS.add(
    "With no ground truth (G = 0) there is no maximum to take: every proposal is then background "
    "(class 0, zero deltas)."
)
def targets_no_ground_truth_guard(proposals, gt_boxes, gt_labels):
    candidates = torch.cat((proposals, gt_boxes))
    best, matched = box_iou(candidates, gt_boxes).max(dim=1)  # raises when G = 0
    return _targets(candidates, gt_boxes, gt_labels, best >= 0.5)
