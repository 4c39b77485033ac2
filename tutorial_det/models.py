"""The detectors the CLI and the training lessons can build, by name.

Every entry builds a model that follows torchvision's detection contract: in training mode
``model(images, targets)`` returns a dict of scalar losses; in evaluation mode ``model(images)``
returns one ``{"boxes": [D, 4] xyxy, "labels": [D], "scores": [D]}`` dict per image. No entry
downloads weights.

``torchvision_frcnn`` is torchvision's own Faster R-CNN (MobileNetV3-Large FPN, 320 px), built
without downloaded weights: the peer our detectors are measured against.

A model's options are the keyword arguments of its class (:func:`model_options` lists them):
``build_model("ssd", 4, score_thresh=0.3)``. :data:`LEARNS_CORNERS` names the models whose
targets need the four corners of each object.
"""

from __future__ import annotations

import inspect
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


#: Models that learn the four corners of each object (``target["corners"]`` ``[N, 4, 2]``), not
#: only its box.
LEARNS_CORNERS = frozenset({"wpod"})

#: Parameters of the option sources that are not options: the builder sets them itself.
_NOT_OPTIONS = frozenset(
    {
        "self",
        "num_classes",
        "backbone",
        "rpn_anchor_generator",
        "weights",
        "weights_backbone",
        "progress",
    }
)


def _option_sources(name: str) -> list[Callable] | None:
    """The callables whose keyword parameters are the options of model ``name``; None when they
    are not known (a builder that passes ``**options`` on to an unknown callable)."""
    if name == "torchvision_frcnn":
        from torchvision.models.detection import FasterRCNN, fasterrcnn_mobilenet_v3_large_320_fpn
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        return [fasterrcnn_mobilenet_v3_large_320_fpn, FasterRCNN, GeneralizedRCNNTransform]
    if name == "faster_rcnn":
        from tutorial_det.faster_rcnn import FasterRCNN

        return [FasterRCNN]
    if name == "ssd":
        from tutorial_det.ssd import SSD

        return [SSD]
    if name == "wpod":
        from tutorial_det.wpod import WPODDetector

        return [build_wpod, WPODDetector]
    builder = MODELS[name]
    kinds = {p.kind for p in inspect.signature(builder).parameters.values()}
    return None if inspect.Parameter.VAR_KEYWORD in kinds else [builder]


def model_options(name: str) -> tuple[str, ...] | None:
    """The option names ``build_model(name, ...)`` accepts, sorted; None when they cannot be
    known (a model registered from outside whose builder takes ``**options``).

    Raises:
        ValueError: ``name`` is not registered.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    sources = _option_sources(name)
    if sources is None:
        return None
    names = {
        parameter.name
        for source in sources
        for parameter in inspect.signature(source).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and not parameter.name.startswith("_")
    }
    return tuple(sorted(names - _NOT_OPTIONS))


def build_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build the detector registered as ``name`` for ``num_classes`` classes (background included).

    Raises:
        ValueError: ``name`` is not registered (the message lists the names that are), an option
            is not one of the model's (the message lists those that are), or the builder refuses
            the options' values.
    """
    known = model_options(name)
    if num_classes < 2:
        raise ValueError(
            f"num_classes counts the background, so it must be >= 2, got {num_classes}"
        )
    unknown = sorted(set(options) - set(known)) if known is not None else []
    if unknown:
        raise ValueError(
            f"{name} has no option {', '.join(map(repr, unknown))}; its options are "
            f"{', '.join(known)}"
        )
    try:
        return MODELS[name](num_classes, **options)
    except TypeError as error:  # a value of the wrong type deep in the builder
        raise ValueError(f"cannot build {name} with options {options}: {error}") from error
