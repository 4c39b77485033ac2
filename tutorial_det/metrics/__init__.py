"""Detection metrics: average precision (VOC, COCO), greedy matching, and mean average precision.

Three building blocks, each usable on its own (lesson 10 builds them one by one):

- :func:`match_detections`: which score-ranked detections are true / false positives;
- :func:`average_precision`: the area under one precision-recall curve (all-point, 11-point,
  COCO 101-point);
- :func:`mean_average_precision`: the two above over a whole data set, every class, IoU
  threshold and object size, with pycocotools' numbers under torchmetrics' key names.

:func:`to_coco` writes the same inputs in COCO's json layout and :func:`pycocotools_eval` runs
pycocotools' ``COCOeval`` on them, the reference the tests compare with.
"""

from tutorial_det.metrics.ap import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    METHODS,
    VOC11_RECALL_THRESHOLDS,
    average_precision,
)
from tutorial_det.metrics.coco_format import pycocotools_eval, to_coco
from tutorial_det.metrics.evaluation import AREA_RANGES, mean_average_precision
from tutorial_det.metrics.matching import match_detections

__all__ = [
    "AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "METHODS",
    "VOC11_RECALL_THRESHOLDS",
    "average_precision",
    "match_detections",
    "mean_average_precision",
    "pycocotools_eval",
    "to_coco",
]
