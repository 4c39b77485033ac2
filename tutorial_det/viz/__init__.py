"""Drawing helpers for the lessons: images, boxes, and (in submodules) anchors, feature maps,
matches and training curves. Every function takes an optional matplotlib ``ax`` and returns what it
drew, so a figure can be composed and a test can count the artists."""

from tutorial_det.viz.anchors import (
    LABEL_COLOURS,
    draw_anchors,
    draw_cell,
    draw_cell_grid,
    draw_labelled_anchors,
    draw_overlap,
)
from tutorial_det.viz.core import (
    class_colour,
    draw_boxes,
    draw_legend,
    show_image,
    to_display_image,
)
from tutorial_det.viz.features import draw_receptive_field, show_feature_maps
from tutorial_det.viz.training import plot_history, smooth_curve

__all__ = [
    "LABEL_COLOURS",
    "class_colour",
    "draw_anchors",
    "draw_boxes",
    "draw_cell",
    "draw_cell_grid",
    "draw_labelled_anchors",
    "draw_legend",
    "draw_overlap",
    "draw_receptive_field",
    "plot_history",
    "show_feature_maps",
    "show_image",
    "smooth_curve",
    "to_display_image",
]
