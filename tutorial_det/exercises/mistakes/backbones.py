"""Mistakes in the receptive-field exercise of lesson 01 (``check_receptive_field``:
``fn(net) -> (stride, receptive_field)`` of the last layer of an ``nn.Sequential`` of ``Conv2d``,
``MaxPool2d``, ``ReLU`` and ``BatchNorm2d`` layers, possibly nested).

Right: walk the leaf layers in order; a layer with kernel ``k``, stride ``s`` and dilation ``d``
widens the field by ``d (k - 1)`` times the stride so far, then multiplies the stride by ``s``;
the other layers change nothing. The field starts at 1 pixel, the stride at 1."""

from __future__ import annotations

from torch import nn

from tutorial_det.exercises.core import Catalogue

RECEPTIVE_FIELD = Catalogue()


def _geometry(layer):
    """``(kernel, stride, dilation)`` of a convolution or pooling layer (square), else None."""
    if not isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
        return None
    first = [v if isinstance(v, int) else v[0] for v in (layer.kernel_size, layer.stride)]
    dilation = layer.dilation if isinstance(layer.dilation, int) else layer.dilation[0]
    return (*first, dilation)


def _leaves(net):
    """Right: every layer that holds no other layer, in order, nested stages included."""
    return [m for m in net.modules() if not list(m.children())]


def _grow(field, jump, kernel, stride, dilation):
    """Right: widen the field by d (k - 1) x the stride so far, then multiply the stride."""
    return field + dilation * (kernel - 1) * jump, jump * stride


def _walk(net, grow=_grow, layers=_leaves):
    """``(stride, field)`` after ``grow`` has seen every layer with a kernel, in order."""
    field, jump = 1, 1
    for layer in layers(net):
        if (geometry := _geometry(layer)) is not None:
            field, jump = grow(field, jump, *geometry)
    return jump, field


@RECEPTIVE_FIELD.add(
    "You add up the kernels and leave the strides out: after a stride-2 layer every further "
    "kernel tap spans 2 pixels, so each layer adds d (k - 1) times the stride so far."
)
def field_without_stride(net):
    return _walk(net, lambda field, jump, k, s, d: (field + d * (k - 1), 1))


@RECEPTIVE_FIELD.add(
    "You leave dilation out: a kernel of k taps at dilation d spans d (k - 1) + 1 pixels."
)
def field_without_dilation(net):
    return _walk(net, lambda field, jump, k, s, d: (field + (k - 1) * jump, jump * s))


@RECEPTIVE_FIELD.add(
    "You multiply the stride before widening the field; a layer's own stride applies only to the "
    "layers after it: widen by d (k - 1) x the stride so far, then multiply."
)
def field_stride_first(net):
    return _walk(net, lambda field, jump, k, s, d: (field + d * (k - 1) * jump * s, jump * s))


@RECEPTIVE_FIELD.add(
    "You widen the field by k per layer; a k-wide kernel adds k - 1 pixels to what the layer "
    "before saw (a 3x3 convolution makes a field of 3 from 1, not 4)."
)
def field_adds_whole_kernel(net):
    return _walk(net, lambda field, jump, k, s, d: (field + d * k * jump, jump * s))


@RECEPTIVE_FIELD.add(
    "You count the convolutions only; a max-pooling layer has a kernel and a stride too."
)
def field_without_pooling(net):
    return _walk(net, layers=lambda net: [m for m in _leaves(net) if isinstance(m, nn.Conv2d)])


@RECEPTIVE_FIELD.add(
    "You walk the top-level layers only, so the layers inside nested stages are missed: walk the "
    "leaves, e.g. the modules() that have no children."
)
def field_top_level_only(net):
    return _walk(net, layers=lambda net: list(net.children()))


@RECEPTIVE_FIELD.add(
    "You return (receptive_field, stride); the pair is (stride, receptive_field), stride first."
)
def field_pair_swapped(net):
    stride, field = _walk(net)
    return field, stride
