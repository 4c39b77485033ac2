"""The input transform every detector shares: batch checks and their messages, normalisation
(equal to ``imagenet_normalize``), padding to a multiple of the stride, boxes that come back in
each image's own frame, and the training targets' checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tutorial_det.backbones import TinyBackbone, imagenet_normalize
from tutorial_det.faster_rcnn import FasterRCNN
from tutorial_det.input_transform import InputTransform, check_images, check_targets
from tutorial_det.ssd import SSD
from tutorial_det.wpod import WPODDetector


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (
            torch.rand(3, 32, 32),
            r"images must be a \[N, 3, H, W\] tensor or a list .* \[3, 32, 32\]",
        ),
        (torch.rand(2, 1, 32, 32), r"got a tensor of shape \[2, 1, 32, 32\]"),
        ({"image": torch.rand(3, 8, 8)}, "got dict"),
        ([], "images is empty: give at least one"),
        (
            [torch.rand(3, 8, 8), torch.rand(8, 8)],
            r"images\[1\] must be a \[3, H, W\] tensor, got \[8, 8\]",
        ),
        ([torch.rand(3, 8, 8), "photo.jpg"], r"images\[1\] must be a \[3, H, W\] tensor, got str"),
        ([torch.rand(3, 0, 8)], r"images\[0\] has no pixels: \[3, 0, 8\]"),
        (
            [torch.zeros(3, 8, 8, dtype=torch.uint8)],
            r"images\[0\] is torch.uint8: give float images",
        ),
    ],
)
def test_check_images_names_the_first_bad_image(images, message):
    with pytest.raises(ValueError, match=message):
        check_images(images)


def test_a_batch_tensor_and_a_list_are_the_same_images():
    images = torch.rand(2, 3, 16, 24)
    listed = check_images(images)
    assert len(listed) == 2 and torch.equal(listed[1], images[1])
    first = images[0]
    assert check_images((first,))[0] is first  # a tuple is a list too; nothing is copied


def test_normalisation_equals_imagenet_normalize():
    torch.manual_seed(0)
    images = [torch.rand(3, 32, 48), torch.rand(3, 32, 48)]
    batch, sizes = InputTransform()(images)
    assert sizes == [(32, 48), (32, 48)] and batch.dtype == torch.float32
    assert torch.equal(batch, imagenet_normalize(torch.stack(images)))


def test_mean_zero_std_one_leaves_the_pixels_as_they_are():
    image = torch.rand(3, 20, 30, dtype=torch.float64)
    batch, _ = InputTransform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))([image])
    assert torch.equal(batch[0], image.float())


@given(
    sizes=st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70)), min_size=1, max_size=4),
    multiple=st.sampled_from([1, 8, 16, 32]),
)
def test_padding_to_a_multiple_keeps_every_pixel_where_it_was(sizes, multiple):
    transform = InputTransform(size_divisible=multiple)
    images = [torch.rand(3, h, w) for h, w in sizes]
    batch, image_sizes = transform(images)
    height, width = batch.shape[-2:]
    assert image_sizes == [tuple(s) for s in sizes]
    assert height % multiple == 0 and width % multiple == 0
    assert height - multiple < max(h for h, _ in sizes) <= height
    assert width - multiple < max(w for _, w in sizes) <= width
    for i, (h, w) in enumerate(sizes):
        # pixel (y, x) of image i is pixel (y, x) of the batch: boxes need no shifting
        assert torch.equal(batch[i, :, :h, :w], transform.normalise(images[i]))
        assert batch[i, :, h:].abs().sum() == 0 and batch[i, :, :, w:].abs().sum() == 0


def test_bad_settings():
    with pytest.raises(ValueError, match="three channels"):
        InputTransform((0.5,), (0.2,))
    with pytest.raises(ValueError, match="std > 0"):
        InputTransform((0.5, 0.5, 0.5), (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="size_divisible must be a positive int"):
        InputTransform(size_divisible=0)


def test_each_detector_pads_to_its_own_multiple_and_normalises_as_it_says():
    image = torch.rand(3, 40, 50)
    frcnn = FasterRCNN(4)  # TopDownBackbone: stride 8, size_divisible 16
    batch, _ = frcnn.transform([image])
    assert batch.shape == (1, 3, 48, 64)
    assert torch.equal(batch[0, :, :40, :50], imagenet_normalize(image))
    plain = FasterRCNN(3, backbone=TinyBackbone((8, 8, 8), (1, 1, 1)), anchor_sizes=(16,))
    assert plain.transform([image])[0].shape == (1, 3, 40, 56)  # its stride, 8
    ssd = SSD(4, widths=(4, 4, 4, 4), extra_channels=(4, 4))
    assert ssd.transform([image])[0].shape == (1, 3, 40, 50)  # no padding for one image
    wpod = WPODDetector(width=0.25)
    batch, _ = wpod.transform([image])
    assert batch.shape == (1, 3, 48, 64) and torch.equal(batch[0, :, :40, :50], image)


@pytest.mark.parametrize("name", ["faster_rcnn", "ssd", "wpod"])
def test_detections_come_back_inside_each_image_of_a_mixed_batch(name):
    torch.manual_seed(0)
    model = {
        "faster_rcnn": lambda: FasterRCNN(4, score_thresh=0.0, representation_size=16),
        "ssd": lambda: SSD(4, widths=(4, 4, 8, 8), extra_channels=(8, 8), score_thresh=0.0),
        "wpod": lambda: WPODDetector(width=0.25, score_thresh=0.0),
    }[name]().eval()
    sizes = [(128, 128), (72, 100), (128, 40)]
    with torch.no_grad():
        detections = model([torch.rand(3, h, w) for h, w in sizes])
    for (height, width), found in zip(sizes, detections, strict=True):
        boxes = found["boxes"]
        assert len(boxes) > 0
        # clipped to the image's own size, not the padded batch's 128 x 128
        assert boxes[:, 2].max() <= width and boxes[:, 3].max() <= height
        assert boxes.min() >= 0


def test_check_targets_names_the_target_and_the_key():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    good = {"boxes": boxes, "labels": torch.tensor([2])}
    checked = check_targets([good], 1, num_classes=3)
    assert checked[0]["labels"].dtype == torch.int64
    for targets, count, message in [
        (None, 2, r"needs one target per image \(2\), got none"),
        ([good], 2, r"needs one target per image \(2\), got 1"),
        ([good, {"boxes": boxes}], 2, r"targets\[1\] must be a dict holding 'boxes' and 'labels'"),
        ([{"boxes": boxes[:, :3], "labels": torch.tensor([1])}], 1, r"targets\[0\]\['boxes'\]"),
        (
            [{"boxes": boxes, "labels": torch.tensor([1.0])}],
            1,
            r"\['labels'\] must be \[1\] integers",
        ),
        (
            [{"boxes": boxes, "labels": torch.tensor([3])}],
            1,
            r"\['labels'\]\[0\] = 3 is not an object class in \[1, 3\)",
        ),
        (
            [{"boxes": boxes, "labels": torch.tensor([0])}],
            1,
            r"= 0 is not an object class .*\(0 is the background\)",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            check_targets(targets, count, num_classes=3)
