"""The assembled Faster R-CNN: torchvision's detection contract in training and evaluation,
batching of images of different sizes, detections against torchvision's postprocessing, the
same losses, gradients and detections as torchvision's FasterRCNN given the same weights, the
registry entry, errors."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import loss_history
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads

from benchmarks.train_faster_rcnn import torchvision_twin
from tutorial_det.backbones import TinyBackbone
from tutorial_det.data import ShapesDataset, detection_collate
from tutorial_det.faster_rcnn import (
    FasterRCNN,
    TopDownBackbone,
    build_faster_rcnn,
    decode_detections,
)
from tutorial_det.models import MODELS, build_model
from tutorial_det.roi import ROI_BOX_WEIGHTS

LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}


def small_model(**options) -> FasterRCNN:
    torch.manual_seed(0)
    options = {"representation_size": 32, "pool_size": 3, **options}
    return FasterRCNN(4, **options)


def shapes_batch(count: int = 2, size: int = 64):
    data = ShapesDataset(count, seed=3, image_size=size, max_size=size / 2, min_size=8)
    return detection_collate([data[i] for i in range(count)])


@pytest.mark.parametrize("pooling", ["align", "pool"])
def test_training_returns_the_four_losses_and_trains_every_part(pooling, device):
    model = small_model(pooling=pooling).to(device).train()
    images, targets = shapes_batch()
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model(images, targets)
    assert set(losses) == LOSSES
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("backbone.backbone.0.0.weight", "rpn.head.conv.weight", "roi_head.fc6.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_a_few_steps_on_one_batch_lower_the_loss(device):
    model = small_model().to(device).train()
    images, targets = shapes_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    totals = loss_history(lambda: sum(model(images, targets).values()), optimizer, 12)
    assert totals[-1] < 0.6 * totals[0]


def test_eval_returns_detections_inside_each_image(device):
    model = small_model(score_thresh=0.0, detections_per_img=50).to(device).eval()
    images = [torch.rand(3, 64, 64), torch.rand(3, 40, 56)]  # different sizes: padded batch
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for detections, image in zip(out, images, strict=True):
        assert set(detections) == {"boxes", "labels", "scores"}
        boxes, labels, scores = detections["boxes"], detections["labels"], detections["scores"]
        assert boxes.shape == (len(labels), 4) and 0 < len(labels) <= 50
        assert labels.dtype == torch.int64 and labels.min() >= 1 and labels.max() <= 3
        assert bool((scores[:-1] >= scores[1:]).all())
        height, width = image.shape[1:]
        assert bool((boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all())
        assert bool((boxes >= 0).all())


def test_decode_detections_matches_torchvision_postprocessing():
    g = torch.Generator().manual_seed(0)
    rois = torch.rand(200, 2, generator=g) * 100
    rois = torch.cat((rois, rois + torch.rand(200, 2, generator=g) * 60 + 1), dim=1)
    logits = torch.randn(200, 4, generator=g) * 3
    deltas = torch.randn(200, 4, 4, generator=g)
    heads = RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, ROI_BOX_WEIGHTS, 0.05, 0.5, 100)
    boxes, scores, labels = heads.postprocess_detections(
        logits, deltas.reshape(200, -1), [rois], [(120, 140)]
    )
    ours = decode_detections(logits, deltas, rois, (120, 140))
    torch.testing.assert_close(ours["boxes"], boxes[0])
    torch.testing.assert_close(ours["scores"], scores[0])
    assert torch.equal(ours["labels"], labels[0])


def test_decode_detections_with_no_rois_is_empty():
    out = decode_detections(torch.zeros(0, 4), torch.zeros(0, 4, 4), torch.zeros(0, 4), (64, 64))
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)


def test_registered_in_the_model_registry():
    assert MODELS["faster_rcnn"] is build_faster_rcnn
    model = build_model("faster_rcnn", 3, representation_size=16)
    assert isinstance(model, FasterRCNN) and model.roi_head.cls_score.out_features == 3


def test_custom_backbone_and_anchor_sizes():
    backbone = torchvision.models.mobilenet_v3_small(weights=None).features[:9]  # stride 16
    backbone.out_channels, backbone.stride = 48, 16
    model = FasterRCNN(3, backbone=backbone, anchor_sizes=(32,), anchor_ratios=(1.0,))
    assert model.rpn.num_anchors == 1
    assert model.rpn.base_anchors.tolist() == [[-8.0, -8.0, 24.0, 24.0]]
    with torch.no_grad():
        assert len(model.eval()([torch.rand(3, 64, 64)])) == 1


def test_errors_name_what_is_wrong():
    model = small_model().train()
    images, targets = shapes_batch()
    with pytest.raises(ValueError, match="needs one target per image"):
        model(images)
    bad = [dict(targets[0]), targets[1]]
    bad[0]["labels"] = torch.full_like(bad[0]["labels"], 4)
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]\[0\] = 4 is not an object"):
        model(images, bad)
    with pytest.raises(ValueError, match=r"images\[1\] must be a \[3, H, W\] tensor"):
        model([images[0], torch.rand(1, 64, 64)], targets)
    with pytest.raises(ValueError, match="num_classes counts the background"):
        FasterRCNN(1)
    with pytest.raises(ValueError, match="backbone must have an int attribute 'stride'"):
        FasterRCNN(3, backbone=torch.nn.Conv2d(3, 8, 3))


def test_top_down_backbone_sees_both_stages():
    torch.manual_seed(0)
    neck = TopDownBackbone()
    assert neck.stride == 8 and neck.out_channels == 128
    x = torch.rand(2, 3, 64, 96, requires_grad=True)
    out = neck(x)
    assert out.shape == (2, 128, 8, 12)
    out.sum().backward()
    stages = neck.backbone
    assert stages[2][0].weight.grad.abs().sum() > 0  # the stride-8 stage, through the lateral
    assert stages[3][0].weight.grad.abs().sum() > 0  # the stride-16 stage, through top_down
    # a size that is a multiple of 8 but not of 16: the upsampled map is resized to fit
    assert neck(torch.rand(1, 3, 40, 56)).shape == (1, 128, 5, 7)
    assert neck.size_divisible == 16
    with pytest.raises(ValueError, match="four stages"):
        TopDownBackbone(TinyBackbone((8, 16, 32), (1, 1, 2)))


def test_default_model_uses_the_stride_8_map_and_16_32_64_anchors():
    model = FasterRCNN(4)
    assert isinstance(model.backbone, TopDownBackbone) and model.rpn.stride == 8
    sides = (model.rpn.base_anchors[:, 2] - model.rpn.base_anchors[:, 0]).reshape(3, 3)
    torch.testing.assert_close(sides[1], torch.tensor([16.0, 32.0, 64.0]))  # ratio 1
    assert len(model.rpn.anchors((16, 16))) == 16 * 16 * 9


# --------------------------------------------------------------------------- torchvision's twin


def torchvision_twin_with_our_weights(ours: FasterRCNN) -> TorchvisionFasterRCNN:
    """The benchmark's torchvision twin of ``ours`` with ours' geometry (anchors centred on the
    cells, ``roi_align(aligned=True)``) and ours' weights. Our two objectness logits
    (background, object) become its one logit: their difference."""
    twin = torchvision_twin(ours, our_geometry=True)
    rpn, head = ours.rpn, ours.roi_head
    twin.backbone.load_state_dict(ours.backbone.state_dict())
    conv, logits = twin.rpn.head.conv[0][0], twin.rpn.head.cls_logits
    with torch.no_grad():
        conv.weight.copy_(rpn.head.conv.weight)
        conv.bias.copy_(rpn.head.conv.bias)
        logits.weight.copy_(rpn.head.cls_logits.weight[1::2] - rpn.head.cls_logits.weight[0::2])
        logits.bias.copy_(rpn.head.cls_logits.bias[1::2] - rpn.head.cls_logits.bias[0::2])
    twin.rpn.head.bbox_pred.load_state_dict(rpn.head.bbox_pred.state_dict())
    twin.roi_heads.box_head.fc6.load_state_dict(head.fc6.state_dict())
    twin.roi_heads.box_head.fc7.load_state_dict(head.fc7.state_dict())
    twin.roi_heads.box_predictor.cls_score.load_state_dict(head.cls_score.state_dict())
    twin.roi_heads.box_predictor.bbox_pred.load_state_dict(head.bbox_pred.state_dict())
    return twin


def test_same_weights_give_torchvisions_losses_gradients_and_detections():
    # every labelled anchor and every candidate RoI sampled: no random draw in either model
    torch.manual_seed(0)
    ours = FasterRCNN(
        4,
        rpn_batch_size_per_image=10_000,
        rpn_positive_fraction=1.0,
        roi_batch_size_per_image=10_000,
        roi_positive_fraction=1.0,
    )
    twin = torchvision_twin_with_our_weights(ours)
    images, targets = detection_collate([ShapesDataset(2, seed=3)[i] for i in range(2)])
    losses, twin_losses = ours.train()(images, targets), twin.train()(images, targets)
    for name in LOSSES:
        torch.testing.assert_close(losses[name], twin_losses[name], rtol=1e-5, atol=1e-7)
    sum(losses.values()).backward()
    sum(twin_losses.values()).backward()
    first_conv = ours.backbone.backbone[0][0].weight.grad
    torch.testing.assert_close(
        first_conv, twin.backbone.backbone[0][0].weight.grad, rtol=1e-4, atol=1e-6
    )
    object_grad = ours.rpn.head.cls_logits.weight.grad[1::2]  # = - the background's
    torch.testing.assert_close(object_grad, -ours.rpn.head.cls_logits.weight.grad[0::2])
    torch.testing.assert_close(
        object_grad, twin.rpn.head.cls_logits.weight.grad, rtol=1e-4, atol=1e-7
    )
    with torch.no_grad():
        found, twin_found = ours.eval()(images), twin.eval()(images)
    for a, b in zip(found, twin_found, strict=True):
        assert len(a["boxes"]) > 0
        torch.testing.assert_close(a["boxes"], b["boxes"])
        torch.testing.assert_close(a["scores"], b["scores"])
        assert torch.equal(a["labels"], b["labels"])


def test_torchvisions_anchors_sit_half_a_cell_up_and_left_of_ours():
    model = FasterRCNN(4)
    generator = AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),))
    images = ImageList(torch.zeros(1, 3, 128, 128), [(128, 128)])
    theirs = generator(images, [torch.zeros(1, 128, 16, 16)])[0]
    ours = model.rpn.anchors((16, 16))
    # its base anchors are centred on (0, 0) and rounded to whole pixels; ours on the first
    # cell's centre (4, 4) at stride 8
    torch.testing.assert_close(theirs, (ours - 4).round())
