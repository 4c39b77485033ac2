"""Which detections are true positives: COCO's greedy matching of detections to ground truths.

Lesson 10 (evaluation) teaches it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: pycocotools caps every IoU threshold just below 1, so that threshold 1.0 still accepts a
#: detection identical to its ground truth despite rounding.
MAX_IOU_THRESHOLD = 1 - 1e-10


def match_detections(
    ious: Tensor,
    iou_thresholds: float | Sequence[float] | Tensor = 0.5,
    *,
    gt_ignore: Tensor | None = None,
    gt_crowd: Tensor | None = None,
    det_ignore: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Match detections to ground truths greedily, by descending score; flag TPs and FPs.

    The detections (rows of ``ious``) must already be sorted by descending score. Each in turn
    takes, among the ground truths it overlaps with IoU >= threshold and that no earlier
    detection took, the one with the highest IoU (on equal IoUs the later column, as
    pycocotools does). It is then a true positive; a detection that finds none is a false
    positive. Each ground truth is matched at most once, so a second detection of the same
    object is a false positive. COCO's rules for ignored ground truths:

    - ``gt_ignore``: a detection prefers any non-ignored ground truth over an ignored one, and
      a detection matched to an ignored ground truth counts as neither TP nor FP (COCO: crowd
      regions and objects outside the area range being evaluated; VOC: "difficult" objects).
    - ``gt_crowd``: a crowd region may absorb any number of detections (it stays available after
      a match). COCO measures overlap with a crowd region as intersection / detection area, so
      pass that value in its column of ``ious``, and flag crowds in ``gt_ignore`` too.
    - ``det_ignore``: an *unmatched* detection flagged here counts as neither TP nor FP (COCO:
      detections outside the area range).

    Args:
        ious: ``[D, G]`` overlaps of ``D`` score-sorted detections with ``G`` ground truths of
            one image and class; or ``[..., D, G]`` for a batch of such groups, with missing
            rows and columns padded with -1 (which never matches).
        iou_thresholds: one threshold, or ``T`` of them (matched independently).
        gt_ignore: ``[..., G]`` bool, broadcast against the leading dimensions; default none.
        gt_crowd: ``[..., G]`` bool; default none.
        det_ignore: ``[..., D]`` bool; default none.

    Returns:
        ``(tp, fp)``: bool tensors ``[..., T, D]``, or ``[..., D]`` for a single float threshold.
        A detection with neither flag set is ignored.
    """
    if not isinstance(ious, Tensor) or ious.ndim < 2:
        shape = list(ious.shape) if isinstance(ious, Tensor) else type(ious).__name__
        raise ValueError(f"ious must be a tensor of shape [D, G] or [..., D, G], got {shape}")
    single = isinstance(iou_thresholds, float | int)
    thresholds = torch.as_tensor(iou_thresholds, dtype=torch.float64).reshape(-1)
    if thresholds.numel() == 0 or not bool(((thresholds >= 0) & (thresholds <= 1)).all()):
        raise ValueError(f"iou_thresholds must be values in [0, 1], got {thresholds.tolist()}")
    num_dets, num_gts = ious.shape[-2:]
    flags = {}
    for name, value, size in (
        ("gt_ignore", gt_ignore, num_gts),
        ("gt_crowd", gt_crowd, num_gts),
        ("det_ignore", det_ignore, num_dets),
    ):
        if value is None:
            value = torch.zeros(size, dtype=torch.bool)
        elif value.dtype != torch.bool or value.ndim < 1 or value.shape[-1] != size:
            raise ValueError(
                f"{name} must be a bool tensor of shape [..., {size}], got {value.dtype} "
                f"{list(value.shape)}"
            )
        flags[name] = value.to(ious.device)
    batch = torch.broadcast_shapes(ious.shape[:-2], *(value.shape[:-1] for value in flags.values()))
    num_thresholds = len(thresholds)
    det_ignore = flags["det_ignore"].expand(*batch, num_dets)
    tp = torch.zeros(*batch, num_thresholds, num_dets, dtype=torch.bool, device=ious.device)
    fp = (~det_ignore).unsqueeze(-2).expand_as(tp).clone()
    if num_gts > 0:
        thresholds = thresholds.clamp(max=MAX_IOU_THRESHOLD).to(ious.device, ious.dtype)[:, None]
        # Columns reversed once: torch.max returns the *first* of equal maxima, which is then
        # the *last* ground truth in the caller's order, the one pycocotools keeps.
        ious = ious.flip(-1).expand(*batch, num_dets, num_gts)
        regular = ~flags["gt_ignore"].flip(-1).expand(*batch, num_gts).unsqueeze(-2)  # [..., 1, G]
        reusable = flags["gt_crowd"].flip(-1).expand(*batch, num_gts).unsqueeze(-2)
        free = torch.ones(*batch, num_thresholds, num_gts, dtype=torch.bool, device=ious.device)
        column = torch.arange(num_gts, device=ious.device)
        for d in range(num_dets):
            iou = ious[..., d, None, :]  # [..., 1, G]
            candidate = (iou >= thresholds) & free  # [..., T, G]
            regular_candidate = candidate & regular
            # Any regular candidate wins over every ignored one: the detection is then a TP.
            found_regular = regular_candidate.any(-1)  # [..., T]
            pool = torch.where(found_regular.unsqueeze(-1), regular_candidate, candidate)
            best_iou, best = torch.where(pool, iou, -1.0).max(-1)  # [..., T]
            matched = best_iou >= 0
            taken = column == torch.where(matched, best, num_gts).unsqueeze(-1)  # one-hot
            free &= ~taken | reusable  # a crowd stays free for the next detections
            tp[..., d] = found_regular
            fp[..., d] &= ~matched
    if single:
        return tp.squeeze(-2), fp.squeeze(-2)
    return tp, fp
