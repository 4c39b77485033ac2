"""check_receptive_field: right answers written differently pass."""

from __future__ import annotations

import pytest
from torch import nn

from tutorial_det.exercises import check_receptive_field
from tutorial_det.exercises.backbones import receptive_field


def _geometry(m):
    def first(v):
        return v if isinstance(v, int) else v[0]

    return first(m.kernel_size), first(m.stride), first(m.dilation)


def field_forward(net):
    field, jump = 1, 1
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            kernel, stride, dilation = _geometry(m)
            field += dilation * (kernel - 1) * jump
            jump *= stride
    return jump, field


def field_backward(net):
    """From the last layer back to the image: r <- s (r - 1) + d (k - 1) + 1."""
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
    field, jump = 1, 1
    for m in reversed(layers):
        kernel, stride, dilation = _geometry(m)
        field = stride * (field - 1) + dilation * (kernel - 1) + 1
        jump *= stride
    return jump, field


@pytest.mark.parametrize("fn", [receptive_field, field_forward, field_backward])
def test_right_answers_pass(fn):
    assert check_receptive_field(fn, verbose=False)


def test_the_lessons_kernel_sum_is_told_strides_and_dilation():
    def sum_of_kernels(net):  # lesson 01's tempting wrong answer: no strides, no dilation
        field = 1
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
                field += _geometry(m)[0] - 1
        return (1, field)

    result = check_receptive_field(sum_of_kernels, verbose=False)
    assert [m.name for m in result.causes] == ["field_without_stride", "field_without_dilation"]
