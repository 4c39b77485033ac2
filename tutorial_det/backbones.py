"""Backbones: the convolutional feature extractors the detectors stand on.

Lesson 01 teaches them: VGG16's shapes, strides and receptive fields layer by layer, why it is
cut where the stride reaches 16 (:func:`cut_at_stride`; its spot-the-bug cuts by the feature
map's size instead), a photo normalised by hand and checked against :func:`imagenet_normalize`,
and the tiny backbone.

- :func:`vgg16_stride16`: VGG16's convolutional part cut where its stride reaches 16 (the Faster
  R-CNN paper's backbone): ``[B, 3, H, W] -> [B, 512, H/16, W/16]``; ImageNet weights on request,
  random weights (with one printed line saying why) when they cannot be had.
- :class:`TinyBackbone`: a small stride-16 conv net that trains from scratch on a CPU in minutes;
  the backbone of the lessons' Faster R-CNN and SSD. ``forward_stages`` also returns the stride
  2, 4, 8 and 16 feature maps for multi-scale heads.
- :func:`layer_shapes` / :func:`format_layer_shapes`: every layer's output shape, cumulative
  stride and receptive field, the table lesson 01 prints.
- :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD` and :func:`imagenet_normalize`: the input
  normalisation ImageNet-trained backbones expect (and the detectors' default).

Every backbone here is an ``nn.Sequential`` with two extra attributes: ``out_channels`` (channels
of the output feature map) and ``stride`` (input pixels per output cell).
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

#: ImageNet's per-channel mean and standard deviation of RGB in [0, 1]: what ImageNet-trained
#: backbones expect, and torchvision's detection default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Layers whose output has the input's spatial size: they add nothing to stride or receptive field.
_POINTWISE = (nn.ReLU, nn.BatchNorm2d, nn.Dropout, nn.Identity)


def imagenet_normalize(images: Tensor) -> Tensor:
    """``[..., 3, H, W]`` RGB in [0, 1] -> the same shape, each channel minus its ImageNet mean,
    divided by its ImageNet standard deviation."""
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(
            f"imagenet_normalize expects [..., 3, H, W] RGB images, got shape {tuple(images.shape)}"
        )
    mean = images.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (images - mean) / std


# --------------------------------------------------------------------------- geometry


def _square(value: int | Sequence[int], what: str, layer: nn.Module) -> int:
    values = (value,) if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise ValueError(
            f"{layer!r} has {what} {value}: only square kernels, strides, paddings and "
            "dilations are supported"
        )
    return int(values[0])


def layer_geometry(layer: nn.Module) -> tuple[int, int, int, int] | None:
    """``(kernel, stride, padding, dilation)`` of a conv or pooling layer, ``(1, 1, 0, 1)`` for a
    layer that works pixel by pixel (ReLU, BatchNorm, Dropout, Identity), None for any other."""
    if isinstance(layer, _POINTWISE):
        return 1, 1, 0, 1
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _square(layer.kernel_size, "kernel_size", layer)
        stride = _square(layer.stride, "stride", layer)
        padding = _square(layer.padding, "padding", layer)
        dilation = _square(getattr(layer, "dilation", 1), "dilation", layer)
        return kernel, stride, padding, dilation
    return None


def _leaf_layers(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers of (nested) ``nn.Sequential`` containers in execution order, with their names."""
    if not isinstance(module, nn.Sequential):
        return [(prefix or type(module).__name__, module)]
    layers = []
    for name, child in module.named_children():
        layers += _leaf_layers(child, f"{prefix}.{name}" if prefix else name)
    return layers


@dataclass(frozen=True)
class LayerShape:
    """One row of :func:`layer_shapes`.

    Attributes:
        name: the layer's name in the module (``"23"``, ``"2.1"`` for nested Sequentials).
        layer: the layer's ``repr``.
        shape: output shape ``(B, C, H, W)``.
        stride: input pixels between neighbouring output cells (the "jump").
        receptive_field: side, in input pixels, of the window one output cell sees.
        centre: where, in input pixel coordinates, the first output cell's window is centred
            (pixel ``i`` spans ``[i, i + 1]``, so the first pixel's centre is 0.5).
    """

    name: str
    layer: str
    shape: tuple[int, ...]
    stride: int
    receptive_field: int
    centre: float


def layer_shapes(module: nn.Module, input_shape: Sequence[int]) -> list[LayerShape]:
    """Follow an input of ``input_shape`` through ``module`` layer by layer.

    For each layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` (effective
    kernel ``k' = d (k - 1) + 1``) the receptive field ``r``, the stride (jump) ``j`` and the
    centre ``c`` of the first output cell follow the usual recurrence::

        r_out = r_in + (k' - 1) * j_in      j_out = j_in * s      c_out = c_in + ((k' - 1) / 2 - p) * j_in

    starting from ``r = 1, j = 1, c = 0.5`` at the input. Shapes come from running the layers on
    a copy of the module on the ``meta`` device: no memory, no arithmetic, instant even for VGG16
    on 800 x 800.

    Args:
        module: an ``nn.Sequential`` (nested Sequentials are walked into) of conv, pooling and
            pixel-wise layers; any other module counts as one layer and must keep the spatial size.
        input_shape: ``(B, C, H, W)``, or ``(C, H, W)`` for a batch of one.

    Returns:
        One :class:`LayerShape` per layer, in execution order.

    Raises:
        ValueError: ``input_shape`` is not 3 or 4 positive numbers, or a layer whose geometry is
            unknown changes the spatial size (the receptive field cannot be followed through it).
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) <= 0:
        raise ValueError(f"input_shape must be (B, C, H, W) of positive sizes, got {input_shape}")
    meta = copy.deepcopy(module).to("meta").eval()
    x = torch.empty(shape, device="meta")
    field, jump, centre = 1, 1, 0.5
    rows = []
    for name, layer in _leaf_layers(meta):
        size_in = tuple(x.shape[-2:])
        x = layer(x)
        geometry = layer_geometry(layer)
        if geometry is None:
            if tuple(x.shape[-2:]) != size_in:
                raise ValueError(
                    f"layer {name} ({type(layer).__name__}) changes the spatial size "
                    f"{list(size_in)} -> {list(x.shape[-2:])} but is not a Conv2d or pooling "
                    "layer: its receptive field is unknown (wrap its layers in nn.Sequential)"
                )
            geometry = (1, 1, 0, 1)
        kernel, stride, padding, dilation = geometry
        span = dilation * (kernel - 1)
        field += span * jump
        centre += (span / 2 - padding) * jump
        jump *= stride
        rows.append(LayerShape(name, repr(layer), tuple(x.shape), jump, field, centre))
    return rows


def format_layer_shapes(rows: Sequence[LayerShape]) -> str:
    """:func:`layer_shapes`' rows as a fixed-width text table (one line per layer)."""
    header = ("layer", "type", "output shape", "stride", "receptive field", "first centre")
    lines = [
        (
            r.name,
            r.layer.split("(", 1)[0],
            " x ".join(str(v) for v in r.shape[1:]),
            str(r.stride),
            str(r.receptive_field),
            f"{r.centre:g}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i > 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [header, *lines]
    )


# --------------------------------------------------------------------------- initialisation


def kaiming_init(module: nn.Module) -> None:
    """He (kaiming) normal init for every conv (fan-out, ReLU gain; biases 0) and the identity
    for every BatchNorm: the init torchvision gives VGG and ResNet convolutions."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- VGG16


def cut_at_stride(layers: Sequence[nn.Module], stride: int) -> list[nn.Module]:
    """The longest prefix of ``layers`` whose cumulative stride does not exceed ``stride``."""
    kept, jump = [], 1
    for layer in layers:
        geometry = layer_geometry(layer)
        if geometry is None:
            raise ValueError(f"cannot follow the stride through {layer!r}")
        jump *= geometry[1]
        if jump > stride:
            break
        kept.append(layer)
    if jump < stride:
        raise ValueError(f"the layers reach a stride of only {jump}, not {stride}")
    return kept


def vgg16_weights_path() -> Path:
    """Where torch.hub keeps (or would keep) torchvision's VGG16 ImageNet weights."""
    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_vgg16_imagenet_state_dict(timeout: float = 10.0) -> dict[str, Tensor]:
    """torchvision's VGG16 ImageNet state dict: from the torch hub cache, else downloaded (with
    every network operation limited to ``timeout`` seconds, so an offline machine fails fast)."""
    path = vgg16_weights_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = torch.hub.HASH_REGEX.search(path.name).group(1)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            torch.hub.download_url_to_file(
                torchvision.models.VGG16_Weights.IMAGENET1K_V1.url,
                str(path),
                hash_prefix=hash_prefix,
                progress=False,
            )
        finally:
            socket.setdefaulttimeout(previous)
    return torch.load(path, map_location="cpu", weights_only=True)


def vgg16_stride16(pretrained: bool = False) -> nn.Sequential:
    """VGG16's convolutional part up to stride 16: ``[B, 3, H, W] -> [B, 512, H/16, W/16]``.

    ``torchvision.models.vgg16().features`` has 31 layers: 13 convs with ReLUs and 5 max-pools,
    stride 32 at the end. Walking the layers and multiplying their strides, the stride reaches 16
    at the fourth pool and stays there through conv5_1..conv5_3; the fifth pool would make it 32.
    Keeping every layer up to that point gives 30 layers (800 x 800 -> 512 x 50 x 50).

    Args:
        pretrained: load torchvision's ImageNet weights (from the torch hub cache, or downloaded
            when the cache has none). When they cannot be had (offline, corrupt file) one line
            says why and the network keeps its random (kaiming) weights.

    Returns:
        ``nn.Sequential`` of 30 layers with ``out_channels = 512`` and ``stride = 16``.
    """
    # The classifier (120 M parameters) is thrown away: build on the meta device, where nothing
    # is allocated, then give the kept convolutions real memory and weights.
    with torch.device("meta"):
        vgg = torchvision.models.vgg16(weights=None)
    features = vgg.features.to_empty(device="cpu")
    kaiming_init(features)
    if pretrained:
        try:
            state = load_vgg16_imagenet_state_dict()
            features.load_state_dict(
                {
                    k.removeprefix("features."): v
                    for k, v in state.items()
                    if k.startswith("features.")
                }
            )
        except Exception as error:  # any failure leaves the random weights, and says why
            print(
                f"VGG16 ImageNet weights unavailable ({type(error).__name__}: {error}); "
                "using random weights"
            )
    backbone = nn.Sequential(*cut_at_stride(list(features), 16))
    backbone.out_channels = [m for m in backbone if isinstance(m, nn.Conv2d)][-1].out_channels
    backbone.stride = 16
    return backbone


# --------------------------------------------------------------------------- tiny backbone


class TinyBackbone(nn.Sequential):
    """A small VGG-style backbone that trains from scratch on a CPU.

    Stage ``i`` is ``depths[i]`` x (3x3 conv - BatchNorm - ReLU) with ``widths[i]`` channels, then
    a 2x2 max-pool, so the stages end at strides 2, 4, 8, 16 (with four stages). The defaults
    (32-64-128-128 channels, 1-1-2-2 convs) cost about 0.39 G multiply-adds per 128 x 128 image.

    Attributes:
        out_channels: channels of the last stage (128).
        stride: ``2 ** len(widths)`` (16).
        stage_channels: channels of every stage's output, for multi-scale heads.

    ``forward(x)``: ``[B, in_channels, H, W] -> [B, out_channels, H / stride, W / stride]``
    (sizes rounded down at each pool: use H and W divisible by the stride).
    """

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 128, 128),
        depths: Sequence[int] = (1, 1, 2, 2),
        in_channels: int = 3,
    ) -> None:
        if len(widths) == 0 or len(widths) != len(depths):
            raise ValueError(
                f"widths {tuple(widths)} and depths {tuple(depths)} must be non-empty and of the "
                "same length (one of each per stage)"
            )
        if min(widths) < 1 or min(depths) < 1 or in_channels < 1:
            raise ValueError(
                f"widths {tuple(widths)}, depths {tuple(depths)} and in_channels {in_channels} "
                "must be positive"
            )
        stages = []
        channels = in_channels
        for width, depth in zip(widths, depths, strict=True):
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
        super().__init__(*stages)
        self.stage_channels = tuple(int(w) for w in widths)
        self.out_channels = self.stage_channels[-1]
        self.stride = 2 ** len(widths)
        kaiming_init(self)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Every stage's output: ``[B, widths[i], H / 2**(i+1), W / 2**(i+1)]`` for each stage i."""
        outputs = []
        for stage in self:
            x = stage(x)
            outputs.append(x)
        return outputs
