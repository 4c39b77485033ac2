"""A trained detector in one file: its registry name, class names, build options and weights.

``fit`` checkpoints (``last.pt``) hold everything needed to *continue* training, but not what the
model is: a state dict alone cannot be turned back into a network. A model file adds that, so
``load_model_file(path)`` rebuilds the detector from the registry (:mod:`tutorial_det.models`) and
loads its weights, with no other input::

    save_model_file("out/model.pt", model, ModelSpec("ssd", ("background", "circle"), {}))
    model, spec, meta = load_model_file("out/model.pt")
    spec.classes[label]           # the class name of a predicted label (0 is the background)

A model trained on resized images (``ModelSpec(..., resize=Resize(128))``, lesson 11) comes back
as a :class:`~tutorial_det.resize.ResizedDetector`: it takes images of any size and answers in
their own pixels.

Like every checkpoint of the package, the file is a plain tree of tensors, numbers, strings, lists
and dicts written atomically and read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from tutorial_det.models import MODELS, build_model
from tutorial_det.resize import Resize, ResizedDetector
from tutorial_det.training.checkpoint import (
    CHECKPOINT_FORMAT,
    check_plain,
    load_checkpoint,
    save_checkpoint,
)

MODEL_FILE_FORMAT = "tutorial_det.model/1"


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a detector: ``build_model(name, len(classes), **options)``.

    Attributes:
        name: the model's name in :data:`tutorial_det.models.MODELS`.
        classes: class names indexed by label, ``classes[0]`` the background.
        options: the builder's keyword arguments (plain values: numbers, strings, lists).
        frozen_batch_norm: every ``BatchNorm2d`` becomes a constant ``FrozenBatchNorm2d``
            (:func:`freeze_batch_norm`).
        resize: the :class:`~tutorial_det.resize.Resize` the training images went through, or
            None; :meth:`for_inference` then resizes input images the same way.
    """

    name: str
    classes: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    frozen_batch_norm: bool = False
    resize: Resize | None = None

    def __post_init__(self) -> None:
        if len(self.classes) < 2:
            raise ValueError(
                f"classes must name the background and at least one class, got {self.classes}"
            )
        check_plain(self.options, "options")

    def build(self) -> nn.Module:
        """A freshly initialised model (:func:`tutorial_det.models.build_model`), the detector
        alone: it is trained on images that ``resize`` has resized."""
        model = build_model(self.name, len(self.classes), **self.options)
        if self.frozen_batch_norm:
            freeze_batch_norm(model)
        return model

    def for_inference(self, model: nn.Module) -> nn.Module:
        """``model`` wrapped in a :class:`~tutorial_det.resize.ResizedDetector` when ``resize``
        is set (so that it takes images of any size), else ``model`` itself."""
        return model if self.resize is None else ResizedDetector(model, self.resize)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "options": dict(self.options),
            "frozen_batch_norm": self.frozen_batch_norm,
            "resize": None if self.resize is None else self.resize.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: Any) -> ModelSpec:
        """The spec ``to_dict`` wrote. Raises ValueError, naming the entry, when ``state`` is not
        one."""
        if not isinstance(state, Mapping):
            raise ValueError(f"the spec must be a dict, got {type(state).__name__}")
        kinds = {"name": str, "classes": list, "options": dict, "frozen_batch_norm": bool}
        for key, kind in kinds.items():
            if not isinstance(state.get(key), kind):
                raise ValueError(f"the spec's {key!r} must be a {kind.__name__}")
        if not all(isinstance(name, str) for name in state["classes"]):
            raise ValueError("the spec's 'classes' must be class-name strings")
        resize = state.get("resize")
        try:
            resize = None if resize is None else Resize.from_dict(resize)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the spec's 'resize' is not a size and a mode: {error}") from None
        return cls(
            state["name"],
            tuple(state["classes"]),
            dict(state["options"]),
            state["frozen_batch_norm"],
            resize,
        )


def freeze_batch_norm(model: nn.Module) -> int:
    """Replace every ``nn.BatchNorm2d`` of ``model`` (in place) by torchvision's
    ``FrozenBatchNorm2d`` holding the same statistics, weight and bias as constants.

    A frozen layer normalises with its stored statistics in training too, so each image's output
    no longer depends on the other images of its batch: training on W processes of B images then
    equals training on one process with W x B images (for a loss that is a mean over images).
    Detection models use it when fine-tuning with the few images per GPU that fit in memory,
    where batch statistics would be noisy. Returns the number of layers replaced.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                frozen.weight.copy_(child.weight.detach())
                frozen.bias.copy_(child.bias.detach())
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
                setattr(parent, name, frozen.to(child.weight.device))
                replaced += 1
    return replaced


def save_model_file(
    path: str | os.PathLike,
    model: nn.Module,
    spec: ModelSpec,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights with ``spec`` (and ``meta``: plain facts about the training run,
    such as the data it saw) atomically to ``path``. Returns the path. A
    :class:`~tutorial_det.resize.ResizedDetector` is saved as its detector."""
    if isinstance(model, ResizedDetector):
        model = model.detector
    state = {
        "format": MODEL_FILE_FORMAT,
        "spec": spec.to_dict(),
        "meta": dict(meta or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return save_checkpoint(state, path)


def load_model_file(
    path: str | os.PathLike, map_location: Any = "cpu"
) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild the model saved at ``path`` and load its weights.

    Returns:
        ``(model, spec, meta)``; the model is in eval mode, on ``map_location``, wrapped in a
        :class:`~tutorial_det.resize.ResizedDetector` when the spec resizes its input
        (:meth:`ModelSpec.for_inference`).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a model file (a ``fit`` checkpoint, another file, one that
            lacks an entry), its model is not registered, its options are refused, or its
            weights do not fit the model the registry builds (the message lists the keys that
            differ).
    """
    path = Path(path)
    if path.is_dir() and (path / "model.pt").is_file():
        raise FileNotFoundError(
            f"{path} is a folder: give the model file in it, {path / 'model.pt'}"
        )
    state = load_checkpoint(path, map_location=map_location)
    kind = state.get("format") if isinstance(state, dict) else None
    if kind == CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is a training checkpoint of fit (weights and optimizer state, no model "
            "name): pass the model file that `tutorial-det train` writes beside it (model.pt)"
        )
    if kind != MODEL_FILE_FORMAT:
        raise ValueError(f"{path} is not a tutorial_det model file (format {kind!r})")
    for key, kind in (("spec", dict), ("meta", dict), ("state_dict", dict)):
        if not isinstance(state.get(key), kind):
            raise ValueError(
                f"{path} is a damaged model file: it has no {key!r} dict (save_model_file "
                "writes spec, meta and state_dict)"
            )
    try:
        spec = ModelSpec.from_dict(state["spec"])
    except ValueError as error:
        raise ValueError(f"{path} is a damaged model file: {error}") from None
    if spec.name not in MODELS:
        raise ValueError(
            f"{path} holds a {spec.name!r} model, which is not registered here; the registered "
            f"models are {sorted(MODELS)}"
        )
    try:
        model = spec.build()
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    check_weights_fit(model, state["state_dict"], f"{path} ({spec.name!r})")
    model.load_state_dict(state["state_dict"])
    return spec.for_inference(model).to(map_location).eval(), spec, dict(state["meta"])


def check_weights_fit(model: nn.Module, state_dict: Mapping[str, Any], where: str) -> None:
    """Raise ValueError unless ``state_dict`` has exactly ``model``'s keys and shapes; the message
    names ``where`` the weights come from and the first keys that differ."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    reshaped = [
        f"{k} {list(state_dict[k].shape)} vs {list(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or reshaped:
        parts = [
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (
                ("missing", missing),
                ("not in the model", unexpected),
                ("other shape (file vs model)", reshaped),
            )
            if keys
        ]
        raise ValueError(
            f"the weights in {where} do not fit the {type(model).__name__} the registry builds "
            f"({'; '.join(parts)}): they were trained for another model or other options"
        )
