"""Mixed precision: the box arithmetic of the training step under autocast, and one training step
of every registered detector under autocast in float16 and bfloat16 against float32, on every
available device (CPU autocast runs both half types).

Tolerances against float32, per loss term and for the direction of the whole gradient (cosine
similarity): float16 (11 significant bits) within 1 % and above 0.98, bfloat16 (8 bits) within
3 % and above 0.9. Measured on the CPU: float16 within 0.4 % and 0.99, bfloat16 within 1.5 %
and 0.94 (WPOD-Net, whose batch-norm gradients sum many bfloat16 terms, is the worst of the three).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorial_det.data import SHAPE_CLASSES, PlatesDataset, ShapesDataset
from tutorial_det.data.collate import detection_collate
from tutorial_det.faster_rcnn import FasterRCNN
from tutorial_det.models import build_model
from tutorial_det.roi import RoIHead, proposal_targets
from tutorial_det.training.batches import images_to, targets_to

HALF = [torch.float16, torch.bfloat16]
RTOL = {torch.float16: 0.01, torch.bfloat16: 0.03}
MIN_COSINE = {torch.float16: 0.98, torch.bfloat16: 0.9}
DETECTORS = ["faster_rcnn", "ssd", "wpod"]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device``; ``None`` is float32 (autocast off)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


# --------------------------------------------------------------------------- box arithmetic


@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
def test_a_ground_truth_is_its_own_foreground_whatever_the_proposals_precision(device, dtype):
    """A 220 px object on a 256 px image: in float16 two such areas add up past 65504, and an
    IoU computed in float16 reads 0 for the ground truth with itself (labelled background)."""
    gt = torch.tensor([[18.0, 18.0, 238.0, 238.0]], device=device)
    proposals = torch.tensor([[20.0, 20.0, 236.0, 236.0], [0.0, 0.0, 60.0, 60.0]], device=device)
    generator = torch.Generator().manual_seed(0)
    expected = proposal_targets(
        proposals, gt, torch.tensor([3], device=device), generator=generator
    )
    generator = torch.Generator().manual_seed(0)
    rois, labels, deltas = proposal_targets(
        proposals.to(dtype), gt, torch.tensor([3], device=device), generator=generator
    )
    assert labels.tolist() == [3, 3, 0]  # the proposal (IoU 0.96), the ground truth, background
    assert rois.dtype == deltas.dtype == torch.float32
    torch.testing.assert_close(rois, expected[0])
    # log(220 / 216) * 5 = 0.0917: in bfloat16 it came out as 0.0776
    torch.testing.assert_close(deltas, expected[2])


def test_proposals_stay_float32_under_autocast(device):
    """The RPN's deltas come out of a convolution in half precision; the proposals decoded from
    them are pixel coordinates and are decoded in float32, like the anchors."""
    torch.manual_seed(0)
    model = FasterRCNN(4).to(device).train()
    images, targets = batch_on(device, ShapesDataset(4, seed=0))
    batch, sizes = model.transform(images)
    with autocast(device, torch.float16):
        features = model.backbone(batch)
        proposals, _ = model.rpn(features, sizes, targets)
    assert features.dtype == torch.float16
    assert all(p.dtype == torch.float32 for p in proposals)


@pytest.mark.parametrize("pooling", ["align", "pool"])
@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
def test_roi_pooling_reads_half_features_at_float32_coordinates(device, pooling, dtype):
    torch.manual_seed(0)
    head = RoIHead(8, 3, pooling=pooling, output_size=4, spatial_scale=1 / 8).to(device)
    features = torch.rand(1, 8, 32, 32, device=device).to(dtype)
    rois = [torch.tensor([[10.3, 20.7, 200.1, 190.9], [0.0, 0.0, 255.0, 255.0]], device=device)]
    pooled = head.pool(features, rois)
    assert pooled.dtype == dtype
    # the same numbers as pooling the (already rounded) features in float32 at exact coordinates
    expected = head.pool(features.float(), rois).to(dtype)
    torch.testing.assert_close(pooled, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- one training step


def batch_on(device, data):
    """All the items of ``data`` as one batch on ``device``."""
    images, targets = detection_collate([data[i] for i in range(len(data))])
    return images_to(images, device), targets_to(targets, device)


def detector_batch(name: str, device: torch.device):
    """A fresh ``name`` detector on ``device`` and a batch of two 64 px images (plates for
    WPOD-Net, shapes for the others): float16 convolutions are slow on a CPU."""
    if name == "wpod":
        data, num_classes = PlatesDataset(2, image_size=64, plate_width=(24, 56)), 2
    else:
        data = ShapesDataset(2, image_size=64, min_size=8, max_size=32)
        num_classes = len(SHAPE_CLASSES)
    torch.manual_seed(0)
    return build_model(name, num_classes=num_classes).to(device).train(), *batch_on(device, data)


class RecordedProposals(nn.Module):
    """Wraps a Faster R-CNN's RPN: the RPN's losses as computed, the proposals of another run.

    An untrained RPN scores every anchor about 0.5, so half-precision rounding reorders its
    proposals and the RoI head samples other RoIs; with the float32 run's proposals both runs
    train the RoI head on the same RoIs and the losses can be compared term by term.
    """

    def __init__(self, rpn: nn.Module, proposals: list[torch.Tensor] | None = None):
        super().__init__()
        self.rpn, self.proposals = rpn, proposals

    def forward(self, features, image_sizes, targets=None):
        proposals, losses = self.rpn(features, image_sizes, targets)
        if self.proposals is None:
            self.proposals = proposals
        return self.proposals, losses


def training_step(model, images, targets, device, dtype):
    """The losses (float) and the gradients of one training step under ``dtype`` autocast."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same RoI and anchor sampling in every run
    with autocast(device, dtype):
        losses = model(images, targets)
    sum(losses.values()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads


@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", DETECTORS)
def test_one_training_step_in_half_precision_matches_float32(device, name, dtype):
    model, images, targets = detector_batch(name, device)
    if name == "faster_rcnn":
        model.rpn = RecordedProposals(model.rpn)
    reference, reference_grads = training_step(model, images, targets, device, None)
    losses, grads = training_step(model, images, targets, device, dtype)
    assert losses.keys() == reference.keys()
    for term, value in losses.items():
        assert value == pytest.approx(reference[term], rel=RTOL[dtype]), term
    assert grads.keys() == reference_grads.keys()
    for param, grad in grads.items():
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), param
    flat = torch.cat([g.flatten() for g in grads.values()])
    reference_flat = torch.cat([g.flatten() for g in reference_grads.values()])
    # the gradient points the same way (cosine similarity), although single entries differ
    assert torch.cosine_similarity(flat, reference_flat, dim=0) > MIN_COSINE[dtype]


@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
def test_a_full_faster_rcnn_step_in_half_precision_is_finite(device, dtype):
    """Without the recorded proposals: the RoIs differ from float32's, the losses stay finite."""
    model, images, targets = detector_batch("faster_rcnn", device)
    losses, grads = training_step(model, images, targets, device, dtype)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert all(torch.isfinite(g).all() for g in grads.values())
