"""``mean_average_precision``: COCO's and VOC's detection metrics over a whole data set.

Lesson 10 (evaluation) teaches it.

It gives pycocotools' ``COCOeval`` numbers (same matching, same tie order, same floats) under
torchmetrics' ``MeanAveragePrecision`` key names, plus VOC's AP at IoU 0.5, from the three
building blocks of this package: ``box_iou`` for overlaps, :func:`match_detections` for TP/FP
flags and :func:`average_precision` for the area under each precision-recall curve.

It is vectorised over images and classes: every (image, class) pair is a *group*, groups of
similar size are matched together as one padded batch, and the precision-recall curves of all
classes and IoU thresholds are accumulated at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import box_iou, check_boxes
from tutorial_det.metrics.ap import COCO_IOU_THRESHOLDS, average_precision
from tutorial_det.metrics.matching import match_detections

#: COCO's object size ranges by box area in pixels (both ends inclusive, as in pycocotools).
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}

#: Largest IoU matrix (detections x ground truths) computed in one ``box_iou`` call.
_PAIR_BUDGET = 1 << 12


def mean_average_precision(
    preds: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]],
    *,
    iou_thresholds: Sequence[float] | Tensor | None = None,
    max_detections: int = 100,
    class_metrics: bool = True,
) -> dict[str, Tensor]:
    """COCO mAP / mAR and VOC AP of a detector's output over a data set.

    Args:
        preds: one dict per image: ``"boxes"`` ``[D, 4]`` xyxy, ``"scores"`` ``[D]``,
            ``"labels"`` ``[D]`` int64.
        targets: one dict per image: ``"boxes"`` ``[G, 4]`` xyxy, ``"labels"`` ``[G]`` int64,
            optionally ``"iscrowd"`` ``[G]`` (bool or 0/1): crowd regions, which absorb
            detections without counting them (COCO's rule); and ``"difficult"`` ``[G]`` (bool or
            0/1): objects VOC marks as hard to recognise, ignored as the VOC devkit ignores them
            (not counted among the objects to find; a detection matched to one is neither a
            true nor a false positive). Labels are object classes, ``>= 1`` (0 is the
            background, which is never detected nor annotated).
        iou_thresholds: the IoU thresholds AP is averaged over; default COCO's 0.5:0.05:0.95.
        max_detections: detections kept per image and class, best scores first (COCO's 100).
        class_metrics: also return per-class AP and AR.

    Returns:
        A dict of 0-d float32 tensors (per-class ones ``[K]``), -1 wherever a value is undefined
        (no ground truth to find), exactly as ``COCOeval``:

        - ``map``: AP averaged over IoU thresholds, 101 recall levels, classes (area "all",
          ``max_detections`` per image and class); ``map_50``, ``map_75`` at one threshold
          (-1 when it is not among ``iou_thresholds``); ``map_small`` / ``_medium`` / ``_large``
          counting only objects of area < 32², 32²..96², > 96² (the others are ignored);
        - ``mar_1``, ``mar_10``, ``mar_{max_detections}``: recall with at most that many
          detections per image and class, averaged over thresholds and classes;
          ``mar_small`` / ``_medium`` / ``_large``;
        - ``map_per_class``, ``mar_{max_detections}_per_class``, ``classes`` (int64 ``[K]``,
          every label seen in preds or targets, sorted);
        - ``voc_map_50`` / ``voc11_map_50`` (and ``_per_class``): VOC's all-point and 11-point AP
          at IoU 0.5 with every detection. Matching follows the COCO rules above (the VOC devkit
          differs in two corner cases: it needs IoU > 0.5, not >= 0.5, and a detection whose
          best ground truth is taken becomes a false positive instead of trying the next best).

    Raises:
        ValueError / TypeError: malformed input (a wrong shape, a non-finite value, a label
            below 1), naming the image index and the key.
    """
    thresholds = _iou_thresholds(iou_thresholds)
    if (
        isinstance(max_detections, bool)
        or not isinstance(max_detections, int)
        or max_detections < 1
    ):
        raise ValueError(f"max_detections must be a positive int, got {max_detections!r}")
    limits = sorted({m for m in (1, 10, max_detections) if m <= max_detections})
    dets, gts = flatten_preds_targets(preds, targets)
    classes = torch.cat((dets["labels"], gts["labels"])).unique(sorted=True)
    dets, gts = _sort_into_groups(dets, gts, classes)

    # Area ranges: ground truths outside one (and crowds) are ignored in it, and so are
    # detections outside it that match nothing. [A, G] and [A, D].
    gt_ignore = _outside(gts["boxes"]) | gts["crowd"] | gts["difficult"]
    det_outside = _outside(dets["boxes"])
    # Match at every threshold, and at 0.5 for VOC: tp, fp [A, T', D].
    voc_index, match_thresholds = _index_of(thresholds, 0.5), thresholds
    if voc_index < 0:  # VOC needs IoU 0.5 even where COCO's AP leaves it out
        voc_index = len(thresholds)
        match_thresholds = torch.cat((thresholds, thresholds.new_tensor([0.5])))
    tp, fp = _match_all(dets, gts, gt_ignore, det_outside, match_thresholds)

    # Accumulate each class over all images: rank its detections by score (ties: image order,
    # then rank in the image, as pycocotools concatenates and stable-sorts them).
    rank = torch.arange(len(dets["group"])) - torch.searchsorted(dets["group"], dets["group"])
    by_class = dets["scores"].sort(descending=True, stable=True).indices
    by_class = by_class[dets["class"][by_class].sort(stable=True).indices]
    det_class, rank, tp, fp = (
        dets["class"][by_class],
        rank[by_class],
        tp[..., by_class],
        fp[..., by_class],
    )
    num_gts = torch.zeros(len(AREA_RANGES), len(classes), dtype=torch.int64)
    num_gts.scatter_add_(1, gts["class"].expand_as(gt_ignore), (~gt_ignore).long())  # [A, K]
    no_gt = num_gts == 0

    # COCO: AP and final recall [A, M, T, K] per area range, detection limit, threshold, class.
    ap = torch.empty(
        len(AREA_RANGES), len(limits), len(thresholds), len(classes), dtype=torch.float64
    )
    ar = torch.empty_like(ap)
    for a in range(len(AREA_RANGES)):
        for m, limit in enumerate(limits):
            keep = rank < limit
            curves = _pr_curves(
                tp[a, : len(thresholds)] & keep,
                fp[a, : len(thresholds)] & keep,
                det_class,
                num_gts[a],
            )
            ap[a, m] = average_precision(curves[0], curves[1], "coco_101")
            ar[a, m] = curves[2]
    ap.masked_fill_(no_gt[:, None, None, :], -1)
    ar.masked_fill_(no_gt[:, None, None, :], -1)
    # VOC: area "all", IoU 0.5, every detection: AP [K].
    recall, precision, _ = _pr_curves(
        tp[0, voc_index, None], fp[0, voc_index, None], det_class, num_gts[0]
    )
    voc = {
        name: average_precision(recall, precision, method)[0].masked_fill(no_gt[0], -1)
        for name, method in (("voc_map_50", "all_points"), ("voc11_map_50", "11_points"))
    }
    result = _summarise(ap, ar, voc, thresholds, limits, class_metrics)
    result["classes"] = classes
    return result


def _summarise(
    ap: Tensor,
    ar: Tensor,
    voc: dict[str, Tensor],
    thresholds: Tensor,
    limits: list[int],
    class_metrics: bool,
) -> dict[str, Tensor]:
    """COCOeval.summarize's averages (and per-class ones) of AP and AR ``[A, M, T, K]``."""
    last = len(limits) - 1  # the max_detections limit
    result = {"map": _mean(ap[0, last])}
    for name, iou in (("map_50", 0.5), ("map_75", 0.75)):
        t = _index_of(thresholds, iou)
        result[name] = _mean(ap[0, last, t] if t >= 0 else ap.new_empty(0))
    for a, name in enumerate(AREA_RANGES):
        if name != "all":
            result[f"map_{name}"] = _mean(ap[a, last])
    for m, limit in enumerate(limits):
        result[f"mar_{limit}"] = _mean(ar[0, m])
    for a, name in enumerate(AREA_RANGES):
        if name != "all":
            result[f"mar_{name}"] = _mean(ar[a, last])
    result.update({name: _mean(values) for name, values in voc.items()})
    per_class = {
        "map_per_class": ap[0, last],
        f"mar_{limits[-1]}_per_class": ar[0, last],
        **{f"{name}_per_class": values[None] for name, values in voc.items()},
    }
    for name, values in per_class.items():
        # Mean over the thresholds of each class's column, -1 for a class without ground truth.
        result[name] = _mean(values, dim=0) if class_metrics else torch.tensor(-1.0)
    return result


def _sort_into_groups(
    dets: dict[str, Tensor], gts: dict[str, Tensor], classes: Tensor
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Sort the boxes by group, the (image, class) pair ``group = image * K + class index``:
    detections within a group by descending score (ties keep their input order, as
    pycocotools' stable sort does), ground truths in their input order. Adds ``"class"`` (index
    into ``classes``) and ``"group"``."""
    out = []
    for boxes in (dets, gts):
        boxes = {**boxes, "class": torch.searchsorted(classes, boxes["labels"])}
        boxes["group"] = boxes["image"] * len(classes) + boxes["class"]
        order = torch.arange(len(boxes["group"]))
        if "scores" in boxes:
            order = boxes["scores"].sort(descending=True, stable=True).indices
        order = order[boxes["group"][order].sort(stable=True).indices]
        out.append({key: value[order] for key, value in boxes.items()})
    return out[0], out[1]


# --------------------------------------------------------------------------- input checking


def _iou_thresholds(iou_thresholds) -> Tensor:
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS.clone()
    values = torch.as_tensor(iou_thresholds, dtype=torch.float64).reshape(-1)
    if values.numel() == 0 or not bool(((values >= 0) & (values <= 1)).all()):
        raise ValueError(f"iou_thresholds must be values in [0, 1], got {values.tolist()}")
    return values


def _index_of(values: Tensor, value: float) -> int:
    hits = (values - value).abs() < 1e-9
    return int(hits.nonzero()[0]) if bool(hits.any()) else -1


#: Optional per-object flags of a target: None when missing.
_FLAGS = ("iscrowd", "difficult")


def _fields(item, where: str, keys: tuple[str, ...]) -> list[Tensor | None]:
    """One image's tensors under ``keys`` (``"boxes"`` first), shapes checked, on the CPU; None
    for a missing flag (``_FLAGS``). Only Python attribute checks: this runs once per image."""
    if not isinstance(item, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(item).__name__}")
    out: list[Tensor | None] = []
    for key in keys:
        if key not in item:
            if key in _FLAGS:
                out.append(None)
                continue
            raise ValueError(f"{where} has no key {key!r} (it has {sorted(item)})")
        value = item[key]
        if not isinstance(value, Tensor):
            raise TypeError(f"{where}[{key!r}] must be a torch.Tensor, got {type(value).__name__}")
        if key == "boxes":
            if value.ndim != 2 or value.shape[1] != 4:
                check_boxes(value, f"{where}['boxes']")  # raises, naming the shape
            n = value.shape[0]
        elif value.ndim != 1 or value.shape[0] != n:
            raise ValueError(
                f"{where}[{key!r}] must have shape [{n}] (one per box of {where}['boxes']), "
                f"got {list(value.shape)}"
            )
        if key == "labels" and (
            value.is_floating_point() or value.is_complex() or value.dtype == torch.bool
        ):
            raise TypeError(f"{where}['labels'] must be an integer tensor, got {value.dtype}")
        out.append(value if value.device.type == "cpu" else value.cpu())
    return out


def _cat(parts: list[Tensor], empty_shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    return torch.cat(parts).detach().to(dtype) if parts else torch.zeros(empty_shape, dtype=dtype)


def flatten_preds_targets(preds, targets) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """All images' detections and ground truths as flat float64 / int64 / bool tensors, with the
    index of each box's image (``"image"``); every error names the image and the key."""
    for name, value in (("preds", preds), ("targets", targets)):
        if isinstance(value, Mapping) or not isinstance(value, Sequence):
            raise TypeError(
                f"{name} must be a list with one dict per image, got {type(value).__name__}"
            )
    if len(preds) != len(targets):
        raise ValueError(
            f"preds has {len(preds)} images but targets has {len(targets)}: give one dict per "
            "image in both, in the same order"
        )
    det_fields = [
        _fields(p, f"preds[{i}]", ("boxes", "scores", "labels")) for i, p in enumerate(preds)
    ]
    gt_fields = [
        _fields(t, f"targets[{i}]", ("boxes", "labels", *_FLAGS)) for i, t in enumerate(targets)
    ]
    images = torch.arange(len(preds))
    det_counts = torch.tensor([f[0].shape[0] for f in det_fields], dtype=torch.int64)
    gt_counts = torch.tensor([f[0].shape[0] for f in gt_fields], dtype=torch.int64)
    dets = {
        "boxes": _cat([f[0] for f in det_fields], (0, 4), torch.float64),
        "scores": _cat([f[1] for f in det_fields], (0,), torch.float64),
        "labels": _cat([f[2] for f in det_fields], (0,), torch.int64),
        "image": images.repeat_interleave(det_counts),
    }
    gts = {
        "boxes": _cat([f[0] for f in gt_fields], (0, 4), torch.float64),
        "labels": _cat([f[1] for f in gt_fields], (0,), torch.int64),
        "crowd": torch.zeros(int(gt_counts.sum()), dtype=torch.bool),
        "difficult": torch.zeros(int(gt_counts.sum()), dtype=torch.bool),
        "image": images.repeat_interleave(gt_counts),
    }
    starts = (gt_counts.cumsum(0) - gt_counts).tolist()
    for i, fields in enumerate(gt_fields):
        for name, key, flag in zip(("crowd", "difficult"), _FLAGS, fields[2:], strict=True):
            if flag is None:
                continue
            if not bool(((flag == 0) | (flag == 1)).all()):
                raise ValueError(
                    f"targets[{i}][{key!r}] must hold 0/1 or bools, got {flag.tolist()}"
                )
            gts[name][starts[i] : starts[i] + len(flag)] = flag.bool()

    # Value checks once over all images; only an offending image is looked at again.
    bad = ~torch.isfinite(dets["scores"])
    if bool(bad.any()):
        j = int(bad.nonzero()[0])
        raise ValueError(
            f"preds[{int(dets['image'][j])}]['scores'] holds {dets['scores'][j].item()}, which is not finite"
        )
    for name, flat, fields in (("preds", dets, det_fields), ("targets", gts, gt_fields)):
        bad = flat["labels"] < 1
        if bool(bad.any()):
            j = int(bad.nonzero()[0])
            label = int(flat["labels"][j])
            raise ValueError(
                f"{name}[{int(flat['image'][j])}]['labels'] holds {label}: labels number the "
                f"object classes from 1{' (0 is the background)' if label == 0 else ''}"
            )
        boxes = flat["boxes"]
        bad = (
            ~torch.isfinite(boxes).all(1)
            | (boxes[:, 2] < boxes[:, 0])
            | (boxes[:, 3] < boxes[:, 1])
        )
        if bool(bad.any()):
            i = int(flat["image"][int(bad.nonzero()[0])])
            check_boxes(fields[i][0], f"{name}[{i}]['boxes']")
    return dets, gts


# --------------------------------------------------------------------------- matching


def _outside(boxes: Tensor) -> Tensor:
    """``[A, N]`` bool: box area (w * h) outside each of the ``AREA_RANGES``."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return torch.stack([(area < lo) | (area > hi) for lo, hi in AREA_RANGES.values()])


def _crowd_overlap(dets: Tensor, crowds: Tensor) -> Tensor:
    """COCO's overlap of each detection with its paired crowd region: intersection / detection
    area. ``[P, 4]`` x ``[P, 4]`` xyxy (row i with row i) -> ``[P]``; 0 for an empty detection."""
    width = (torch.min(dets[:, 2], crowds[:, 2]) - torch.max(dets[:, 0], crowds[:, 0])).clamp(min=0)
    height = (torch.min(dets[:, 3], crowds[:, 3]) - torch.max(dets[:, 1], crowds[:, 1])).clamp(
        min=0
    )
    area = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    return torch.where(area > 0, width * height / area.clamp(min=1e-300), 0.0)


def _group_pairs(
    dets: dict[str, Tensor], gts: dict[str, Tensor]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Overlaps of every (detection, ground truth) pair of the same group.

    Both inputs are sorted by group. Returns, for the groups holding both detections and ground
    truths: their first detection and ground truth (indices into the sorted inputs), their
    counts ``D_b`` and ``G_b``, the offset of each group's ``D_b x G_b`` block in ``pairs``, and
    ``pairs``: the overlaps, group by group, row-major (detection, then ground truth). The
    overlap is the IoU, or for a crowd region intersection / detection area.
    """
    det_group, gt_group = dets["group"], gts["group"]
    det_ids, det_counts = det_group.unique_consecutive(return_counts=True)
    gt_ids, gt_counts = gt_group.unique_consecutive(return_counts=True)
    det_starts = torch.cumsum(det_counts, 0) - det_counts
    gt_starts = torch.cumsum(gt_counts, 0) - gt_counts
    where = torch.searchsorted(gt_ids, det_ids).clamp(max=max(len(gt_ids) - 1, 0))
    both = gt_ids[where] == det_ids if len(gt_ids) else torch.zeros(len(det_ids), dtype=torch.bool)
    det_starts, det_counts = det_starts[both], det_counts[both]
    gt_starts, gt_counts = gt_starts[where[both]], gt_counts[where[both]]
    sizes = det_counts * gt_counts
    offsets = torch.cumsum(sizes, 0) - sizes

    # One box_iou call per chunk of consecutive groups: the rows and columns between a chunk's
    # first and last group, about _PAIR_BUDGET pairs; pairs across groups are dropped.
    pieces = []
    det_begins, det_ends = det_starts.tolist(), (det_starts + det_counts).tolist()
    gt_begins, gt_ends = gt_starts.tolist(), (gt_starts + gt_counts).tolist()
    first = 0
    for b in range(len(det_ends)):
        last_of_chunk = b + 1 == len(det_ends) or (
            (det_ends[b + 1] - det_begins[first]) * (gt_ends[b + 1] - gt_begins[first])
            > _PAIR_BUDGET
        )
        if not last_of_chunk:
            continue
        d_rows = torch.arange(det_begins[first], det_ends[b])
        g_rows = torch.arange(gt_begins[first], gt_ends[b])
        i, j = (det_group[d_rows, None] == gt_group[None, g_rows]).nonzero(as_tuple=True)
        overlap = box_iou(dets["boxes"][d_rows], gts["boxes"][g_rows])[i, j]
        crowd = gts["crowd"][g_rows[j]]
        if bool(crowd.any()):
            overlap[crowd] = _crowd_overlap(
                dets["boxes"][d_rows[i[crowd]]], gts["boxes"][g_rows[j[crowd]]]
            )
        pieces.append(overlap)
        first = b + 1
    pairs = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.float64)
    return det_starts, gt_starts, det_counts, gt_counts, offsets, pairs


def _match_all(
    dets: dict[str, Tensor],
    gts: dict[str, Tensor],
    gt_ignore: Tensor,
    det_outside: Tensor,
    thresholds: Tensor,
) -> tuple[Tensor, Tensor]:
    """TP and FP flags ``[A, T, D]`` of the group-sorted detections, per area range and IoU
    threshold. ``gt_ignore`` ``[A, G]`` and ``det_outside`` ``[A, D]`` are the area-range flags."""
    num_areas, num_dets = det_outside.shape
    tp = torch.zeros(num_areas, len(thresholds), num_dets, dtype=torch.bool)
    # A detection of a group without ground truth is a false positive (if inside the area range).
    fp = (~det_outside)[:, None, :].expand_as(tp).clone()
    det_starts, gt_starts, det_counts, gt_counts, offsets, pairs = _group_pairs(dets, gts)
    # Groups of similar size are matched as one padded batch: sizes rounded up to powers of 2.
    size_class = _ceil_log2(det_counts) * 64 + _ceil_log2(gt_counts)
    for key in size_class.unique():
        chosen = size_class == key
        num_d, num_g, offset = det_counts[chosen], gt_counts[chosen], offsets[chosen]
        d = torch.arange(int(num_d.max()))
        g = torch.arange(int(num_g.max()))
        valid_d = d < num_d[:, None]  # [B, Dp]
        valid_g = g < num_g[:, None]  # [B, Gp]
        valid = valid_d[:, :, None] & valid_g[:, None, :]
        index = offset[:, None, None] + d[:, None] * num_g[:, None, None] + g
        ious = torch.where(valid, pairs[index.where(valid, 0)], -1.0)  # [B, Dp, Gp]
        det_rows = (det_starts[chosen][:, None] + d).where(valid_d, 0)
        gt_rows = (gt_starts[chosen][:, None] + g).where(valid_g, 0)
        tp_b, fp_b = match_detections(
            ious[:, None],
            thresholds,
            gt_ignore=gt_ignore[:, gt_rows].transpose(0, 1) | ~valid_g[:, None],  # [B, A, Gp]
            gt_crowd=(gts["crowd"][gt_rows] & valid_g)[:, None],
            det_ignore=det_outside[:, det_rows].transpose(0, 1),  # [B, A, Dp]
        )  # [B, A, T, Dp]
        rows = det_rows[valid_d]
        tp[:, :, rows] = tp_b.permute(1, 2, 0, 3)[:, :, valid_d]
        fp[:, :, rows] = fp_b.permute(1, 2, 0, 3)[:, :, valid_d]
    return tp, fp


def _ceil_log2(counts: Tensor) -> Tensor:
    return torch.ceil(torch.log2(counts.double())).long()


# --------------------------------------------------------------------------- accumulation


def _pr_curves(
    tp: Tensor, fp: Tensor, det_class: Tensor, num_gts: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Precision-recall curves of every class and threshold, kept at the true positives only.

    Args:
        tp, fp: ``[T, D]`` flags of detections sorted by class, then by descending score.
        det_class: ``[D]`` class index of each detection (non-decreasing).
        num_gts: ``[K]`` number of non-ignored ground truths per class.

    Returns:
        ``recall, precision``: ``[T, K, J]`` curves, padded with the last recall and precision 0
        (for :func:`average_precision`); and the final recall ``[T, K]``.

    The precision after a false positive or an ignored detection never beats the precision at
    the true positive before it, and recall only moves at true positives, so the envelope and
    all three AP rules see the same curve with only its true-positive points.
    """
    num_thresholds, num_classes = tp.shape[0], len(num_gts)
    # counts[:, i] = TPs (FPs) among the first i detections; class k holds detections
    # starts[k] to ends[k] - 1, so its own counts are differences with counts[:, starts[k]].
    zero = torch.zeros(num_thresholds, 1, dtype=torch.int64)
    tp_count = torch.cat((zero, tp.cumsum(-1)), dim=-1)
    fp_count = torch.cat((zero, fp.cumsum(-1)), dim=-1)
    ends = torch.bincount(det_class, minlength=num_classes).cumsum(0)
    starts = torch.cat((ends.new_zeros(1), ends[:-1]))
    tp_before, fp_before = tp_count[:, starts], fp_count[:, starts]  # [T, K]
    totals = tp_count[:, ends] - tp_before
    denominator = num_gts.clamp(min=1).double()
    final = totals / denominator
    length = int(totals.max()) if totals.numel() else 0
    recall = final[..., None].repeat(1, 1, length)
    precision = torch.zeros_like(recall)
    t, n = tp.nonzero(as_tuple=True)
    k = det_class[n]
    hits = tp_count[t, n + 1] - tp_before[t, k]  # this detection is the class's hits-th TP
    misses = fp_count[t, n + 1] - fp_before[t, k]
    recall[t, k, hits - 1] = hits.double() / denominator[k]
    precision[t, k, hits - 1] = hits.double() / (hits + misses).double()
    return recall, precision, final


def _mean(values: Tensor, dim: int | None = None) -> Tensor:
    """Mean of the entries > -1 (COCOeval's rule), -1 where there are none; float32."""
    valid = values > -1
    if dim is None:
        mean = values[valid].mean() if bool(valid.any()) else torch.tensor(-1.0)
    else:
        count = valid.sum(dim)
        mean = torch.where(count > 0, values.where(valid, 0).sum(dim) / count.clamp(min=1), -1.0)
    return mean.float()
