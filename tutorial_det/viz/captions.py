"""Box captions that stay inside the axes and out of each other's way (every figure with boxes,
from lesson 00 on).

:func:`tutorial_det.viz.draw_boxes` captions each box with its class name (and score). Where a
caption goes is decided each time the figure is drawn, when the axes' size and limits are final:
the first of these spots where the caption lies inside the axes and overlaps no caption placed
before it (nor any other text on the axes, nor its legend) wins:

1. above the box's top-left corner, then just inside it; the same at the top-right corner;
2. those spots moved away from the box edge by one caption height, then two (a stack);
3. the bottom corners (below, then just inside), then everything moved further.

When no spot is free, the one overlapping least is taken, pushed inside the axes. Captions stay
ordinary ``Text`` artists in ``ax.texts``; one :class:`CaptionLayout` per axes moves them just
before they are drawn.
"""

from __future__ import annotations

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.text import Text
from matplotlib.transforms import Bbox, IdentityTransform

#: Captions are drawn above boxes and lines; the layout runs just before them.
CAPTION_ZORDER = 5.0
#: How many caption heights a caption may be moved away from its corner to find a free spot.
MAX_STACK = 8


class CaptionLayout(Artist):
    """Places the box captions of one axes (see the module docstring) when the axes is drawn."""

    zorder = CAPTION_ZORDER - 0.01

    def __init__(self) -> None:
        super().__init__()
        self.captions: list[tuple[Text, tuple[float, float, float, float]]] = []

    def add(self, text: Text, box: tuple[float, float, float, float]) -> None:
        """Place ``text`` next to ``box`` (xyxy, data coordinates) from the next draw on."""
        self.captions.append((text, box))

    def draw(self, renderer: RendererBase) -> None:
        if self.get_visible() and self.axes is not None:
            place_captions(self.axes, self.captions, renderer)
        self.stale = False


def caption_layout(ax: Axes) -> CaptionLayout:
    """The :class:`CaptionLayout` of ``ax``, created on first use."""
    for artist in ax.artists:
        if isinstance(artist, CaptionLayout):
            return artist
    layout = CaptionLayout()
    ax.add_artist(layout)
    return layout


def add_caption(
    ax: Axes, box: tuple[float, float, float, float], caption: str, colour, fontsize: float = 8
) -> Text:
    """Caption ``box`` (xyxy, data coordinates) with white text on ``colour``; returns the
    ``Text``, placed next to a corner of the box each time the figure is drawn."""
    text = ax.text(
        box[0],
        box[1],
        caption,
        fontsize=fontsize,
        color="white",
        bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
        clip_on=True,
        zorder=CAPTION_ZORDER,
    )
    caption_layout(ax).add(text, tuple(box))
    return text


def caption_extent(text: Text, renderer: RendererBase) -> Bbox:
    """The display-space box a caption covers, its coloured background included."""
    patch = text.get_bbox_patch()
    if patch is None:
        return text.get_window_extent(renderer)
    text.update_bbox_position_size(renderer)
    return patch.get_window_extent(renderer)


def place_captions(
    ax: Axes, captions: list[tuple[Text, tuple[float, float, float, float]]], renderer
) -> None:
    """Move each visible caption to its first free spot (module docstring), in display units."""
    own = {id(text) for text, _ in captions}
    frame = ax.bbox
    taken = [caption_extent(t, renderer) for t in ax.texts if t.get_visible() and id(t) not in own]
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        taken.append(legend.get_window_extent(renderer))
    for text, box in captions:
        if not text.get_visible():
            continue
        (x1, y1), (x2, y2) = ax.transData.transform([box[:2], box[2:]])
        left, right, bottom, top = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        text.set_transform(IdentityTransform())
        text.set_position((left, top))
        height = caption_extent(text, renderer).height
        pad = (height - text.get_window_extent(renderer).height) / 2  # of the coloured background
        best, best_cost = None, float("inf")
        for spot in _spots(left, right, bottom, top, height, pad):
            extent = _try(text, spot, renderer)
            cost = _outside(extent, frame) * 1e6 + sum(_overlap(extent, t) for t in taken)
            if cost < best_cost:
                best, best_cost = spot, cost
            if cost == 0:
                break
        extent = _try(text, best, renderer)
        dx = max(frame.x0 - extent.x0, 0) + min(frame.x1 - extent.x1, 0)
        dy = max(frame.y0 - extent.y0, 0) + min(frame.y1 - extent.y1, 0)
        if dx or dy:
            x, y, ha, va = best
            extent = _try(text, (x + dx, y + dy, ha, va), renderer)
        taken.append(extent)


def _spots(left, right, bottom, top, height, pad) -> list[tuple[float, float, str, str]]:
    """Candidate (x, y, ha, va) in display units (y up), in order of preference: the top corners
    first, moved up to two caption heights away, before the bottom ones."""
    corners = [  # x, y, ha, va, direction away from the box edge, preference
        (left + pad, top + pad, "left", "bottom", +1, 0),  # above the top-left corner
        (left + pad, top - pad, "left", "top", -1, 0),  # just inside it
        (right - pad, top + pad, "right", "bottom", +1, 0),
        (right - pad, top - pad, "right", "top", -1, 0),
        (left + pad, bottom - pad, "left", "top", -1, 2.5),  # below the bottom-left corner
        (left + pad, bottom + pad, "left", "bottom", +1, 2.5),  # just inside it
        (right - pad, bottom - pad, "right", "top", -1, 2.5),
        (right - pad, bottom + pad, "right", "bottom", +1, 2.5),
    ]
    ranked = sorted(
        (
            (rank + step, i, step)
            for step in range(MAX_STACK + 1)
            for i, (*_, rank) in enumerate(corners)
        )
    )
    return [
        (corners[i][0], corners[i][1] + corners[i][4] * step * height, corners[i][2], corners[i][3])
        for _, i, step in ranked
    ]


def _try(text: Text, spot: tuple[float, float, str, str], renderer) -> Bbox:
    x, y, ha, va = spot
    text.set_position((x, y))
    text.set_horizontalalignment(ha)
    text.set_verticalalignment(va)
    return caption_extent(text, renderer)


def _overlap(a: Bbox, b: Bbox) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _outside(extent: Bbox, frame: Bbox) -> float:
    """Area of ``extent`` that lies outside ``frame``."""
    return extent.width * extent.height - _overlap(extent, frame)
