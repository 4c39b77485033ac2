"""From WPOD-Net's output map to plates: threshold, corners back to pixels, NMS.

Lesson 08 (WPOD-Net) teaches it.

1. keep the cells whose object probability is at least ``score_thresh``;
2. warp the unit square with each kept cell's affine values and map the corners from the cell's
   frame back to pixels: ``p = (corner * alpha + (j + 0.5, i + 0.5)) * stride``;
3. non-maximum suppression (:func:`tutorial_det.nms.nms`) over the bounding boxes of the corners,
   since neighbouring cells all see the same plate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import clip_boxes
from tutorial_det.nms import nms
from tutorial_det.wpod.geometry import warp_unit_square
from tutorial_det.wpod.network import STRIDE
from tutorial_det.wpod.targets import PLATES_ALPHA, from_cell_frame


def decode_detections(
    output: Tensor,
    alpha: float = PLATES_ALPHA,
    stride: int = STRIDE,
    score_thresh: float = 0.5,
    nms_thresh: float = 0.3,
    image_sizes: Sequence[Sequence[int]] | None = None,
    detections_per_img: int = 100,
) -> list[dict[str, Tensor]]:
    """Plates found in a batch of WPOD-Net outputs.

    Args:
        output: ``[B, 8, H, W]`` network output (probabilities, then affine values).
        alpha, stride: those the targets were encoded with.
        score_thresh: smallest object probability kept.
        nms_thresh: IoU above which a lower-scoring box is suppressed (plates do not overlap,
            so a low value removes the duplicates from neighbouring cells and nothing else).
        image_sizes: ``(height, width)`` per image; boxes are clipped to it (corners are not).
        detections_per_img: most plates kept per image, best first.

    Returns:
        One dict per image: ``"boxes"`` ``[D, 4]`` xyxy (bounding boxes of the corners),
        ``"labels"`` ``[D]`` int64 ones, ``"scores"`` ``[D]``, ``"corners"`` ``[D, 4, 2]``
        (top-left, top-right, bottom-right, bottom-left, pixels), by decreasing score.
    """
    if not isinstance(output, Tensor) or output.ndim != 4 or output.shape[1] != 8:
        shape = list(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"output must be a tensor of shape [B, 8, H, W], got {shape}")
    if image_sizes is not None and len(image_sizes) != len(output):
        raise ValueError(f"{len(image_sizes)} image_sizes for a batch of {len(output)}")
    if not 0 <= score_thresh <= 1:
        raise ValueError(f"score_thresh must be in [0, 1], got {score_thresh}")
    results = []
    for b, out in enumerate(output):
        rows, cols = (out[0] >= score_thresh).nonzero(as_tuple=True)
        scores = out[0, rows, cols]
        local = warp_unit_square(out[2:, rows, cols].T)  # [K, 4, 2] in the cells' frames
        corners = from_cell_frame(local, rows, cols, alpha, stride)
        boxes = torch.cat((corners.amin(dim=1), corners.amax(dim=1)), dim=1)
        if image_sizes is not None:
            boxes = clip_boxes(boxes, image_sizes[b])
        keep = nms(boxes, scores, nms_thresh)[:detections_per_img]
        results.append(
            {
                "boxes": boxes[keep],
                "labels": torch.ones(len(keep), dtype=torch.int64, device=output.device),
                "scores": scores[keep],
                "corners": corners[keep],
            }
        )
    return results
