"""What every explorer shares: controls, one sentence of numbers, one picture.

An explorer subclass provides three small methods:

- ``compute()``: read the controls' ``.value`` and return a plain-Python view (counts, boxes) of
  what they select; raise ``ValueError`` with a readable message for values that make no sense;
- ``describe(view)``: the sentence shown in :attr:`Explorer.summary`;
- ``draw(ax, view)``: draw the view on a fresh matplotlib axes.

Changing any control recomputes, rewrites the sentence and redraws. The figure is a plain
``matplotlib.figure.Figure`` (no pyplot state, no interactive backend) rendered to image bytes in
an ``ipywidgets.Image`` (:func:`picture_bytes`), which JupyterLab shows without any extension; tests set ``.value`` on the
controls and read :attr:`Explorer.view`, :attr:`Explorer.sentence` and the artists on
:attr:`Explorer.ax`, with no kernel or browser.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from tutorial_det.boxes import check_boxes
from tutorial_det.viz.anchors import draw_cell, draw_cell_grid
from tutorial_det.viz.core import draw_boxes, show_image

#: Ground-truth boxes are blue in every explorer, apart from the label and prior colours.
GT_COLOUR = "tab:blue"
#: JPEG quality of a picture stored as JPEG (:func:`picture_bytes`): no visible change to a photo
#: or to the lines drawn on it.
JPEG_QUALITY = 90
#: Wide enough for every control's description, so none is cut short.
CONTROL_STYLE = {"description_width": "150px"}
CONTROL_LAYOUT = {"width": "380px"}


def parse_numbers(text: str, name: str) -> tuple[float, ...]:
    """``"0.5, 1, 2"`` -> ``(0.5, 1.0, 2.0)``: positive numbers separated by commas or spaces.

    Raises:
        ValueError: naming the field (``name``) and the entry that is not a positive number.
    """
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise ValueError(f"{name}: enter at least one number, e.g. 1 or 0.5, 1, 2")
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"{name}: {part!r} is not positive")
        values.append(value)
    return tuple(values)


def format_numbers(values: Sequence[float]) -> str:
    """``(0.5, 1.0, 2.0)`` -> ``"0.5, 1, 2"``, the inverse of :func:`parse_numbers`."""
    return ", ".join(f"{v:g}" for v in values)


def set_slider(slider: widgets.IntSlider, value: int, maximum: int) -> None:
    """Move ``slider`` to ``value`` and its range to ``[min, maximum]`` without ever holding a
    value outside its range (which ipywidgets would clamp, firing an extra change)."""
    if maximum >= slider.max:
        slider.max = maximum
        slider.value = value
    else:
        slider.value = value
        slider.max = maximum


def cell_sliders(
    rows: int, columns: int, row: int | None = None, column: int | None = None
) -> tuple[widgets.IntSlider, widgets.IntSlider]:
    """The "cell row" and "cell column" sliders over a ``rows x columns`` grid, starting at
    ``(row, column)`` or at the middle cell."""
    return (
        widgets.IntSlider(
            value=rows // 2 if row is None else row, min=0, max=rows - 1, description="cell row"
        ),
        widgets.IntSlider(
            value=columns // 2 if column is None else column,
            min=0,
            max=columns - 1,
            description="cell column",
        ),
    )


def regrid_cell_sliders(
    sliders: Sequence[widgets.IntSlider],
    image_size: Sequence[int],
    old_stride: int,
    new_stride: int,
) -> None:
    """Re-range the (row, column) ``sliders`` of :func:`cell_sliders` from a grid of
    ``old_stride`` to one of ``new_stride`` over an image of ``(height, width)``, moving each to
    the cell that holds the centre of its old cell."""
    for slider, size in zip(sliders, image_size, strict=True):
        cells = size // new_stride
        centre = (slider.value + 0.5) * old_stride
        set_slider(slider, min(int(centre // new_stride), cells - 1), cells - 1)


def ground_truth(gt_boxes, gt_labels=None, class_names=None) -> tuple[torch.Tensor, list[str]]:
    """Validated ground truth for an explorer: ``[G, 4]`` float xyxy boxes and their names.

    Ground truths are numbered from 0, as the lessons number them: ``"gt 0"``, ``"gt 1"``, ...;
    with ``gt_labels`` the class follows, ``"gt 0 (circle)"`` (a name from ``class_names``, a
    list or dict as in :func:`tutorial_det.viz.draw_boxes`, else ``"class 3"``). The pictures
    caption the boxes with these names and the sentences use them.

    Raises:
        ValueError: the boxes are malformed, the label count differs from the box count, or
            ``class_names`` has no name for a label.
    """
    boxes = check_boxes(
        torch.as_tensor(gt_boxes, dtype=torch.float32).as_subclass(torch.Tensor), "gt_boxes"
    )
    if gt_labels is None:
        return boxes, [f"gt {i}" for i in range(len(boxes))]
    labels = [int(v) for v in torch.as_tensor(gt_labels).flatten()]
    if len(labels) != len(boxes):
        raise ValueError(f"gt_labels has {len(labels)} entries for {len(boxes)} boxes")
    names = []
    for i, label in enumerate(labels):
        try:
            name = f"class {label}" if class_names is None else class_names[label]
        except (IndexError, KeyError):
            raise ValueError(f"class_names has no entry for label {label}") from None
        names.append(f"gt {i} ({name})")
    return boxes, names


def draw_ground_truth(ax: Axes, boxes: torch.Tensor, names: Sequence[str], **style) -> list:
    """Draw ground-truth ``boxes`` captioned with their ``names`` (from :func:`ground_truth`)
    in the explorers' ground-truth blue; ``style`` as in :func:`tutorial_det.viz.draw_boxes`."""
    return draw_boxes(
        ax, boxes, labels=range(len(boxes)), class_names=list(names), colour=GT_COLOUR, **style
    )


def draw_cell_backdrop(
    ax: Axes, image: np.ndarray, stride: int, cell: tuple[int, int]
) -> tuple[int, int]:
    """The image with its cell grid and one cell outlined, grey outside the image (where anchors
    and priors that cross the border end); returns the image size ``(height, width)``."""
    size = (int(image.shape[0]), int(image.shape[1]))
    show_image(image, ax=ax)
    ax.set_facecolor("#e6e6e6")
    draw_cell_grid(ax, size, stride)
    draw_cell(ax, *cell, stride)
    return size


def frame(ax: Axes, boxes: torch.Tensor, image_size: tuple[int, int]) -> None:
    """Set the axes' limits to show the whole image and every one of ``boxes`` (``[N, 4]`` xyxy,
    which may reach outside it), with a small margin; y grows downwards as in an image."""
    height, width = image_size
    x1, y1 = boxes[:, :2].min(dim=0).values.tolist()
    x2, y2 = boxes[:, 2:].max(dim=0).values.tolist()
    margin = 0.03 * max(width, height)
    ax.set_xlim(min(x1, 0) - margin, max(x2, width) + margin)
    ax.set_ylim(max(y2, height) + margin, min(y1, 0) - margin)


def picture_bytes(figure: Figure) -> tuple[str, bytes]:
    """``figure`` drawn once and encoded as PNG or as JPEG, whichever is smaller; returns
    ``(format, bytes)`` for an ``ipywidgets.Image``.

    A picture over a photo is about a quarter of the size as JPEG and looks the same; lines and
    flat colours stay PNG, sharper and smaller. A notebook stores every explorer's latest picture
    in its widget state, so this keeps the lessons small.
    """
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    encoded = []
    for name, options in (("png", {}), ("jpeg", {"quality": JPEG_QUALITY})):
        buffer = io.BytesIO()
        rgb.save(buffer, format=name.upper(), **options)
        encoded.append((len(buffer.getvalue()), name, buffer.getvalue()))
    _, name, data = min(encoded)
    return name, data


class Explorer:
    """Controls, a one-sentence summary and a picture, kept in step.

    Attributes:
        controls: the ipywidgets controls, in display order.
        sentence: the sentence of numbers, plain text (what a lesson prints).
        summary: ``ipywidgets.HTML`` showing :attr:`sentence` above the picture.
        picture: ``ipywidgets.Image`` showing :attr:`figure` (PNG or JPEG, :func:`picture_bytes`).
        figure: the matplotlib figure, redrawn on every change.
        ax: the axes of the latest drawing.
        view: what ``compute()`` returned for the current values (None after an error).
        widget: the whole explorer as one ipywidgets box (what a notebook displays).
    """

    def __init__(
        self, controls: Sequence[widgets.Widget], figsize=(6.0, 6.0), dpi: int = 80
    ) -> None:
        self.controls = list(controls)
        for control in self.controls:
            if hasattr(control, "style") and hasattr(control.style, "description_width"):
                control.style.description_width = CONTROL_STYLE["description_width"]
            control.layout.width = CONTROL_LAYOUT["width"]
            control.observe(self._on_change, names="value")
        self.sentence = ""
        self.summary = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.picture = widgets.Image(format="png")
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        self.ax: Axes | None = None
        self.view: Any = None
        self._syncing = False
        self._holding = 0
        self.widget = widgets.VBox(
            [
                self.summary,
                widgets.HBox([widgets.VBox(self.controls), self.picture]),
            ]
        )
        self.refresh()

    # -- to be provided by each explorer
    def compute(self) -> Any:
        raise NotImplementedError

    def describe(self, view: Any) -> str:
        raise NotImplementedError

    def draw(self, ax: Axes, view: Any) -> None:
        raise NotImplementedError

    def sync_controls(self, change: dict) -> None:
        """Adjust other controls after ``change`` (e.g. a slider's range); default: nothing."""

    # -- shared machinery
    @contextmanager
    def hold(self) -> Iterator[Explorer]:
        """Change several controls at once: recompute and redraw once, when the block ends::

        with explorer.hold():
            explorer.stride.value = 32
            explorer.scales.value = "4, 8"
        """
        self._holding += 1
        try:
            yield self
        finally:
            self._holding -= 1
            if not self._holding:
                self.refresh()

    def _on_change(self, change: dict) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.sync_controls(change)
        finally:
            self._syncing = False
        if not self._holding:
            self.refresh()

    def refresh(self) -> None:
        """Recompute the view from the controls, rewrite the summary and redraw the picture."""
        self.figure.clear()
        self.ax = self.figure.subplots()
        try:
            self.view = self.compute()
        except ValueError as error:
            self.view = None
            self.sentence = f"Nothing to show: {error}"
            self.ax.set_axis_off()
            self.ax.text(0.5, 0.5, str(error), ha="center", va="center", wrap=True)
        else:
            self.sentence = self.describe(self.view)
            self.draw(self.ax, self.view)
        self.summary.value = html.escape(self.sentence, quote=False)
        with self.picture.hold_sync():  # format and bytes reach the browser together
            self.picture.format, self.picture.value = picture_bytes(self.figure)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"{type(self).__name__}: {self.sentence}"
        return bundle
