"""Feature maps: the channels of a backbone's output drawn as a grid of small images, and the
window of input pixels (receptive field) that one feature cell sees."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tutorial_det.viz.anchors import draw_cell
from tutorial_det.viz.core import draw_boxes


def show_feature_maps(
    features: torch.Tensor,
    channels: Sequence[int] | None = None,
    ncols: int = 8,
    size: float = 1.6,
    cmap: str = "viridis",
    fig: Figure | None = None,
) -> np.ndarray:
    """Draw channels of a ``[C, H, W]`` (or ``[1, C, H, W]``) feature map as a grid of images.

    Each map has its own colour scale (dark = its smallest value, bright = its largest) and is
    titled with its channel index and largest value; an all-zero channel (a ReLU that never fires
    on this image) is drawn uniformly dark and titled "ch k: all 0".

    Args:
        features: the feature map; a batch must hold one image.
        channels: which channels, in order (default: the first ``min(C, 16)``).
        ncols: images per row.
        size: side of each small image, in inches (when a new figure is made).
        cmap: matplotlib colour map.
        fig: draw into this figure instead of a new one (its existing axes are kept).

    Returns:
        The ``[rows, ncols]`` array of axes (unused trailing axes are switched off).
    """
    features = torch.as_tensor(features).detach().cpu().float()
    if features.ndim == 4:
        if features.shape[0] != 1:
            raise ValueError(
                f"features holds a batch of {features.shape[0]} images: pass one, e.g. features[0]"
            )
        features = features[0]
    if features.ndim != 3:
        raise ValueError(f"features must be [C, H, W] or [1, C, H, W], got {list(features.shape)}")
    channels = list(range(min(features.shape[0], 16))) if channels is None else list(channels)
    if not channels:
        raise ValueError("channels is empty: nothing to draw")
    bad = [c for c in channels if not 0 <= c < features.shape[0]]
    if bad:
        raise ValueError(f"channels {bad} out of range for {features.shape[0]} channels")
    if ncols < 1:
        raise ValueError(f"ncols must be positive, got {ncols}")
    ncols = min(ncols, len(channels))
    nrows = math.ceil(len(channels) / ncols)
    if fig is None:
        fig = plt.figure(figsize=(ncols * size, nrows * (size + 0.25)))
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, c in zip(axes.flat, channels, strict=False):
        fmap = features[c]
        top = float(fmap.max())
        ax.imshow(fmap.numpy(), cmap=cmap, vmin=float(fmap.min()), vmax=max(top, 1e-12))
        ax.set_title(f"ch {c}: all 0" if top == 0 else f"ch {c}: max {top:.2g}", fontsize=8)
    return axes


def draw_receptive_field(
    ax: Axes,
    row: int,
    column: int,
    stride: float,
    receptive_field: float,
    centre: float,
    colour="tab:red",
) -> tuple[Rectangle, Rectangle]:
    """The input pixels behind the feature cell at (``row``, ``column``).

    Draws the cell's own ``stride x stride`` square (shaded, centre marked) and the square of side
    ``receptive_field`` centred on ``(centre + column * stride, centre + row * stride)`` (an
    outline): ``stride``, ``receptive_field`` and ``centre`` are the last row of
    :func:`tutorial_det.backbones.layer_shapes`. Returns ``(cell patch, field patch)``.
    """
    if stride <= 0 or receptive_field <= 0:
        raise ValueError(
            f"stride and receptive_field must be positive, got {stride}, {receptive_field}"
        )
    cx, cy = centre + column * stride, centre + row * stride
    half = receptive_field / 2
    field = torch.tensor([[cx - half, cy - half, cx + half, cy + half]], dtype=torch.float64)
    cell_patch = draw_cell(ax, row, column, stride, colour=colour)
    (field_patch,) = draw_boxes(ax, field, colour=colour, linewidth=2)
    return cell_patch, field_patch
