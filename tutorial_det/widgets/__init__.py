"""Interactive explorers for the lessons (ipywidgets, no extension needed in JupyterLab).

- :class:`AnchorExplorer`: stride, ratios, scales and a cell; anchor counts and the cell's anchors.
- :class:`IoUExplorer`: two boxes on sliders; their IoU with intersection and union shaded.
- :class:`LabellingExplorer`: thresholds and sampling; anchors coloured positive / negative /
  ignored, with counts before and after sampling.

Display one by leaving it as the last expression of a cell. Each keeps its numbers in
``explorer.view`` and its sentence in ``explorer.summary.value``, so code can drive it by setting
``.value`` on its controls.
"""

from tutorial_det.widgets.anchors import AnchorExplorer, AnchorView
from tutorial_det.widgets.base import Explorer
from tutorial_det.widgets.iou import IoUExplorer, IoUView
from tutorial_det.widgets.labelling import LabellingExplorer, LabellingView

__all__ = [
    "AnchorExplorer",
    "AnchorView",
    "Explorer",
    "IoUExplorer",
    "IoUView",
    "LabellingExplorer",
    "LabellingView",
]
