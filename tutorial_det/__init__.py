"""tutorial_det: object detection in PyTorch, one lesson at a time.

The package holds the tested reference implementation of every step the notebooks build:
``boxes`` (formats, IoU, box coding), ``anchors``, ``labelling``, ``nms``, ``rpn``, ``roi``,
``faster_rcnn``, ``ssd``, ``wpod``, ``data``, ``training``, ``metrics``, plus ``viz`` (drawing),
``widgets`` (ipywidgets explorers) and ``exercises`` (automatic feedback).
"""

__version__ = "0.1.0"
