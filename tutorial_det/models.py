"""The detectors the CLI and the training lessons can build, by name.

Every entry builds a model that follows torchvision's detection contract: in training mode
``model(images, targets)`` returns a dict of scalar losses; in evaluation mode ``model(images)``
returns one ``{"boxes": [D, 4] xyxy, "labels": [D], "scores": [D]}`` dict per image. No entry
downloads weights.

``torchvision_frcnn`` is torchvision's own Faster R-CNN (MobileNetV3-Large FPN, 320 px), built
without downloaded weights: the peer our detectors are measured against.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from tutorial_det.faster_rcnn import build_faster_rcnn
from tutorial_det.ssd import build_ssd
from tutorial_det.wpod import build_wpod


def _torchvision_frcnn(num_classes: int, **kwargs) -> nn.Module:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes, **kwargs
    )


#: name -> builder(num_classes, **options). num_classes counts the background class.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "torchvision_frcnn": _torchvision_frcnn,
    "faster_rcnn": build_faster_rcnn,
    "ssd": build_ssd,
    "wpod": build_wpod,
}


def build_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build the detector registered as ``name`` for ``num_classes`` classes (background included).

    Raises:
        ValueError: ``name`` is not registered (the message lists the names that are).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if num_classes < 2:
        raise ValueError(
            f"num_classes counts the background, so it must be >= 2, got {num_classes}"
        )
    return MODELS[name](num_classes, **options)
