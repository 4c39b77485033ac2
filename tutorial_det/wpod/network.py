"""WPOD-Net, the fully convolutional network: image ``[B, 3, H, W]`` -> ``[B, 8, H/16, W/16]``.

Lesson 08 (WPOD-Net) teaches it.

The paper's layout: 21 convolutions, all 3 x 3, 14 of them inside 7 residual blocks, ReLU
everywhere except in the detection block, and four 2 x 2 max-poolings (stride 16 in all). The
order of the stages below is our reading of the paper's figure (channel counts 16-32-64-128):

- conv, conv: 16 channels, stride 1;
- max-pool, conv, residual block: 32 channels, stride 2;
- max-pool, conv, 2 residual blocks: 64 channels, stride 4;
- max-pool, 2 residual blocks: 64 channels, stride 8;
- max-pool, conv, 2 residual blocks: 128 channels, stride 16;
- detection block: 2 + 6 channels, stride 16.

Each plain convolution is conv 3 x 3 + batch norm + ReLU; a residual block is two of them with
the input added before the second ReLU. The detection block is two parallel 3 x 3 convolutions
on the last features: 2 channels through a softmax (object, not object) and 6 linear channels
(the affine values). ``width`` multiplies every channel count (at least 4 channels per layer),
so a narrow network trains on a laptop CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: (kind, channels) of every layer before the detection block; "pool" has no channel count.
LAYOUT: tuple[tuple[str, int], ...] = (
    ("conv", 16),
    ("conv", 16),
    ("pool", 0),
    ("conv", 32),
    ("res", 32),
    ("pool", 0),
    ("conv", 64),
    ("res", 64),
    ("res", 64),
    ("pool", 0),
    ("res", 64),
    ("res", 64),
    ("pool", 0),
    ("conv", 128),
    ("res", 128),
    ("res", 128),
)

#: The network's total stride: one 2 x 2 max-pooling per "pool" layer of :data:`LAYOUT` (16).
STRIDE = 2 ** sum(kind == "pool" for kind, _ in LAYOUT)


class ConvBNReLU(nn.Sequential):
    """3 x 3 convolution (padding 1, no bias) + batch norm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))``: two 3 x 3 convolutions, same channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.bn2(self.conv2(self.conv1(x))))


class DetectionBlock(nn.Module):
    """Two parallel 3 x 3 convolutions: ``[B, C, h, w]`` -> ``[B, 8, h, w]``.

    Channels 0-1: softmax over (object, not object); channels 2-7: the affine values
    ``(a, b, tx, c, d, ty)`` of :func:`~tutorial_det.wpod.geometry.warp_unit_square`, linear.
    The affine convolution starts at the identity map (bias 1 on ``a`` and ``d``), so every cell
    begins by predicting a square of side ``alpha`` on its centre and the clamped diagonal terms
    start in their live (positive) range.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.probs = nn.Conv2d(in_channels, 2, 3, padding=1)
        self.affine = nn.Conv2d(in_channels, 6, 3, padding=1)
        nn.init.normal_(self.affine.weight, std=1e-3)
        with torch.no_grad():
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((torch.softmax(self.probs(x), dim=1), self.affine(x)), dim=1)


class WPODNet(nn.Module):
    """The network: ``features`` (the layers of :data:`LAYOUT`) then ``detection``.

    Args:
        width: channel multiplier (1.0 = the paper's 16 to 128 channels).

    ``forward(x [B, 3, H, W])`` -> ``[B, 8, H // 16, W // 16]`` (H and W multiples of 16).
    """

    stride = STRIDE

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(width, int | float) and width > 0):
            raise ValueError(f"width must be a positive number, got {width!r}")
        self.width = float(width)
        layers: list[nn.Module] = []
        channels = 3
        for kind, c in LAYOUT:
            if kind == "pool":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(4, round(c * width))
            layers.append(ConvBNReLU(channels, out) if kind == "conv" else ResidualBlock(channels))
            channels = out
        self.features = nn.Sequential(*layers)
        self.detection = DetectionBlock(channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"WPODNet expects images [B, 3, H, W], got {list(x.shape)}")
        if x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise ValueError(
                f"image height and width must be multiples of {self.stride}, got "
                f"{x.shape[2]} x {x.shape[3]} (pad them, as WPODDetector does)"
            )
        return self.detection(self.features(x))
