"""Drawing helpers: what they add to the axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorial_det.viz import class_colour, draw_boxes, draw_legend, show_image, to_display_image
from tutorial_det.viz.captions import caption_extent


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


# --------------------------------------------------------------------------- caption placement


def captions(ax):
    """The box captions on ``ax`` (the texts with a coloured background)."""
    return [t for t in ax.texts if t.get_bbox_patch() is not None]


def caption_boxes(fig, ax):
    """Draw the figure; each caption's display extent (its coloured background included)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [caption_extent(t, renderer) for t in captions(ax)]


def assert_readable(fig, ax):
    """No two captions overlap, and every caption lies inside the axes."""
    boxes = caption_boxes(fig, ax)
    names = [t.get_text() for t in captions(ax)]
    frame = ax.bbox
    for i, a in enumerate(boxes):
        assert (
            a.x0 >= frame.x0 - 0.5
            and a.x1 <= frame.x1 + 0.5
            and a.y0 >= frame.y0 - 0.5
            and a.y1 <= frame.y1 + 0.5
        ), f"caption {names[i]!r} leaves the axes: {a} vs {frame}"
        for j, b in enumerate(boxes[:i]):
            # touching is fine: they overlap when they share more than half a pixel both ways
            shared = min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0)
            assert min(shared) < 0.5, f"captions {names[j]!r} and {names[i]!r} overlap"


def test_a_lone_caption_sits_above_its_box_top_left_corner():
    fig, ax = plt.subplots(figsize=(4, 4))
    show_image(torch.rand(3, 100, 100), ax=ax)
    draw_boxes(ax, torch.tensor([[30.0, 40, 70, 80]]), labels=[1], class_names=["bg", "cat"])
    (caption,) = caption_boxes(fig, ax)
    left, top = ax.transData.transform((30, 40))  # display y grows upwards
    assert caption.x0 == pytest.approx(left, abs=1) and caption.y0 == pytest.approx(top, abs=1)
    plt.close(fig)


def test_captions_of_boxes_sharing_a_corner_do_not_overlap():
    """Lesson 03's "bicyclench" and the "trtriangle" of lessons 06 and 07: boxes whose top-left
    corners (nearly) coincide, several of them at the image's top and right edges."""
    fig, ax = plt.subplots(figsize=(3, 3))
    show_image(torch.rand(3, 128, 128), ax=ax)
    boxes = torch.tensor(
        [
            [10.0, 30, 60, 80],
            [11, 31, 50, 70],
            [12, 30, 40, 60],
            [100, 0, 128, 20],  # top-right corner of the image
            [0, 0, 30, 30],  # top-left corner
            [90, 110, 128, 128],  # bottom-right corner
        ]
    )
    draw_boxes(ax, boxes, labels=[1, 1, 2, 3, 1, 2], scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
               class_names=["bg", "triangle", "bicycle", "bench"])  # fmt: skip
    assert_readable(fig, ax)
    plt.close(fig)


def test_captions_are_placed_for_the_final_limits_and_avoid_other_text():
    fig, ax = plt.subplots(figsize=(4, 3))
    show_image(torch.rand(3, 100, 200), ax=ax)
    note = ax.text(20, 30, "a note", fontsize=10, va="bottom")  # just above the first box
    draw_boxes(ax, torch.tensor([[20.0, 32, 90, 90], [150, 5, 199, 60]]), labels=[1, 2])
    ax.set_xlim(15, 200)  # zoomed in after drawing: the second box now starts above the top
    ax.set_ylim(100, 20)
    assert_readable(fig, ax)
    note = note.get_window_extent(fig.canvas.get_renderer())
    assert all(min(c.x1, note.x1) <= max(c.x0, note.x0) or min(c.y1, note.y1) <= max(c.y0, note.y0)
               for c in caption_boxes(fig, ax))  # fmt: skip
    plt.close(fig)


def test_captions_in_a_grid_of_small_images_stay_in_their_own_axes():
    fig, axes = plt.subplots(2, 4, figsize=(8, 4), layout="constrained")
    g = torch.Generator().manual_seed(0)
    for ax in axes.flat:
        show_image(torch.rand(3, 128, 128, generator=g), ax=ax, title="image")
        xy = torch.rand(4, 2, generator=g) * 110
        boxes = torch.cat((xy, (xy + 8 + torch.rand(4, 2, generator=g) * 40).clamp(max=128)), 1)
        draw_boxes(ax, boxes, labels=[1, 2, 1, 3], scores=torch.rand(4, generator=g),
                   class_names=["bg", "circle", "square", "triangle"])  # fmt: skip
    for ax in axes.flat:
        assert_readable(fig, ax)
    plt.close(fig)


@given(
    st.lists(
        st.tuples(
            st.floats(0, 180), st.floats(0, 180), st.floats(2, 120), st.floats(2, 120),
            st.sampled_from(["cat", "dog", "motorcycle", "a much longer name 0.99"]),
        ),
        min_size=1,
        max_size=6,
    )
)  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_up_to_six_captions_on_an_image_never_overlap_or_leave_it(rows):
    fig, ax = plt.subplots(figsize=(4, 4))
    try:
        show_image(torch.zeros(3, 200, 200), ax=ax)
        boxes = torch.tensor([[x, y, min(x + w, 200), min(y + h, 200)] for x, y, w, h, _ in rows])
        names = {i: name for i, (*_, name) in enumerate(rows)}
        draw_boxes(ax, boxes, labels=list(names), class_names=names)
        assert_readable(fig, ax)
    finally:
        plt.close(fig)


def test_draw_legend_names_each_colour():
    fig, ax = plt.subplots()
    legend = draw_legend(
        ax,
        [("ratio 0.5", class_colour(0)), ("crosses the border", "black", {"linestyle": "--"})],
    )
    assert [t.get_text() for t in legend.get_texts()] == ["ratio 0.5", "crosses the border"]
    lines = legend.get_lines()
    assert lines[0].get_color() == class_colour(0) and lines[1].get_linestyle() == "--"
    plt.close(fig)
