"""Drawing helpers for the lessons: images, boxes, and (in submodules) anchors, feature maps,
matches and training curves. Every function takes an optional matplotlib ``ax`` and returns what it
drew, so a figure can be composed and a test can count the artists."""

from tutorial_det.viz.core import class_colour, draw_boxes, show_image, to_display_image

__all__ = ["class_colour", "draw_boxes", "show_image", "to_display_image"]
