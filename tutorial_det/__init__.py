"""tutorial_det: object detection in PyTorch, one lesson at a time.

The package holds the tested reference implementation of every step the notebooks build: ``boxes``
(formats, IoU, box coding), ``backbones``, ``anchors``, ``labelling``, ``nms``, ``input_transform``
(what every detector does to its images first), ``rpn``, ``roi_pool``, ``roi``, ``faster_rcnn``,
``ssd``, ``wpod``, ``data``, ``training``, ``metrics``, ``models`` (the registry the command line
builds detectors from), ``model_file`` (saved detectors that rebuild themselves) and ``cli`` (the
``tutorial-det`` / ``python -m tutorial_det`` command), plus ``samples`` (the real photos in
images/), ``naive`` (the slow loop versions lessons show and benchmarks time), ``viz`` (drawing),
``widgets`` (ipywidgets explorers), ``exercises`` (automatic feedback, and the source documents'
mistakes that lessons show), ``prose`` (lesson sentences that quote computed numbers) and
``runtime`` (device and seeding). The README's layout section lists them with their lessons.
"""

__version__ = "0.1.0"
