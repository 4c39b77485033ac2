"""Fine-tuning: freeze layers, give parameter groups their own learning rates, and start from a
checkpoint whose layers only partly match the model.

Lesson 09 (training at scale) teaches it.

Parameter names are matched with regular expressions through ``re.search`` (a pattern may match any
part of a name): ``"bias"`` matches ``"head.cls.bias"``, ``"^backbone\\."`` only names that start
with ``backbone.``. A pattern that matches nothing is an error, so a typo cannot pass unnoticed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tutorial_det.training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint


def _compile(patterns: Iterable[str], argument: str) -> list[re.Pattern]:
    if isinstance(patterns, str):
        raise TypeError(
            f"{argument} must be a list of patterns, not the single string {patterns!r}"
        )
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise ValueError(
                f"{argument}: {pattern!r} is not a regular expression: {err}"
            ) from None
    return compiled


def freeze(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Stop training the parameters whose names match any of ``patterns`` (``requires_grad=False``).

    Build the optimizer after freezing (for example with :func:`param_groups`, which leaves frozen
    parameters out). Freezing a layer does not change its batch-norm statistics; torchvision's
    detection backbones use frozen batch norm for that.

    Returns:
        The names of the parameters frozen, in the model's order.

    Raises:
        ValueError: a pattern matches no parameter (the message lists a few names to choose from).
    """
    compiled = _compile(patterns, "patterns")
    names = [name for name, _ in model.named_parameters()]
    for regex in compiled:
        if not any(regex.search(name) for name in names):
            raise ValueError(
                f"freeze pattern {regex.pattern!r} matches no parameter of "
                f"{type(model).__name__} (names look like {names[:4]})"
            )
    frozen = []
    for name, param in model.named_parameters():
        if any(regex.search(name) for regex in compiled):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def param_groups(
    model: nn.Module, base_lr: float, multipliers: Mapping[str, float] | None = None
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with per-pattern learning-rate multipliers.

    ``multipliers={"bias": 2.0, "^backbone\\.": 0.1}`` trains biases twice as fast and the backbone
    ten times slower; a backbone bias matches both and gets ``base_lr * 2.0 * 0.1``. Every trainable
    parameter lands in exactly one group; frozen ones (``requires_grad=False``) in none. Pass the
    result to any optimizer: ``torch.optim.SGD(param_groups(model, 0.01, {...}), lr=0.01)``.

    Scaling a group's learning rate is PyTorch's form of a gradient multiplier: the two are the same
    for SGD, and for Adam-like optimizers (which normalise the gradient's size away) only the
    learning rate has an effect. Learning-rate schedulers scale each group's rate, so the ratios
    hold throughout training.

    Returns:
        Groups ``{"params", "lr", "name", "lr_multiplier"}``; the name lists the patterns matched
        (``"base"`` for none), the base group comes first.

    Raises:
        ValueError: a pattern matches no trainable parameter, a multiplier is not a positive finite
            number, or ``base_lr`` is not positive.
    """
    if not base_lr > 0:
        raise ValueError(f"base_lr must be positive, got {base_lr}")
    multipliers = dict(multipliers or {})
    for pattern, factor in multipliers.items():
        if not 0 < float(factor) < float("inf"):
            raise ValueError(
                f"multiplier for {pattern!r} must be positive and finite, got {factor}"
            )
    compiled = _compile(multipliers, "multipliers")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for regex in compiled:
        if not any(regex.search(name) for name, _ in trainable):
            raise ValueError(
                f"multiplier pattern {regex.pattern!r} matches no trainable parameter of "
                f"{type(model).__name__}"
            )
    groups: dict[tuple[str, ...], list[nn.Parameter]] = {(): []}
    for name, param in trainable:
        matched = tuple(regex.pattern for regex in compiled if regex.search(name))
        groups.setdefault(matched, []).append(param)
    out = []
    for matched, params in groups.items():
        if params:
            factor = math.prod(float(multipliers[pattern]) for pattern in matched)
            out.append(
                {
                    "params": params,
                    "lr": base_lr * factor,
                    "name": "+".join(matched) if matched else "base",
                    "lr_multiplier": factor,
                }
            )
    return out


@dataclass
class PartialLoadReport:
    """What :func:`load_partial_state_dict` did with each key.

    Attributes:
        loaded: keys copied into the model.
        missing: model keys the state dict does not have (left as they were).
        unexpected: state-dict keys the model does not have (ignored).
        shape_mismatch: keys both have with different shapes (left as they were), mapped to
            ``(shape in the state dict, shape in the model)``.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """How many keys were not loaded, for any reason."""
        return len(self.missing) + len(self.unexpected) + len(self.shape_mismatch)

    def __str__(self) -> str:
        lines = [
            f"loaded {len(self.loaded)} tensors; skipped: {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.shape_mismatch)} with another shape"
        ]
        lines += [
            f"  shape {list(a)} in the state dict, {list(b)} in the model: {k}"
            for k, (a, b) in self.shape_mismatch.items()
        ]
        lines += [f"  missing from the state dict: {k}" for k in self.missing]
        lines += [f"  not in the model: {k}" for k in self.unexpected]
        return "\n".join(lines)


def load_partial_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor] | str | os.PathLike,
    *,
    verbose: bool = False,
) -> PartialLoadReport:
    """Copy every tensor whose key and shape match the model's; report everything else.

    The usual fine-tuning start: a detector trained on 91 COCO classes, a model for 4 classes.
    The backbone and the box regressor's hidden layers load; the class-specific output layers have
    another shape, keep their fresh initialisation, and are listed in the report.

    Args:
        model: the model to fill in place.
        state_dict: a ``state_dict()``, or the path of a file holding one (or a checkpoint written
            by :func:`tutorial_det.training.fit`, whose ``"model"`` entry is used); files are read
            with ``weights_only=True``.
        verbose: also print the report.

    Returns:
        A :class:`PartialLoadReport`.

    Raises:
        TypeError: an entry of the state dict is not a tensor.
    """
    if isinstance(state_dict, str | os.PathLike):
        state_dict = load_checkpoint(state_dict)
        if state_dict.get("format") == CHECKPOINT_FORMAT:
            state_dict = state_dict["model"]
    own = model.state_dict()
    report = PartialLoadReport()
    matched = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
        if key not in own:
            report.unexpected.append(key)
        elif value.shape != own[key].shape:
            report.shape_mismatch[key] = (tuple(value.shape), tuple(own[key].shape))
        else:
            matched[key] = value
            report.loaded.append(key)
    report.missing = [key for key in own if key not in state_dict]
    model.load_state_dict(matched, strict=False)
    if verbose:
        print(report)
    return report
