"""WPOD-Net as a detector with torchvision's contract, so ``fit``, ``evaluate`` and the CLI use it.

- training mode: ``model(images, targets)`` -> ``{"loss_affine", "loss_object",
  "loss_background"}``, each averaged over the images; their sum is
  ``wpod_loss(output, encode_targets(...))``. Every target needs ``"corners"`` ``[N, 4, 2]``.
- eval mode: ``model(images)`` -> one ``{"boxes", "labels", "scores", "corners"}`` per image
  (:func:`~tutorial_det.wpod.decode_detections`).

Images may differ in size: they are padded with zeros at the bottom and right to a common size
that is a multiple of 16. Padding there leaves pixel coordinates unchanged, so targets and
predictions need no shifting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tutorial_det.wpod.decode import decode_detections
from tutorial_det.wpod.loss import wpod_loss_terms
from tutorial_det.wpod.network import WPODNet
from tutorial_det.wpod.targets import PLATES_ALPHA, POS_THRESH, encode_targets


class WPODDetector(nn.Module):
    """WPOD-Net plus its target encoding, loss and decoding.

    Args:
        width: channel multiplier of the network (1.0 = the paper's).
        alpha: side of the fictional square in output cells (see :mod:`tutorial_det.wpod.targets`).
        pos_thresh: IoU threshold of the positive-cell rule.
        score_thresh, nms_thresh, detections_per_img: decoding in eval mode.

    Attributes:
        net: the :class:`~tutorial_det.wpod.WPODNet`; ``model.output_map(images)`` runs it on a
            padded batch and returns ``[B, 8, H/16, W/16]``.
    """

    def __init__(
        self,
        width: float = 1.0,
        alpha: float = PLATES_ALPHA,
        pos_thresh: float = POS_THRESH,
        score_thresh: float = 0.5,
        nms_thresh: float = 0.3,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.net = WPODNet(width)
        self.alpha = float(alpha)
        self.pos_thresh = float(pos_thresh)
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.detections_per_img = int(detections_per_img)

    @property
    def stride(self) -> int:
        return self.net.stride

    def batch_images(
        self, images: Sequence[Tensor] | Tensor
    ) -> tuple[Tensor, list[tuple[int, int]]]:
        """A list of ``[3, H, W]`` images (or one ``[B, 3, H, W]`` tensor) -> a zero-padded batch
        ``[B, 3, H', W']`` (multiples of the stride) and each image's ``(H, W)``."""
        if isinstance(images, Tensor):
            if images.ndim != 4:
                raise ValueError(
                    f"images must be [B, 3, H, W] or a list of [3, H, W], got {list(images.shape)}"
                )
            images = list(images)
        if not isinstance(images, Sequence) or len(images) == 0:
            raise ValueError("images must be a non-empty list of [3, H, W] tensors")
        for i, image in enumerate(images):
            if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
                shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise ValueError(f"images[{i}] must be a [3, H, W] tensor, got {shape}")
        sizes = [(int(im.shape[1]), int(im.shape[2])) for im in images]
        s = self.stride
        height = -(-max(h for h, _ in sizes) // s) * s
        width = -(-max(w for _, w in sizes) // s) * s
        batch = torch.stack(
            [F.pad(im, (0, width - im.shape[2], 0, height - im.shape[1])) for im in images]
        )
        return batch, sizes

    def output_map(self, images: Sequence[Tensor] | Tensor) -> Tensor:
        """The raw network output ``[B, 8, H/16, W/16]`` for a list of images."""
        return self.net(self.batch_images(images)[0])

    def forward(
        self, images: Sequence[Tensor] | Tensor, targets: Sequence[dict[str, Any]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, sizes = self.batch_images(images)
        output = self.net(batch)
        if not self.training:
            return decode_detections(
                output,
                self.alpha,
                self.stride,
                self.score_thresh,
                self.nms_thresh,
                sizes,
                self.detections_per_img,
            )
        if targets is None or len(targets) != len(sizes):
            got = "none" if targets is None else len(targets)
            raise ValueError(
                f"in training mode WPODDetector needs one target per image ({len(sizes)}), got {got}"
            )
        corners = []
        for i, t in enumerate(targets):
            if "corners" not in t:
                raise ValueError(
                    f"targets[{i}] has no 'corners': WPOD-Net learns the four plate corners "
                    "[N, 4, 2], not only boxes"
                )
            corners.append(t["corners"].to(output.device))
        target = encode_targets(
            corners, output.shape[-2:], self.alpha, self.stride, self.pos_thresh
        )
        terms = wpod_loss_terms(output, target)
        return {f"loss_{name}": value.mean() for name, value in terms.items()}


def build_wpod(num_classes: int = 2, width: float = 1.0, **options) -> WPODDetector:
    """The ``"wpod"`` entry of :data:`tutorial_det.models.MODELS`: a plate detector (background +
    plate, so ``num_classes`` must be 2). ``options`` go to :class:`WPODDetector`."""
    if num_classes != 2:
        raise ValueError(
            f"WPOD-Net detects one class (plates), so num_classes must be 2 (background + plate), "
            f"got {num_classes}"
        )
    return WPODDetector(width=width, **options)
