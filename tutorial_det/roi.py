"""Region-of-interest operations of Fast / Faster R-CNN.

RoI pooling
-----------
:func:`roi_pool` turns every region of interest (a box in image pixels) into a fixed-size
``[C, h, w]`` feature grid, so one fully connected head can classify regions of any size.
It has ``torchvision.ops.roi_pool``'s contract and returns exactly its numbers (and its
gradients); the tests check both. The Fast R-CNN recipe, with every rounding step explicit:

1. scale the box to the feature map and **round** each coordinate to a cell index
   (``x1 = round(x1 * spatial_scale)``, halves away from zero, as C's ``round``);
2. the RoI spans cells ``x1 .. x2`` inclusive: ``x2 - x1 + 1`` cells, at least 1 (a box whose
   corners round the wrong way round becomes a single cell). This "+1" is RoI pooling's own
   convention, unlike the boxes of the rest of the package;
3. split that span into ``w`` bins of ``span / w`` cells: bin ``j`` covers cells
   ``floor(j * span / w) .. ceil((j + 1) * span / w) - 1`` (neighbouring bins can share a cell),
   shifted by ``x1`` and clamped to the map; likewise in y;
4. each output value is the **max** over its bin; a bin that lies entirely off the map is 0.
   The gradient of a bin goes to its arg-max cell only (the first one in row-major order on a
   tie); cells that are no bin's maximum get none.

RoIAlign (``torchvision.ops.roi_align``, which the later lessons use) removes every
rounding step: the box is scaled but not rounded, each bin is an exact ``span / w`` sub-box,
and its value is the average (or max) of a few points sampled inside it by **bilinear
interpolation** of the four surrounding cells, so the output moves smoothly with the box and
the gradient reaches the coordinates' neighbourhood, not one cell. With ``aligned=True`` it
also subtracts half a pixel, so that a box coordinate x refers to the continuous position
x - 0.5 on the map (cell centres at 0.5, 1.5, ...): with ``aligned=False`` everything sits half
a cell off. The package does not reimplement it; lessons call torchvision's.

How :func:`roi_pool` is vectorised (no Python loop over RoIs or bins):

- each cell's value and position are packed into one int64 key, ``order(value) * 2**32 +
  (2**32 - 1 - cell)``: the largest key of any set of cells is its largest value at its first
  cell in row-major order, torchvision's arg-max; and since a key belongs to one cell, the max
  of several windows' maxima is the max of their union even where the windows overlap;
- a sparse table holds, for every cell, the largest key of the ``2**i`` x ``2**j`` window whose
  top-left corner it is (each level is the max of two windows of the level below);
- a bin of ``m`` x ``n`` cells (``2**i <= m < 2**(i+1)``, ``2**j <= n < 2**(j+1)``) is covered
  exactly by the four such windows anchored at its corners, so its max is the max of four table
  entries: four ``index_select`` calls for every bin of every RoI at once.

The output then gathers the features at each bin's arg-max cell, which also routes the
gradient to it. Channels and RoIs go in groups that keep each table and each group's keys
within ``CHUNK_ELEMENTS`` values.

The RoI head (Faster R-CNN's second stage)
-------------------------------------------
:func:`proposal_targets` picks, per image, the proposals the head learns from (the ground truths
added, 128 sampled with at most 25 % positives at IoU >= 0.5) with their classes and box targets
(weights 10, 10, 5, 5); :class:`RoIHead` pools them (:func:`roi_pool` or torchvision's RoIAlign)
and runs two fully connected layers with ReLUs into class logits and per-class box deltas;
:func:`roi_head_loss` is its cross entropy plus smooth L1 on the positives' own-class deltas,
both divided by the number of sampled RoIs (torchvision's ``fastrcnn_loss``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from tutorial_det.boxes import box_iou, check_boxes, encode_boxes
from tutorial_det.labelling import sample_labels
from tutorial_det.rpn import SMOOTH_L1_BETA

# --------------------------------------------------------------------------- RoI pooling

#: int64 keys in one sparse table or one group of results: bounds the working memory of
#: :func:`roi_pool` to a few times ``8 * CHUNK_ELEMENTS`` bytes (16 MB) plus its output.
CHUNK_ELEMENTS = 1 << 21

# torchvision starts each bin's max at -FLT_MAX and takes a value only when it is strictly
# greater, so NaN, -inf and -FLT_MAX itself are never a bin's maximum.
_FLT_MAX = torch.finfo(torch.float32).max


def roi_pool(
    features: Tensor,
    rois: Tensor | Sequence[Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
) -> Tensor:
    """Fast R-CNN RoI max pooling (``torchvision.ops.roi_pool``'s contract and numbers).

    Args:
        features: ``[B, C, H, W]`` float32 or float64 feature maps.
        rois: ``[K, 5]`` rows ``(batch index, x1, y1, x2, y2)`` in image pixels, or a list of
            ``B`` tensors ``[K_i, 4]`` xyxy (the RoIs of image ``i``), concatenated in order.
        output_size: ``h`` (square) or ``(h, w)``, the grid each RoI is pooled to.
        spatial_scale: feature cells per image pixel (1/16 for a stride-16 backbone).

    Returns:
        ``[K, C, h, w]`` in the dtype of ``features``, differentiable with respect to
        ``features`` (the gradient goes to each bin's arg-max).

    Raises:
        TypeError / ValueError: wrong shapes or dtypes, a batch index that is not an integer in
            ``[0, B)``, non-finite coordinates, ``output_size`` or ``spatial_scale`` not
            positive; messages name the argument and the offending RoI.
    """
    _check_features(features)
    batch, channels, height, width = features.shape
    out_h, out_w = _output_size(output_size)
    scale = torch.tensor(_spatial_scale(spatial_scale), dtype=features.dtype)
    rois = _rois_tensor(rois, batch, features)
    if features.numel() == 0:  # every bin is empty (or there are no channels)
        return features.new_zeros(len(rois), channels, out_h, out_w)

    rows = _bin_edges(rois[:, 2], rois[:, 4], out_h, scale, height)
    cols = _bin_edges(rois[:, 1], rois[:, 3], out_w, scale, width)
    with torch.no_grad():
        cell = _bin_argmax(features.detach(), rois[:, 0].long(), rows, cols)
    # index_select's backward adds each output's gradient to its cell, in output order: the
    # same additions, in the same order, as torchvision's backward kernel.
    picked = features.reshape(-1).index_select(0, cell.reshape(-1)).view(cell.shape)
    empty = (rows[1] <= rows[0])[:, None, :, None] | (cols[1] <= cols[0])[:, None, None, :]
    found = picked > -_FLT_MAX  # False: every cell of the bin is NaN, -inf or -FLT_MAX
    fill = torch.where(empty, 0.0, -_FLT_MAX).to(features.dtype)
    return torch.where(found & ~empty, picked, fill)


def _bin_argmax(
    features: Tensor, image: Tensor, rows: tuple[Tensor, Tensor], cols: tuple[Tensor, Tensor]
) -> Tensor:
    """Flat index into ``features.reshape(-1)`` of every bin's first maximum, ``[K, C, h, w]``
    int64. ``image`` is ``[K]``; ``rows`` and ``cols`` are the bins' clamped cell ranges
    ``[start, end)``, ``[K, h]`` and ``[K, w]`` each. Empty bins get an arbitrary valid index."""
    batch, channels, height, width = features.shape
    (row_start, row_end), (col_start, col_end) = rows, cols
    count, out_h = row_start.shape
    out_w = col_start.shape[1]
    device = features.device
    best = torch.empty(count, channels, out_h, out_w, dtype=torch.long, device=device)
    if count == 0:
        return best
    # Each bin as first cell and length along each axis; an empty bin becomes one valid cell.
    row_first, row_len = row_start.clamp(max=height - 1), (row_end - row_start).clamp(min=1)
    col_first, col_len = col_start.clamp(max=width - 1), (col_end - col_start).clamp(min=1)
    row_levels, col_levels = int(row_len.max()).bit_length(), int(col_len.max()).bit_length()
    # Channels in groups and RoIs in chunks, so that a table and a chunk's keys each hold at
    # most about CHUNK_ELEMENTS values.
    group = max(1, CHUNK_ELEMENTS // (row_levels * col_levels * height * width))
    chunk = max(1, CHUNK_ELEMENTS // (out_h * out_w * group))
    for b in range(batch):
        rois = (image == b).nonzero().flatten()
        if not len(rois):
            continue
        windows = _covering_windows(
            (row_first[rois], row_len[rois]),
            (col_first[rois], col_len[rois]),
            (row_levels, col_levels),
            (height, width),
        )
        for c0 in range(0, channels, group):
            c1 = min(c0 + group, channels)
            table = _window_table(_keys(features[b, c0:c1]), row_levels, col_levels)
            plane = (b * channels + torch.arange(c0, c1, device=device)) * (height * width)
            for k0 in range(0, len(rois), chunk):
                k1 = min(k0 + chunk, len(rois))
                key = table.index_select(0, windows[0][k0:k1].reshape(-1))
                for window in windows[1:]:
                    torch.maximum(key, table.index_select(0, window[k0:k1].reshape(-1)), out=key)
                cell = (2**32 - 1) - (key & (2**32 - 1))  # the cell the key carries
                cell = cell.view(k1 - k0, out_h, out_w, c1 - c0) + plane
                best[rois[k0:k1], c0:c1] = cell.permute(0, 3, 1, 2)
    return best


def _covering_windows(
    rows: tuple[Tensor, Tensor],
    cols: tuple[Tensor, Tensor],
    levels: tuple[int, int],
    size: tuple[int, int],
) -> list[Tensor]:
    """The four windows of :func:`_window_table` that together cover each bin exactly, as rows
    of the flattened table: four ``[K, h, w]`` int64 tensors.

    ``rows`` and ``cols`` are the bins' first cells and lengths (``[K, h]`` and ``[K, w]``),
    ``levels`` the table's ``(row levels, column levels)``, ``size`` the map's ``(H, W)``. A run of ``n`` cells (``2**j <= n <
    2**(j + 1)``) is covered by the two windows of ``2**j`` cells that start at its first cell
    and end at its last; a bin by the four combinations of its row and column runs."""

    def ends(first: Tensor, length: Tensor, n_levels: int) -> tuple[Tensor, Tensor, Tensor]:
        level = torch.zeros_like(length)  # floor(log2(length)), for lengths < 2**n_levels
        for j in range(1, n_levels):
            level += length >= 2**j
        return level, first, first + length - 2**level

    row_level, top, bottom = ends(*rows, levels[0])
    col_level, left, right = ends(*cols, levels[1])
    height, width = size
    level = row_level[:, :, None] * levels[1] + col_level[:, None, :]
    return [
        (level * height + y[:, :, None]) * width + x[:, None, :]
        for y in (top, bottom)
        for x in (left, right)
    ]


def _window_table(keys: Tensor, row_levels: int, col_levels: int) -> Tensor:
    """A two-dimensional sparse table of ``[H, W, C]`` keys: entry ``(i, j, y, x)`` is the max
    over the ``2**i`` x ``2**j`` window whose top-left cell is ``(y, x)``. Returned flattened to
    rows of ``C`` keys, ``[row_levels * col_levels * H * W, C]``. Each level is the max of two
    windows of the level below, side by side (wider) or one above the other (taller); windows
    that would run off the map are never looked up and just copy the level below."""
    height, width, channels = keys.shape
    table = keys.new_empty(row_levels, col_levels, height, width, channels)
    table[0, 0] = keys
    for j in range(1, col_levels):
        half, narrow = 2 ** (j - 1), table[0, j - 1]
        table[0, j, :, width - half :] = narrow[:, width - half :]
        torch.maximum(
            narrow[:, : width - half], narrow[:, half:], out=table[0, j, :, : width - half]
        )
    for i in range(1, row_levels):
        half, short = 2 ** (i - 1), table[i - 1]
        table[i, :, height - half :] = short[:, height - half :]
        torch.maximum(short[:, : height - half], short[:, half:], out=table[i, :, : height - half])
    return table.view(-1, channels)


def _keys(x: Tensor) -> Tensor:
    """``[C, H, W]`` values -> ``[H, W, C]`` int64 keys whose max is the max value and, among
    equal values, the first cell in row-major order: ``order(value) * 2**32 + (2**32 - 1 -
    cell)``, ``cell = row * W + col``.

    ``order`` is an integer code that sorts like the values, with NaN made -inf (torchvision
    never picks NaN) and 0.0 and -0.0 equal. For float32 it is the bit pattern read as an
    integer, negated (sign-magnitude to two's complement) for negative numbers; for float64,
    whose bit pattern leaves no room, it is the rank among the map's values."""
    x = torch.nan_to_num(x, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    x = x.permute(1, 2, 0).contiguous()
    if x.dtype == torch.float32:
        bits = x.view(torch.int32)
        order = torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits).long()
    else:
        order = torch.unique(torch.where(x == 0, 0.0, x), return_inverse=True)[1]
    height, width, _ = x.shape
    cell = torch.arange(height * width, device=x.device).view(height, width, 1)
    return (order << 32) | ((2**32 - 1) - cell)


def _bin_edges(
    low: Tensor, high: Tensor, bins: int, scale: Tensor, size: int
) -> tuple[Tensor, Tensor]:
    """Cell ranges ``[start, end)`` (two ``[K, bins]`` int64 tensors, clamped to ``[0, size]``)
    of the bins of RoIs from ``low`` to ``high`` (image pixels, ``[K]``) along one axis.

    All arithmetic is in the RoIs' dtype, as torchvision's kernel does it, so that floor and
    ceil see exactly the same values."""
    first = _round_half_away(low * scale)
    last = _round_half_away(high * scale)
    span = (last - first + 1).clamp(min=1)
    bin_size = span.to(low.dtype) / bins
    steps = torch.arange(bins + 1, device=low.device).to(low.dtype)
    edges = steps * bin_size[:, None]  # [K, bins + 1]
    start = torch.floor(edges[:, :-1]).long() + first[:, None]
    end = torch.ceil(edges[:, 1:]).long() + first[:, None]
    return start.clamp(0, size), end.clamp(0, size)


def _round_half_away(values: Tensor) -> Tensor:
    """C's ``round``: to the nearest integer, halves away from zero (``torch.round`` rounds
    halves to even), as int64. ``values - trunc(values)`` is exact, so no value is misrounded."""
    whole = torch.trunc(values)
    up = (values - whole).abs() >= 0.5
    return (whole + torch.where(up, torch.sign(values), 0)).long()


def _check_features(features: Tensor) -> None:
    if not isinstance(features, Tensor):
        raise TypeError(
            f"features must be a torch.Tensor [B, C, H, W], got {type(features).__name__}"
        )
    if features.ndim != 4:
        raise ValueError(f"features must have shape [B, C, H, W], got {list(features.shape)}")
    if features.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"features must be float32 or float64, got {features.dtype}")


def _output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    size = (output_size, output_size) if isinstance(output_size, numbers.Integral) else output_size
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"output_size must be an int or (h, w), got {output_size!r}") from None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"output_size must be positive integers (h, w), got {output_size!r}")
    return int(height), int(width)


def _spatial_scale(spatial_scale: float) -> float:
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, numbers.Real):
        raise TypeError(f"spatial_scale must be a number, got {type(spatial_scale).__name__}")
    if not 0 < float(spatial_scale) < float("inf"):
        raise ValueError(f"spatial_scale must be positive and finite, got {spatial_scale}")
    return float(spatial_scale)


def _rois_tensor(rois: Tensor | Sequence[Tensor], batch: int, features: Tensor) -> Tensor:
    """Validate ``rois`` and return them as ``[K, 5]`` in the dtype and device of ``features``."""
    if isinstance(rois, (list, tuple)):
        if len(rois) != batch:
            raise ValueError(
                f"rois as a list must hold one [K_i, 4] tensor per image: {batch} images, "
                f"got {len(rois)} tensors"
            )
        parts = []
        for i, boxes in enumerate(rois):
            boxes = check_boxes(boxes, f"rois[{i}]", ordered=False).to(features)
            parts.append(torch.cat((boxes.new_full((len(boxes), 1), i), boxes), dim=1))
        return torch.cat(parts) if parts else features.new_zeros(0, 5)
    if not isinstance(rois, Tensor):
        raise TypeError(
            f"rois must be a [K, 5] tensor or a list of [K_i, 4] tensors, got {type(rois).__name__}"
        )
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(
            f"rois must have shape [K, 5] (batch index, x1, y1, x2, y2), got {list(rois.shape)}"
        )
    rois = rois.to(features)
    check_boxes(rois[:, 1:], "rois[:, 1:]", ordered=False)
    index = rois[:, 0]
    bad = (index != torch.floor(index)) | (index < 0) | (index >= batch)
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise ValueError(
            f"rois[{k}] has batch index {index[k].item()}; it must be an integer in [0, {batch})"
        )
    return rois


# --------------------------------------------------------------------------- the RoI head
#
# Faster R-CNN's second stage, for each image: pick a mini-batch of proposals to learn from and
# give each its class and box targets (:func:`proposal_targets`); pool every proposal's features
# to a fixed grid, run them through fully connected layers and predict class logits and one set
# of box deltas per class (:class:`RoIHead`); compare the two (:func:`roi_head_loss`).

#: The RoI head's box-coding weights (wx, wy, ww, wh): its targets are small (a proposal is
#: already near its object), so they are scaled up to roughly unit variance (Fast R-CNN).
ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)

POOLINGS = ("align", "pool")


def proposal_targets(
    proposals: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    *,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    fg_thresh: float = 0.5,
    bg_thresh_lo: float = 0.0,
    add_ground_truth: bool = True,
    weights: Sequence[float] = ROI_BOX_WEIGHTS,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The RoIs one image trains the RoI head on, with their class and box targets.

    1. The ground-truth boxes join the proposals (``add_ground_truth``): early in training the
       proposals are poor, and the ground truths are perfect positives.
    2. Each candidate takes the ground truth it overlaps most. IoU >= ``fg_thresh`` makes it
       positive (class of that ground truth), ``bg_thresh_lo <= IoU < fg_thresh`` negative
       (class 0, background), anything else is left out.
    3. :func:`tutorial_det.labelling.sample_labels` keeps ``batch_size`` of them with at most
       ``positive_fraction`` positives (Fast R-CNN's 128 per image, 25 %: at most 32 positives,
       the rest filled with negatives).
    4. Positives get regression targets ``encode_boxes(gt, roi, weights)``; negatives zeros.

    Args:
        proposals: ``[P, 4]`` xyxy (may hold degenerate boxes: they overlap nothing).
        gt_boxes: ``[G, 4]`` xyxy; ``G`` may be 0, then every candidate is background.
        gt_labels: ``[G]`` int64 classes, 1 or more (0 is the background).
        generator: a CPU ``torch.Generator`` for the sampling (default: torch's global one).

    Returns:
        ``rois [S, 4]`` (positives first), ``labels [S]`` int64 (0 for negatives),
        ``target_deltas [S, 4]`` (zeros for negatives), ``S <= batch_size``.
    """
    proposals = check_boxes(proposals, "proposals")
    gt_boxes = check_boxes(gt_boxes, "gt_boxes").to(proposals)
    if not isinstance(gt_labels, Tensor) or gt_labels.shape != gt_boxes.shape[:1]:
        raise ValueError(
            f"gt_labels must be a [G] = [{len(gt_boxes)}] tensor (one class per box), got "
            f"{list(gt_labels.shape) if isinstance(gt_labels, Tensor) else type(gt_labels)}"
        )
    if gt_labels.is_floating_point() or (len(gt_labels) and int(gt_labels.min()) < 1):
        raise ValueError(
            f"gt_labels must be integer classes >= 1 (0 is the background), got {gt_labels.tolist()}"
        )
    if not 0 <= bg_thresh_lo <= fg_thresh <= 1:
        raise ValueError(
            f"need 0 <= bg_thresh_lo <= fg_thresh <= 1, got {bg_thresh_lo}, {fg_thresh}"
        )
    candidates = torch.cat((proposals, gt_boxes)) if add_ground_truth else proposals
    if len(gt_boxes):
        best_iou, matched = box_iou(candidates, gt_boxes).max(dim=1)
    else:
        best_iou = candidates.new_zeros(len(candidates))
        matched = torch.zeros(len(candidates), dtype=torch.int64, device=candidates.device)
    labels = torch.full((len(candidates),), -1, dtype=torch.int64, device=candidates.device)
    labels[(best_iou >= bg_thresh_lo) & (best_iou < fg_thresh)] = 0
    labels[best_iou >= fg_thresh] = 1
    sampled = sample_labels(labels, batch_size, positive_fraction, generator)
    positive = torch.where(sampled == 1)[0]
    keep = torch.cat((positive, torch.where(sampled == 0)[0]))
    rois = candidates[keep]
    classes = torch.zeros(len(keep), dtype=torch.int64, device=candidates.device)
    deltas = torch.zeros_like(rois)
    if len(positive):
        gt = matched[positive]
        classes[: len(positive)] = gt_labels.to(classes.device)[gt]
        # a positive overlaps its ground truth (IoU >= fg_thresh > 0): both have positive sizes
        deltas[: len(positive)] = encode_boxes(gt_boxes[gt], candidates[positive], weights)
    return rois, classes, deltas


class RoIHead(nn.Module):
    """Classify pooled proposals and refine their boxes, one box per class.

    ``pool`` (RoI max pooling, :func:`roi_pool`, or torchvision's ``roi_align`` with
    ``aligned=True`` and ``sampling_ratio`` points per bin side) turns every RoI into a
    ``[C, s, s]`` grid; two fully connected layers **each followed by a ReLU** make a
    ``representation_size`` vector (without the ReLUs the two layers would multiply into a single
    linear map); then ``cls_score`` gives ``num_classes`` logits (background included) and
    ``bbox_pred`` ``num_classes x 4`` deltas (weights :data:`ROI_BOX_WEIGHTS`).

    The two output layers keep PyTorch's default ``nn.Linear`` initialisation (uniform within
    ``1 / sqrt(fan_in)``, as torchvision's ``FastRCNNPredictor``). ``paper_init=True`` draws them
    from N(0, 0.01) and N(0, 0.001) with zero biases instead (the Fast R-CNN paper): the head
    then starts from uniform class probabilities and zero deltas, but its tiny weights also scale
    down every gradient the two losses send back into ``fc6``, ``fc7`` and the backbone, and on the
    synthetic shapes with AdamW the detector learns slower (in a three-minute run of
    ``benchmarks/train_faster_rcnn.py --paper-init`` it reached mAP@0.5 = 0.9 about 70 steps
    later and ended 0.01 lower).

    ``forward(features [N, C, H, W], rois)`` with ``rois`` a list of ``N`` ``[K_i, 4]`` xyxy
    tensors in image pixels returns ``class_logits [K, num_classes]`` and
    ``box_deltas [K, num_classes, 4]``, ``K = sum K_i``, RoIs in the order given.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        pooling: str = "align",
        output_size: int = 7,
        spatial_scale: float = 1 / 16,
        sampling_ratio: int = 2,
        representation_size: int = 256,
        paper_init: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(
                f"num_classes counts the background, so it must be an int >= 2, got {num_classes!r}"
            )
        self.pooling = pooling
        self.output_size = _output_size(output_size)
        self.spatial_scale = _spatial_scale(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.num_classes = num_classes
        inputs = in_channels * self.output_size[0] * self.output_size[1]
        self.fc6 = nn.Linear(inputs, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        self.cls_score = nn.Linear(representation_size, num_classes)
        self.bbox_pred = nn.Linear(representation_size, num_classes * 4)
        if paper_init:
            nn.init.normal_(self.cls_score.weight, std=0.01)
            nn.init.normal_(self.bbox_pred.weight, std=0.001)
            nn.init.zeros_(self.cls_score.bias)
            nn.init.zeros_(self.bbox_pred.bias)

    def pool(self, features: Tensor, rois: Sequence[Tensor]) -> Tensor:
        """``[K, C, s, s]`` pooled features of every RoI (images in order)."""
        if self.pooling == "pool":
            return roi_pool(features, list(rois), self.output_size, self.spatial_scale)
        return torchvision.ops.roi_align(
            features,
            [r.to(features.dtype) for r in rois],
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            aligned=True,
        )

    def forward(self, features: Tensor, rois: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        x = self.pool(features, rois).flatten(1)
        x = F.relu(self.fc6(x))
        x = F.relu(self.fc7(x))
        deltas = self.bbox_pred(x).reshape(len(x), self.num_classes, 4)
        return self.cls_score(x), deltas


def roi_head_loss(
    class_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    target_deltas: Tensor,
    beta: float = SMOOTH_L1_BETA,
) -> tuple[Tensor, Tensor]:
    """The RoI head's two loss terms over the sampled RoIs of a batch.

    ::

        classifier = mean over the S sampled RoIs of CE(class_logits, label)
        box        = sum over positive RoIs of smoothL1(deltas[label] - target) / S

    Only the deltas of a positive RoI's **own class** are compared with its target (the other
    classes' deltas get no gradient from it); negatives have no box loss. Both terms are divided
    by ``S``, the number of sampled RoIs (positives and negatives), as torchvision's
    ``fastrcnn_loss`` does: positives and negatives come from the same sample, so this is the
    RoI head's own count, not the RPN's.

    Args:
        class_logits: ``[S, C]``.
        box_deltas: ``[S, C, 4]`` (per-class deltas).
        labels: ``[S]`` int64 classes in ``[0, C)``, 0 = background.
        target_deltas: ``[S, 4]`` (read only for positives).
        beta: smooth L1's transition point.

    Returns:
        ``(classifier_loss, box_loss)``; both 0 (connected to the graph) when ``S = 0``.
    """
    if class_logits.ndim != 2:
        raise ValueError(f"class_logits must be [S, C], got {list(class_logits.shape)}")
    num, classes = class_logits.shape
    if box_deltas.shape != (num, classes, 4) or target_deltas.shape != (num, 4):
        raise ValueError(
            f"box_deltas {list(box_deltas.shape)} and target_deltas {list(target_deltas.shape)} "
            f"must be {[num, classes, 4]} and {[num, 4]}"
        )
    if labels.shape != (num,) or labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64 [{num}], got {labels.dtype} {list(labels.shape)}")
    bad = (labels < 0) | (labels >= classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"labels[{i}] = {int(labels[i])} is not a class in [0, {classes})")
    if num == 0:
        zero = class_logits.sum() * 0 + box_deltas.sum() * 0
        return zero, zero.clone()
    classifier = F.cross_entropy(class_logits, labels)
    positive = torch.where(labels > 0)[0]
    box = F.smooth_l1_loss(
        box_deltas[positive, labels[positive]],
        target_deltas[positive].to(box_deltas.dtype),
        beta=beta,
        reduction="sum",
    )
    return classifier, box / num
