"""Interactive explorers for the lessons (ipywidgets, no extension needed in JupyterLab).

- :class:`AnchorExplorer`: stride, ratios, scales and a cell; anchor counts and the cell's anchors.
- :class:`IoUExplorer`: two boxes on sliders; their IoU with intersection and union shaded.
- :class:`LabellingExplorer`: thresholds and sampling; anchors coloured positive / negative /
  ignored, with counts before and after sampling.
- :class:`ProposalsExplorer`: top-N before NMS, NMS threshold and top-N after NMS over an RPN's
  proposals, with the count left at every stage.
- :class:`PriorsExplorer`: SSD priors of one cell (feature map, scale, aspect ratios) and the
  ground truths they match.

Display one by leaving it as the last expression of a cell. Each keeps its numbers in
``explorer.view`` and its sentence in ``explorer.sentence``, so code can drive it by setting
``.value`` on its controls.
"""

from tutorial_det.widgets.anchors import AnchorExplorer, AnchorView
from tutorial_det.widgets.base import Explorer
from tutorial_det.widgets.iou import IoUExplorer, IoUView
from tutorial_det.widgets.labelling import LabellingExplorer, LabellingView
from tutorial_det.widgets.priors import PriorsExplorer, PriorsView
from tutorial_det.widgets.proposals import ProposalsExplorer, ProposalsView

__all__ = [
    "AnchorExplorer",
    "AnchorView",
    "Explorer",
    "IoUExplorer",
    "IoUView",
    "LabellingExplorer",
    "LabellingView",
    "PriorsExplorer",
    "PriorsView",
    "ProposalsExplorer",
    "ProposalsView",
]
