"""Anchor labelling, balanced sampling and RPN targets; against torchvision's Matcher and
BalancedPositiveNegativeSampler."""

from __future__ import annotations

import pytest
import torch
from conftest import SEED_GT, label_counts, xyxy_boxes
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, Matcher

from tutorial_det.anchors import inside_anchors
from tutorial_det.boxes import box_iou, decode_boxes, encode_boxes
from tutorial_det.exercises import check_label_anchors
from tutorial_det.labelling import anchor_targets, label_anchors, sample_labels


def torchvision_labels(
    anchors: torch.Tensor, gt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's RPN matcher on the same IoU matrix, its codes mapped to ours:
    a gt index -> 1, BELOW_LOW_THRESHOLD (-1) -> 0, BETWEEN_THRESHOLDS (-2) -> -1."""
    matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(box_iou(gt, anchors))
    labels = torch.where(matches >= 0, 1, torch.where(matches == -1, 0, -1))
    return labels, matches


# --------------------------------------------------------------------------- label_anchors


def test_seed_example_counts(inside_800):
    assert inside_800.shape == (8940, 4)
    labels, matched = label_anchors(inside_800, SEED_GT)
    assert labels.dtype == torch.int64 and matched.dtype == torch.int64
    assert label_counts(labels) == (18, 7690, 1232)
    # No anchor reaches 0.7 here: all 18 positives come from the best-anchor rule, ties included
    # (gt 0's highest IoU 0.6813 and gt 1's 0.6104 are each shared by several anchors).
    iou = box_iou(inside_800, SEED_GT)
    assert iou.max() < 0.7
    best = iou == iou.max(dim=0).values
    assert int(best.any(dim=1).sum()) == 18 and int(best.sum(dim=0).min()) > 1
    assert torch.equal(labels == 1, best.any(dim=1))
    assert torch.equal(matched, iou.argmax(dim=1))
    # only the best-anchor rule can make positives when the threshold is unreachable
    assert label_counts(label_anchors(inside_800, SEED_GT, pos_thresh=1.0)[0])[0] == 18


def test_seed_example_agrees_with_torchvision_matcher(inside_800):
    ours, matched = label_anchors(inside_800, SEED_GT)
    theirs, matches = torchvision_labels(inside_800, SEED_GT)
    assert torch.equal(ours, theirs)
    assert torch.equal(matched[ours == 1], matches[ours == 1])


@given(
    anchors=xyxy_boxes(min_n=1, max_n=30, max_coord=100.0, min_size=1.0),
    gt=xyxy_boxes(min_n=1, max_n=5, max_coord=100.0, min_size=1.0),
)
def test_same_split_as_torchvision_when_every_gt_overlaps_an_anchor(anchors, gt):
    gt = gt[box_iou(anchors, gt).amax(dim=0) > 0]
    if len(gt) == 0:
        return
    ours, matched = label_anchors(anchors, gt)
    theirs, matches = torchvision_labels(anchors, gt)
    assert torch.equal(ours, theirs)
    assert torch.equal(matched[ours == 1], matches[ours == 1])


def test_gt_overlapping_no_anchor_is_where_torchvision_differs():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20], [50, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0, 10, 10], [200, 200, 210, 210]])
    labels, matched = label_anchors(anchors, gt)
    assert labels.tolist() == [1, -1, 0]
    assert matched.tolist() == [0, 0, 0]
    # torchvision: gt 1's highest IoU is 0, every anchor "ties" at 0 and is matched
    theirs, _ = torchvision_labels(anchors, gt)
    assert theirs.tolist() == [1, 1, 1]


def test_thresholds_and_best_anchor_rule():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    # IoU 0.7, 0.3, 0.29, 0.5
    anchors = torch.tensor([[0.0, 0, 7, 10], [0, 0, 3, 10], [0, 0, 2.9, 10], [0, 0, 5, 10]])
    assert label_anchors(anchors, gt)[0].tolist() == [1, -1, 0, -1]
    assert label_anchors(anchors[1:], gt)[0].tolist() == [-1, 0, 1]  # 0.5 is now the best
    assert label_anchors(anchors, gt, 0.5, 0.4)[0].tolist() == [1, 0, 0, 1]


def test_matched_gt_is_the_highest_iou_gt_even_for_best_anchor_positives():
    # the anchor is gt 1's best anchor (IoU 0.125) but overlaps gt 0 more (IoU 0.5)
    anchors = torch.tensor([[0.0, 0, 10, 20], [100, 100, 120, 120]])
    gt = torch.tensor([[0.0, 0, 10, 10], [0, 15, 10, 17.5]])
    labels, matched = label_anchors(anchors, gt)
    assert labels.tolist() == [1, 0]
    assert matched.tolist() == [0, 0]


def test_no_ground_truth_all_negative():
    anchors = torch.tensor([[0.0, 0, 10, 10], [5, 5, 30, 30]])
    labels, matched = label_anchors(anchors, torch.zeros(0, 4))
    assert labels.tolist() == [0, 0] and matched.tolist() == [0, 0]
    with pytest.raises(ValueError, match="No ground-truth boxes"):  # torchvision refuses
        Matcher(0.7, 0.3, True)(box_iou(torch.zeros(0, 4), anchors))


def test_empty_anchors():
    labels, matched = label_anchors(torch.zeros(0, 4), SEED_GT)
    assert labels.shape == (0,) and matched.shape == (0,) and labels.dtype == torch.int64


def test_degenerate_ground_truth():
    anchors = torch.tensor([[0.0, 0, 10, 10], [4, 4, 6, 6]])
    point = torch.tensor([[5.0, 5, 5, 5]])  # zero area: IoU 0 with everything
    labels, _ = label_anchors(anchors, point)
    assert labels.tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"gt_boxes\[0\].*zero width or height"):
        encode_boxes(point, anchors[:1])
    with pytest.raises(ValueError, match=r"gt_boxes\[0\].*x2 < x1"):
        label_anchors(anchors, torch.tensor([[10.0, 0, 0, 10]]))


@pytest.mark.parametrize(("pos", "neg"), [(0.3, 0.7), (1.1, 0.3), (0.7, -0.1), (0.0, 0.0)])
def test_bad_thresholds(pos, neg):
    with pytest.raises(ValueError, match="thresholds"):
        label_anchors(torch.zeros(1, 4), SEED_GT, pos, neg)


# --------------------------------------------------------------------------- sample_labels


def labels_with(num_pos: int, num_neg: int, num_ignored: int) -> torch.Tensor:
    labels = torch.tensor([1] * num_pos + [0] * num_neg + [-1] * num_ignored)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]


@pytest.mark.parametrize(
    ("num_pos", "num_neg", "expected"),
    [
        (18, 7690, (18, 238)),
        (500, 7690, (128, 128)),
        (500, 50, (128, 50)),
        (3, 4, (3, 4)),
        (0, 0, (0, 0)),
    ],
)
def test_sample_counts_match_torchvision(num_pos, num_neg, expected):
    labels = labels_with(num_pos, num_neg, 40)
    sampled = sample_labels(labels, 256, 0.5, torch.Generator().manual_seed(0))
    assert label_counts(sampled)[:2] == expected
    pos_mask, neg_mask = BalancedPositiveNegativeSampler(256, 0.5)([labels])
    assert (int(pos_mask[0].sum()), int(neg_mask[0].sum())) == expected
    # a sample, never a relabelling
    assert torch.all(labels[sampled == 1] == 1) and torch.all(labels[sampled == 0] == 0)


@given(
    num_pos=st.integers(0, 300),
    num_neg=st.integers(0, 300),
    batch_size=st.integers(0, 300),
    fraction=st.floats(0, 1),
)
def test_sample_counts_property(num_pos, num_neg, batch_size, fraction):
    labels = labels_with(num_pos, num_neg, 5)
    sampled = sample_labels(labels, batch_size, fraction)
    pos, neg, _ = label_counts(sampled)
    assert pos == min(num_pos, int(batch_size * fraction))
    assert neg == min(num_neg, batch_size - pos)
    pos_mask, neg_mask = BalancedPositiveNegativeSampler(batch_size, fraction)([labels])
    assert (pos, neg) == (int(pos_mask[0].sum()), int(neg_mask[0].sum()))


def test_sampling_is_deterministic_given_the_generator():
    labels = labels_with(300, 3000, 100)
    a = sample_labels(labels, generator=torch.Generator().manual_seed(7))
    b = sample_labels(labels, generator=torch.Generator().manual_seed(7))
    c = sample_labels(labels, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert labels.tolist().count(1) == 300  # the input is left alone


def test_sample_labels_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D int64"):
        sample_labels(torch.zeros(3))
    with pytest.raises(ValueError, match=r"labels\[1\] = 2"):
        sample_labels(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="positive_fraction"):
        sample_labels(torch.tensor([0, 1]), positive_fraction=1.5)


# --------------------------------------------------------------------------- anchor_targets


def test_anchor_targets_on_the_seed_example(anchors_800, device):
    g = torch.Generator().manual_seed(0)  # a CPU generator: the same sample on every device
    labels, deltas = anchor_targets(
        anchors_800.to(device), SEED_GT.to(device), (800, 800), generator=g
    )
    assert labels.device == deltas.device == anchors_800.to(device).device
    labels, deltas = labels.cpu(), deltas.cpu()
    inside = inside_anchors(anchors_800, (800, 800))
    assert labels.shape == (22500,) and deltas.shape == (22500, 4)
    assert label_counts(labels) == (18, 238, 22500 - 256)
    assert torch.all(labels[~inside] == -1)
    assert torch.all(deltas[labels != 1] == 0)
    # decoding a positive's deltas gives back its highest-IoU ground truth
    positive = labels == 1
    decoded = decode_boxes(deltas[positive], anchors_800[positive])
    best_gt = SEED_GT[box_iou(anchors_800[positive], SEED_GT).argmax(dim=1)]
    torch.testing.assert_close(decoded, best_gt, atol=1e-3, rtol=0)


def test_anchor_targets_without_sampling_or_image_size(anchors_800, inside_800, device):
    anchors_800, inside_800, gt = anchors_800.to(device), inside_800.to(device), SEED_GT.to(device)
    labels, _ = anchor_targets(anchors_800, gt, (800, 800), batch_size_per_image=None)
    inside = inside_anchors(anchors_800, (800, 800))
    assert torch.equal(labels[inside], label_anchors(inside_800, gt)[0])
    assert torch.all(labels[~inside] == -1)
    everywhere, _ = anchor_targets(anchors_800, gt, batch_size_per_image=None)
    assert torch.equal(everywhere, label_anchors(anchors_800, gt)[0])
    assert label_counts(everywhere)[0] > 18  # border-crossing anchors now reach 0.7


def test_anchor_targets_weights_scale_the_deltas(anchors_800):
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    _, plain = anchor_targets(anchors_800, SEED_GT, (800, 800), generator=g())
    _, weighted = anchor_targets(
        anchors_800, SEED_GT, (800, 800), generator=g(), weights=(10, 10, 5, 5)
    )
    torch.testing.assert_close(weighted, plain * torch.tensor([10.0, 10, 5, 5]))


def test_anchor_targets_edge_cases(anchors_800):
    # no ground truth: only negatives (and ignored), zero deltas
    labels, deltas = anchor_targets(anchors_800, torch.zeros(0, 4), (800, 800))
    assert label_counts(labels) == (0, 256, 22500 - 256) and not deltas.any()
    # a ground truth entirely outside the image: no inside anchor overlaps it
    outside = torch.tensor([[900.0, 900, 1000, 1000]])
    labels, _ = anchor_targets(anchors_800, outside, (800, 800), batch_size_per_image=None)
    assert label_counts(labels)[0] == 0
    # ... while the border-crossing anchors, when kept, do
    labels, deltas = anchor_targets(anchors_800, outside, batch_size_per_image=None)
    assert label_counts(labels)[0] > 0 and torch.isfinite(deltas).all()
    # a degenerate ground truth next to a real one gets nothing and breaks nothing
    with_point = torch.cat((SEED_GT, torch.tensor([[100.0, 100, 100, 100]])))
    labels, deltas = anchor_targets(anchors_800, with_point, (800, 800), batch_size_per_image=None)
    assert label_counts(labels) == (18, 7690, 22500 - 7690 - 18) and torch.isfinite(deltas).all()


# --------------------------------------------------------------------------- exercise


def test_exercise_check_accepts_the_reference_and_catches_the_seed_rule():
    assert check_label_anchors(label_anchors, verbose=False)

    def seed_rule(anchors, gt):  # ties included, but also when the best IoU is 0
        if len(gt) == 0:
            return torch.zeros(len(anchors), dtype=torch.int64), torch.zeros(
                len(anchors), dtype=torch.int64
            )
        iou = box_iou(anchors, gt)
        best, matched = iou.max(dim=1)
        labels = torch.full((len(anchors),), -1)
        labels[best < 0.3] = 0
        labels[(iou == iou.max(dim=0).values).any(dim=1)] = 1
        labels[best >= 0.7] = 1
        return labels, matched

    result = check_label_anchors(seed_rule, verbose=False)
    assert not result
    assert len(result.failures) == 1 and "overlaps no anchor" in result.failures[0]
