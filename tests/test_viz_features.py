"""Feature-map drawings: the grid of channels and one cell's receptive field."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from tutorial_det.backbones import layer_shapes, vgg16_stride16
from tutorial_det.viz import draw_receptive_field, show_feature_maps


def test_feature_maps_one_image_per_channel_in_a_grid():
    features = torch.rand(1, 20, 6, 5)
    features[0, 3] = 0  # a channel whose ReLU never fired
    axes = show_feature_maps(features, channels=[0, 3, 7, 19, 2], ncols=3)
    assert axes.shape == (2, 3)
    shown = [ax for ax in axes.flat if ax.images]
    assert len(shown) == 5 and not axes.flat[5].images and not axes.flat[5].axison
    assert [ax.get_title().split(":")[0] for ax in shown] == [
        "ch 0",
        "ch 3",
        "ch 7",
        "ch 19",
        "ch 2",
    ]
    assert shown[1].get_title() == "ch 3: all 0"
    image = shown[2].images[0]
    assert image.get_array().shape == (6, 5)
    assert image.get_clim() == pytest.approx(
        (float(features[0, 7].min()), float(features[0, 7].max()))
    )
    plt.close("all")


def test_feature_maps_defaults_and_given_figure():
    fig = plt.figure()
    axes = show_feature_maps(torch.rand(40, 4, 4), fig=fig)
    assert axes.shape == (2, 8) and sum(bool(ax.images) for ax in axes.flat) == 16
    assert all(ax.figure is fig for ax in axes.flat)
    axes = show_feature_maps(torch.rand(3, 4, 4))  # fewer channels than ncols: one short row
    assert axes.shape == (1, 3)
    plt.close("all")


@pytest.mark.parametrize(
    ("features", "kwargs", "match"),
    [
        (torch.rand(2, 3, 4, 4), {}, "batch of 2"),
        (torch.rand(4, 4), {}, r"\[C, H, W\]"),
        (torch.rand(3, 4, 4), {"channels": [3]}, r"channels \[3\] out of range"),
        (torch.rand(3, 4, 4), {"channels": []}, "empty"),
        (torch.rand(3, 4, 4), {"ncols": 0}, "ncols"),
    ],
)
def test_feature_maps_reject_bad_input(features, kwargs, match):
    with pytest.raises(ValueError, match=match):
        show_feature_maps(features, **kwargs)
    plt.close("all")


def test_receptive_field_of_a_vgg16_cell():
    last = layer_shapes(vgg16_stride16(), (1, 3, 320, 320))[-1]
    assert (last.stride, last.receptive_field, last.centre) == (16, 196, 8)
    fig, ax = plt.subplots()
    cell, field = draw_receptive_field(ax, 4, 6, last.stride, last.receptive_field, last.centre)
    assert cell.get_xy() == (96, 64) and cell.get_width() == 16
    # centred on the cell's centre (6.5 * 16, 4.5 * 16) = (104, 72), 196 pixels wide
    assert field.get_width() == 196 and field.get_height() == 196
    assert field.get_xy() == (104 - 98, 72 - 98)
    with pytest.raises(ValueError, match="positive"):
        draw_receptive_field(ax, 0, 0, 16, 0, 8)
    plt.close(fig)
