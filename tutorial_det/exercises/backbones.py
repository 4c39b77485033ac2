"""Checks for the receptive-field exercise of lesson 01."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from torch import nn

from tutorial_det.backbones import TinyBackbone, layer_shapes, vgg16_stride16
from tutorial_det.exercises.core import Case, CheckResult, run_check
from tutorial_det.exercises.mistakes.backbones import RECEPTIVE_FIELD


def receptive_field(net: nn.Module) -> tuple[int, int]:
    """The reference: ``(stride, receptive field)`` of the last layer, from ``layer_shapes``."""
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    last = layer_shapes(net, (1, first.in_channels, 64, 64))[-1]
    return (last.stride, last.receptive_field)


def _compare_pairs(got: Any, expected: tuple[int, int]) -> str | None:
    try:
        pair = tuple(int(v) for v in got)
    except (TypeError, ValueError):
        return f"expected a pair (stride, receptive_field), got {got!r}"
    return None if pair == tuple(expected) else f"expected {tuple(expected)}, got {pair}"


def receptive_field_cases() -> list[Case]:
    """Networks of ``Conv2d``, ``MaxPool2d``, ``ReLU`` and ``BatchNorm2d`` layers (built once:
    VGG16 takes a while)."""
    return list(_networks())


@cache
def _networks() -> tuple[Case, ...]:
    return (
        Case(
            "one 3x3 convolution",
            (nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)),),
            hint="a 3x3 convolution sees 3 x 3 pixels",
        ),
        Case(
            "two 3x3 convolutions",
            (
                nn.Sequential(
                    nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
                ),
            ),
            hint="each 3x3 convolution at stride 1 adds 2 pixels: 3, then 5",
        ),
        Case(
            "convolution then pooling",
            (nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2)),),
            hint="a 2x2 pool adds (2 - 1) x stride so far = 1, then doubles the stride",
        ),
        Case(
            "pooling then convolution",
            (nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, 8, 3, padding=1)),),
            hint="after the pool the stride is 2, so the 3x3 convolution adds 2 x 2 = 4 pixels",
        ),
        Case(
            "a ResNet stem: 7x7 stride 2, then 3x3 pool stride 2",
            (
                nn.Sequential(
                    nn.Conv2d(3, 8, 7, stride=2, padding=3), nn.MaxPool2d(3, 2, padding=1)
                ),
            ),
            hint="after the stride-2 convolution the pool's 3x3 window spans 2 x 2 = 4 more pixels",
        ),
        Case(
            "a dilated 3x3 convolution",
            (nn.Sequential(nn.Conv2d(3, 8, 3, padding=2, dilation=2)),),
            hint="dilation d spreads the kernel: it spans d (k - 1) + 1 pixels",
        ),
        Case(
            "TinyBackbone (nested stages)",
            (TinyBackbone(),),
            hint="the layers inside every stage count",
        ),
        Case("VGG16 to stride 16", (vgg16_stride16(),), hint="stride 16, field 196"),
    )


def check_receptive_field(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check a learner's ``fn(net) -> (stride, receptive_field)`` against ``layer_shapes``."""
    return run_check(
        "check_receptive_field",
        fn,
        receptive_field_cases(),
        reference=receptive_field,
        compare=_compare_pairs,
        verbose=verbose,
        mistakes=RECEPTIVE_FIELD,
    )
