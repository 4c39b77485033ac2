"""Letterbox and stretch: known sizes and factors, boxes and corners moved with the pixels (checked
against torchvision's v2 resize), detections mapped back, and the detector wrapper."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from tutorial_det.resize import Resize, ResizedDetector


def test_letterbox_keeps_the_shape_and_pads_black_at_the_bottom_and_right():
    image = torch.rand(3, 48, 64) * 0.5 + 0.5  # nowhere black
    resized = Resize(32).image(image)
    assert resized.shape == (3, 32, 32)
    assert Resize(32).scaled_size(48, 64) == (24, 32)
    assert bool((resized[:, :24] > 0).all()) and bool((resized[:, 24:] == 0).all())
    assert Resize(32).factors(48, 64) == (0.5, 0.5)


def test_stretch_scales_each_side_on_its_own():
    assert Resize(32, "stretch").scaled_size(80, 40) == (32, 32)
    assert Resize(32, "stretch").factors(80, 40) == (0.8, 0.4)
    assert Resize(32, "stretch").image(torch.rand(3, 80, 40)).shape == (3, 32, 32)


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
def test_boxes_move_like_torchvisions_resize(mode):
    image = tv_tensors.Image(torch.rand(3, 50, 70))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[3.0, 4.0, 40.0, 30.0], [0.0, 0.0, 70.0, 50.0]]),
        format="XYXY",
        canvas_size=(50, 70),
    )
    resize = Resize(35, mode)
    resized, target = resize(image, {"boxes": boxes, "labels": torch.tensor([1, 2])})
    height, width = resize.scaled_size(50, 70)
    tv_image, tv_boxes = v2.Resize((height, width), antialias=True)(image, boxes)
    torch.testing.assert_close(
        target["boxes"].as_subclass(torch.Tensor), tv_boxes.as_subclass(torch.Tensor)
    )
    torch.testing.assert_close(resized[:, :height, :width], tv_image.as_subclass(torch.Tensor))
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].canvas_size == (35, 35) and isinstance(resized, tv_tensors.Image)
    assert target["labels"].tolist() == [1, 2]


def test_corners_move_with_the_pixels_and_come_back():
    corners = torch.tensor([[[10.0, 20.0], [60.0, 20.0], [60.0, 40.0], [10.0, 40.0]]])
    boxes = torch.tensor([[10.0, 20.0, 60.0, 40.0]])
    resize = Resize(40)  # 50 x 80 -> 25 x 40: factor 0.5
    _, target = resize(torch.rand(3, 50, 80), {"boxes": boxes, "corners": corners})
    torch.testing.assert_close(target["corners"], corners / 2)
    back = resize.prediction_back(target, (50, 80))
    torch.testing.assert_close(back["corners"], corners)
    torch.testing.assert_close(back["boxes"], boxes)


def test_boxes_mapped_back_are_clipped_to_the_original_image():
    resize = Resize(40)  # 20 x 40 -> 20 x 40 (factor 1), padded below to 40 x 40
    prediction = {"boxes": torch.tensor([[30.0, 10.0, 45.0, 35.0]]), "scores": torch.tensor([0.7])}
    back = resize.prediction_back(prediction, (20, 40))
    assert back["boxes"].tolist() == [[30.0, 10.0, 40.0, 20.0]]
    assert back["scores"].tolist() == [pytest.approx(0.7)]


@given(
    height=st.integers(1, 400),
    width=st.integers(1, 400),
    size=st.integers(1, 300),
    mode=st.sampled_from(["letterbox", "stretch"]),
)
def test_scaled_sizes_and_factors_agree(height, width, size, mode):
    resize = Resize(size, mode)
    new_height, new_width = resize.scaled_size(height, width)
    assert 1 <= new_height <= size and 1 <= new_width <= size
    if mode == "letterbox" and height != width:
        assert max(new_height, new_width) == size  # the longer side fills the square
    sx, sy = resize.factors(height, width)
    assert sx * width == pytest.approx(new_width) and sy * height == pytest.approx(new_height)
    box = torch.tensor([[0.0, 0.0, float(width), float(height)]])  # the whole image
    _, target = resize(torch.zeros(3, height, width), {"boxes": box})
    assert target["boxes"][0].tolist() == pytest.approx([0, 0, new_width, new_height], abs=1e-3)
    torch.testing.assert_close(resize.prediction_back(target, (height, width))["boxes"], box)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="size must be a positive int"):
        Resize(0)
    with pytest.raises(ValueError, match="mode must be one of"):
        Resize(32, "crop")
    assert Resize.from_dict(Resize(64, "stretch").to_dict()) == Resize(64, "stretch")
    assert str(Resize(64)) == "letterbox to 64x64"


class Recorder(nn.Module):
    """Returns one box at (4, 4, 12, 12) of the image it sees, and records what it was given."""

    def forward(self, images, targets=None):
        self.seen = [tuple(image.shape) for image in images]
        self.targets = targets
        if self.training:
            return {"loss": torch.zeros(())}
        box = {"boxes": torch.tensor([[4.0, 4.0, 12.0, 12.0]]), "scores": torch.tensor([0.9])}
        return [{**box, "labels": torch.tensor([1])} for _ in images]


def test_resized_detector_answers_in_each_images_own_pixels():
    recorder = Recorder()
    model = ResizedDetector(recorder, Resize(16)).eval()
    outputs = model([torch.rand(3, 32, 64), torch.rand(3, 64, 16)])
    assert recorder.seen == [(3, 16, 16), (3, 16, 16)]
    assert outputs[0]["boxes"].tolist() == [[16.0, 16.0, 48.0, 32.0]]  # factor 1/4, clipped
    assert outputs[1]["boxes"].tolist() == [[16.0, 16.0, 16.0, 48.0]]  # 16 wide: 4 -> 16 px
    model.train()
    target = {"boxes": torch.tensor([[8.0, 8.0, 32.0, 24.0]]), "labels": torch.tensor([1])}
    model([torch.rand(3, 32, 64)], [target])
    assert recorder.targets[0]["boxes"].tolist() == [[2.0, 2.0, 8.0, 6.0]]
    with pytest.raises(ValueError, match="one target per image"):
        model([torch.rand(3, 32, 64)])
