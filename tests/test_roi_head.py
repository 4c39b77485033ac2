"""The RoI head: proposal targets against torchvision's RoIHeads, the head's pooling and its
non-linearity, the loss against torchvision's fastrcnn_loss, edge cases."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss

from tutorial_det.roi import ROI_BOX_WEIGHTS, RoIHead, proposal_targets, roi_head_loss
from tutorial_det.roi_pool import roi_pool


def rows(*tensors: torch.Tensor) -> list[tuple]:
    """The rows of tensors side by side, rounded and sorted: a set to compare samples by."""
    joined = torch.cat(
        [t.reshape(len(t), t[0].numel() if len(t) else 1).double() for t in tensors], 1
    )
    return sorted(tuple(round(v, 3) for v in row) for row in joined.tolist())


def random_proposals(seed: int, n: int = 60, size: float = 128.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.8
    wh = torch.rand(n, 2, generator=g) * size * 0.4 + 2
    return torch.cat((xy, xy + wh), dim=1)


# --------------------------------------------------------------------------- proposal targets


def test_proposal_targets_known_answer(device):
    gt = torch.tensor([[10.0, 10, 50, 50], [60, 60, 100, 100]], device=device)
    gt_labels = torch.tensor([2, 3], device=device)
    proposals = torch.tensor(
        [
            [10.0, 10, 50, 60],  # IoU 0.8 with gt 0: positive, class 2
            [60, 60, 100, 90],  # IoU 0.75 with gt 1: positive, class 3
            [10, 10, 30, 30],  # IoU 0.25: negative
            [200, 200, 220, 220],  # IoU 0: negative (neg_thresh_lo = 0)
            [10, 10, 50, 90],  # IoU 0.5 exactly: positive (>= 0.5)
        ],
        device=device,
    )
    rois, labels, deltas = proposal_targets(proposals, gt, gt_labels)
    assert rois.device == labels.device == deltas.device == gt.device
    # 3 positive proposals + the 2 ground truths themselves; 2 negatives
    assert labels.tolist() == [2, 3, 2, 2, 3, 0, 0]
    assert rois[:5].tolist() == [
        [10, 10, 50, 60],
        [60, 60, 100, 90],
        [10, 10, 50, 90],
        [10, 10, 50, 50],
        [60, 60, 100, 100],
    ]
    want = BoxCoder(ROI_BOX_WEIGHTS).encode_single(gt[[0, 1, 0, 0, 1]], rois[:5])
    torch.testing.assert_close(deltas[:5], want)
    assert deltas[3:5].abs().max() == 0  # a ground truth needs no correction
    assert deltas[5:].abs().max() == 0  # negatives have no box target


def test_proposal_targets_sample_128_with_at_most_a_quarter_positive():
    gt = torch.tensor([[20.0, 20, 80, 80]])
    near = torch.tensor([20.0, 20, 80, 80]) + torch.randn(200, 4) * 2  # all positive
    far = torch.tensor([90.0, 90, 120, 120]) + torch.rand(300, 4)  # all negative
    rois, labels, _ = proposal_targets(torch.cat((near, far)), gt, torch.tensor([1]))
    assert len(rois) == 128 and int((labels > 0).sum()) == 32
    # fewer positives than 32: all kept, the rest filled with negatives
    rois, labels, _ = proposal_targets(torch.cat((near[:5], far)), gt, torch.tensor([1]))
    assert len(rois) == 128 and int((labels > 0).sum()) == 6  # 5 + the ground truth


@given(seed=st.integers(0, 1000), objects=st.integers(0, 4))
def test_proposal_targets_match_torchvision_roi_heads(seed, objects):
    g = torch.Generator().manual_seed(seed + 1)
    proposals = random_proposals(seed)
    gt = random_proposals(seed + 10_000, objects)
    gt_labels = torch.randint(1, 4, (objects,), generator=g)
    # samples large enough that nothing is left out: both sides keep every candidate
    rois, labels, deltas = proposal_targets(
        proposals, gt, gt_labels, batch_size_per_image=10_000, positive_fraction=0.5
    )
    heads = RoIHeads(None, None, None, 0.5, 0.5, 10_000, 0.5, ROI_BOX_WEIGHTS, 0.05, 0.5, 100)
    target = {"boxes": gt, "labels": gt_labels}
    tv_rois, _, tv_labels, tv_deltas = heads.select_training_samples([proposals], [target])
    assert len(rois) == len(tv_rois[0]) == len(proposals) + objects
    positive = labels > 0
    tv_positive = tv_labels[0] > 0
    assert rows(rois[positive], labels[positive], deltas[positive]) == rows(
        tv_rois[0][tv_positive], tv_labels[0][tv_positive], tv_deltas[0][tv_positive]
    )
    assert rows(rois[~positive]) == rows(tv_rois[0][~tv_positive])


def test_proposal_targets_without_ground_truth_are_all_background():
    rois, labels, deltas = proposal_targets(
        random_proposals(0, 300), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
    )
    assert len(rois) == 128 and labels.abs().sum() == 0 and deltas.abs().sum() == 0


def test_degenerate_proposals_and_ground_truths_give_no_positive_and_no_nan():
    proposals = torch.tensor([[10.0, 10, 10, 40], [5, 5, 5, 5], [10, 10, 40, 40]])
    gt = torch.tensor([[10.0, 10, 40, 40], [70, 70, 70, 90]])  # the second has zero width
    rois, labels, deltas = proposal_targets(proposals, gt, torch.tensor([1, 2]))
    assert torch.isfinite(deltas).all()
    assert labels.tolist() == [1, 1, 0, 0, 0]  # the zero-width ground truth is no positive
    assert rois[:2].tolist() == [[10, 10, 40, 40]] * 2


def test_proposal_targets_validation():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    with pytest.raises(ValueError, match="gt_labels must be integer classes >= 1"):
        proposal_targets(gt, gt, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"gt_labels must be a \[G\] = \[1\] tensor"):
        proposal_targets(gt, gt, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="x2 < x1"):
        proposal_targets(torch.tensor([[10.0, 0, 0, 10]]), gt, torch.tensor([1]))


# --------------------------------------------------------------------------- the head


def test_head_shapes_and_pooling_choices():
    torch.manual_seed(0)
    features = torch.randn(2, 16, 8, 8)
    rois = [random_proposals(0, 5), random_proposals(1, 3)]
    for pooling in ("align", "pool"):
        head = RoIHead(16, 4, pooling=pooling, output_size=5, representation_size=32)
        logits, deltas = head(features, rois)
        assert logits.shape == (8, 4) and deltas.shape == (8, 4, 4)
    align = RoIHead(16, 4, pooling="align", output_size=5)
    torch.testing.assert_close(
        align.pool(features, rois),
        torchvision.ops.roi_align(features, rois, 5, 1 / 16, 2, aligned=True),
    )
    pool = RoIHead(16, 4, pooling="pool", output_size=5)
    assert torch.equal(pool.pool(features, rois), roi_pool(features, rois, 5, 1 / 16))
    assert torch.equal(
        pool.pool(features, rois), torchvision.ops.roi_pool(features, rois, 5, 1 / 16)
    )
    logits, deltas = align(features, [torch.zeros(0, 4), torch.zeros(0, 4)])
    assert logits.shape == (0, 4) and deltas.shape == (0, 4, 4)


def test_head_initialisation():
    torch.manual_seed(0)
    paper = RoIHead(64, 21, representation_size=512, paper_init=True)
    assert abs(paper.cls_score.weight.std().item() - 0.01) < 1e-3
    assert abs(paper.bbox_pred.weight.std().item() - 0.001) < 1e-4
    assert paper.cls_score.bias.abs().sum() == 0 and paper.bbox_pred.bias.abs().sum() == 0
    default = RoIHead(64, 21, representation_size=512)
    bound = 1 / 512**0.5  # nn.Linear's default: uniform within 1 / sqrt(fan_in)
    for layer in (default.cls_score, default.bbox_pred):
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    with pytest.raises(ValueError, match="pooling='max' is not one of"):
        RoIHead(64, 21, pooling="max")
    with pytest.raises(ValueError, match="num_classes counts the background"):
        RoIHead(64, 1)


def test_head_is_not_an_affine_map_of_the_features(monkeypatch):
    # RoIAlign is linear in the features, so without the ReLUs the whole head would be affine:
    # f(a + b) + f(0) == f(a) + f(b). The ReLUs between the layers must break that.
    torch.manual_seed(0)
    head = RoIHead(8, 3, output_size=3, representation_size=16)
    with torch.no_grad():
        head.cls_score.weight.normal_()  # larger outputs, so the difference is clear
    a, b, zero = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6), torch.zeros(1, 8, 6, 6)
    rois = [torch.tensor([[0.0, 0, 64, 64], [16, 16, 80, 48]])]

    def gap() -> float:
        with torch.no_grad():
            f = lambda x: head(x, rois)[0]  # noqa: E731
            return (f(a + b) + f(zero) - f(a) - f(b)).abs().max().item()

    assert gap() > 1e-2
    monkeypatch.setattr(torch.nn.functional, "relu", lambda x: x)  # the walkthrough's head
    assert gap() < 1e-5


# --------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roi_head_loss_matches_torchvision(seed, device):
    g = torch.Generator().manual_seed(seed)
    sizes = [40, 88]  # two images' samples
    total, classes = sum(sizes), 5
    logits = torch.randn(total, classes, generator=g).to(device)
    deltas = torch.randn(total, classes, 4, generator=g).to(device)
    labels = torch.randint(0, classes, (total,), generator=g).to(device)
    targets = torch.randn(total, 4, generator=g).to(device)
    want = fastrcnn_loss(
        logits, deltas.reshape(total, -1), list(labels.split(sizes)), list(targets.split(sizes))
    )
    got = roi_head_loss(logits, deltas, labels, targets)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_roi_head_loss_uses_own_class_deltas_and_counts_every_sampled_roi():
    logits = torch.zeros(4, 3, requires_grad=True)
    deltas = torch.zeros(4, 3, 4, requires_grad=True)
    labels = torch.tensor([2, 0, 0, 0])
    targets = torch.tensor([[0.5, 0, 0, 0]] + [[9.0, 9, 9, 9]] * 3)  # negatives' targets unused
    classifier, box = roi_head_loss(logits, deltas, labels, targets, beta=1.0)
    assert classifier.item() == pytest.approx(torch.log(torch.tensor(3.0)).item())
    assert box.item() == pytest.approx(0.5 * 0.5**2 / 4)  # one positive, divided by S = 4
    box.backward()
    touched = (deltas.grad != 0).any(dim=2)
    assert touched.nonzero().tolist() == [[0, 2]]  # RoI 0, its own class 2 only


def test_roi_head_loss_with_no_sample_is_zero():
    logits = torch.zeros(0, 3, requires_grad=True)
    classifier, box = roi_head_loss(
        logits, torch.zeros(0, 3, 4), torch.zeros(0).long(), torch.zeros(0, 4)
    )
    assert classifier.item() == 0 and box.item() == 0
    classifier.backward()


def test_roi_head_loss_validation():
    with pytest.raises(ValueError, match=r"labels\[1\] = 3 is not a class in \[0, 3\)"):
        roi_head_loss(
            torch.zeros(2, 3), torch.zeros(2, 3, 4), torch.tensor([0, 3]), torch.zeros(2, 4)
        )
    with pytest.raises(ValueError, match="box_deltas"):
        roi_head_loss(
            torch.zeros(2, 3), torch.zeros(2, 12), torch.tensor([0, 1]), torch.zeros(2, 4)
        )
