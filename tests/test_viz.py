"""Drawing helpers: what they add to the axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from tutorial_det.viz import class_colour, draw_boxes, show_image, to_display_image


def test_to_display_image_accepts_tensors_arrays_and_pil():
    from PIL import Image

    chw = torch.rand(3, 5, 7)
    assert to_display_image(chw).shape == (5, 7, 3)
    assert to_display_image(torch.rand(1, 5, 7)).shape == (5, 7)
    assert to_display_image(np.zeros((5, 7, 3), np.uint8)).shape == (5, 7, 3)
    assert to_display_image(Image.new("RGB", (7, 5))).shape == (5, 7, 3)
    assert to_display_image(torch.full((3, 2, 2), 2.0)).max() == 1.0
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        to_display_image(torch.rand(4, 5, 7))


def test_draw_boxes_adds_one_patch_per_box_with_class_colours_and_captions():
    fig, ax = plt.subplots()
    show_image(torch.rand(3, 50, 60), ax=ax)
    boxes = torch.tensor([[1.0, 2, 11, 22], [5, 5, 40, 30]])
    patches = draw_boxes(
        ax, boxes, labels=[1, 2], scores=[0.9, 0.25], class_names=["bg", "cat", "dog"]
    )
    assert len(patches) == 2 and len(ax.patches) == 2
    assert (
        patches[0].get_xy() == (1.0, 2.0)
        and patches[0].get_width() == 10
        and patches[0].get_height() == 20
    )
    assert patches[1].get_edgecolor()[:3] == pytest.approx(class_colour(2))
    assert [t.get_text() for t in ax.texts] == ["cat 0.90", "dog 0.25"]
    plt.close(fig)


def test_show_image_puts_pixel_edges_on_integer_coordinates():
    fig, ax = plt.subplots()
    show_image(torch.rand(3, 4, 6), ax=ax)
    assert ax.images[0].get_extent() == [0, 6, 4, 0]
    plt.close(fig)


def test_draw_boxes_rejects_mismatched_lengths_and_unknown_names():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="labels has 1 entries for 2 boxes"):
        draw_boxes(ax, torch.zeros(2, 4), labels=[1])
    with pytest.raises(ValueError, match="no entry for label 5"):
        draw_boxes(ax, torch.zeros(1, 4), labels=[5], class_names=["bg", "cat"])
    assert draw_boxes(ax, torch.zeros(0, 4)) == []
    plt.close(fig)


def test_class_colours_are_stable_and_distinct():
    assert class_colour(3) == class_colour(3)
    assert len({class_colour(i) for i in range(10)}) == 10
