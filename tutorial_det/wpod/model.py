"""WPOD-Net as a detector with torchvision's contract, so ``fit``, ``evaluate`` and the CLI use it.

Lesson 08 (WPOD-Net) teaches it.

- training mode: ``model(images, targets)`` -> ``{"loss_affine", "loss_object",
  "loss_background"}``, each averaged over the images; their sum is
  ``wpod_loss(output, encode_targets(...))``. Every target needs ``"corners"`` ``[N, 4, 2]``.
- eval mode: ``model(images)`` -> one ``{"boxes", "labels", "scores", "corners"}`` per image
  (:func:`~tutorial_det.wpod.decode_detections`).

Images may differ in size: the model's :class:`~tutorial_det.input_transform.InputTransform`
(``model.transform``) pads them with zeros at the bottom and right to a common size that is a
multiple of the stride (16). Padding there leaves pixel coordinates unchanged, so targets and
predictions need no shifting; each image's boxes are clipped to its own size. The network reads
the pixels as they are, in [0, 1] (mean 0, std 1: no normalisation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from tutorial_det.input_transform import InputTransform, check_target_count
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
        net: the :class:`~tutorial_det.wpod.WPODNet`; ``model.head_outputs(images)`` runs it on a
            padded batch and returns ``[B, 8, H/16, W/16]``.
        transform: the :class:`~tutorial_det.input_transform.InputTransform` that checks and pads
            the images (mean 0, std 1, ``size_divisible`` the stride).
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
        self.transform = InputTransform((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), self.net.stride)
        self.alpha = float(alpha)
        self.pos_thresh = float(pos_thresh)
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.detections_per_img = int(detections_per_img)

    @property
    def stride(self) -> int:
        return self.net.stride

    def head_outputs(self, images: Sequence[Tensor] | Tensor) -> Tensor:
        """The raw network output ``[B, 8, H/16, W/16]`` for a list of images."""
        return self.net(self.transform(images)[0])

    def forward(
        self, images: Sequence[Tensor] | Tensor, targets: Sequence[dict[str, Any]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, sizes = self.transform(images)
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
        check_target_count(targets, len(sizes))
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
