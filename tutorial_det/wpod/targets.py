"""WPOD-Net's training targets: which output cells hold a plate, and its corners in their frames.

Lesson 08 (WPOD-Net) teaches it.

The network's output grid has one cell per ``stride x stride`` pixels (stride 16). Cell
``(i, j)`` (row, column) is centred on pixel ``((j + 0.5) * stride, (i + 0.5) * stride)``, as
the anchors of the other lessons are. For an object cell the target holds the plate's four
corners ``p_k`` (pixels) in the cell's own frame::

    A_ij(p) = (p / stride - (j + 0.5, i + 0.5)) / alpha

that is, relative to the cell centre, in output-cell units, divided by ``alpha``. ``alpha`` is the
side, in cells, of the "fictional square" the network warps: the paper sets it to the mid-point of
the smallest and largest plate sizes of its augmented training data divided by the stride,
``((208 + 40) / 2) / 16 = 7.75`` (:data:`PAPER_ALPHA`); :func:`alpha_for_sizes` does the same for
other data. The paper centres the frame on ``(j, i)``; the ``+ 0.5`` here only moves the origin to
the cell's centre, consistently in encoding and decoding.

Positive cells (our reading of the paper's rule, whose wording we could not check word for word):
a cell holds a plate when the plate's bounding box has IoU greater than ``pos_thresh`` (the
paper's gamma_obj, 0.3) with a box of the same size centred on the cell's centre. Thin plates (a
9-pixel-tall plate at stride 16) can fail this test at every cell, so the cell containing the
centre of the plate's bounding box is always positive too, a documented addition of ours. A cell claimed by two plates
goes to the one with the larger IoU (the centre rule counting as above any IoU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tutorial_det.boxes import box_iou
from tutorial_det.wpod.geometry import check_quads
from tutorial_det.wpod.network import STRIDE

#: The paper's alpha: ((208 + 40) / 2) / 16, plates 40 to 208 pixels wide, stride 16.
PAPER_ALPHA = 7.75

#: Positive-cell IoU threshold: the paper's gamma_obj.
POS_THRESH = 0.3


def alpha_for_sizes(smallest: float, largest: float, stride: int = STRIDE) -> float:
    """The paper's rule for alpha: the mid-point of the smallest and largest plate sizes (in
    pixels) seen in training, divided by the network's stride.

    ``alpha_for_sizes(40, 208) == 7.75``; ``PlatesDataset``'s default plate widths (32 to 104
    pixels in 128-pixel images) give :data:`PLATES_ALPHA` = 4.25.
    """
    if not 0 < smallest <= largest:
        raise ValueError(
            f"need 0 < smallest <= largest, got smallest={smallest}, largest={largest}"
        )
    if not (isinstance(stride, int) and stride > 0):
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    return (smallest + largest) / 2 / stride


#: alpha for ``PlatesDataset``'s default plates (32 to 104 pixels wide): ((32 + 104) / 2) / 16.
PLATES_ALPHA = alpha_for_sizes(32.0, 104.0)


def cell_centres(grid_size: Sequence[int], device=None) -> Tensor:
    """Centres ``[H, W, 2]`` of the output cells, ``(j + 0.5, i + 0.5)``, in cell units."""
    height, width = grid_size
    ys = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1)


def positive_cells(
    corners: Tensor,
    grid_size: Sequence[int],
    stride: int = STRIDE,
    pos_thresh: float = POS_THRESH,
) -> Tensor:
    """Which plate each output cell holds: ``[H, W]`` int64, the plate index or -1 for none.

    Args:
        corners: ``[N, 4, 2]`` plate corners of one image, in pixels.
        grid_size: ``(H, W)`` of the output grid.
        stride: pixels per cell.
        pos_thresh: IoU threshold of the positive-cell rule (see the module docstring).
    """
    corners = check_quads(corners, "corners")
    height, width = grid_size
    owner = torch.full((height, width), -1, dtype=torch.int64, device=corners.device)
    if len(corners) == 0:
        return owner
    lo, hi = corners.amin(dim=1), corners.amax(dim=1)  # [N, 2]
    boxes = torch.cat((lo, hi), dim=1)
    half = (hi - lo) / 2
    centres = cell_centres(grid_size, corners.device).reshape(-1, 2) * stride  # [HW, 2] pixels
    score = torch.stack(
        [
            box_iou(boxes[k : k + 1], torch.cat((centres - half[k], centres + half[k]), dim=1))[0]
            for k in range(len(corners))
        ]
    )  # [N, HW]
    centre = ((lo + hi) / 2 / stride).floor().long()
    col = centre[:, 0].clamp(0, width - 1)
    row = centre[:, 1].clamp(0, height - 1)
    plates = torch.arange(len(corners), device=corners.device)
    score[plates, row * width + col] += 1.0  # above any IoU: the centre cell always counts
    best, index = score.max(dim=0)
    owner.view(-1)[best > pos_thresh] = index[best > pos_thresh]
    return owner


def encode_targets(
    corners: Sequence[Tensor],
    grid_size: Sequence[int],
    alpha: float = PLATES_ALPHA,
    stride: int = STRIDE,
    pos_thresh: float = POS_THRESH,
) -> Tensor:
    """The loss's target ``[B, 9, H, W]`` for a batch of images.

    Args:
        corners: one ``[N_b, 4, 2]`` tensor of plate corners (pixels; top-left, top-right,
            bottom-right, bottom-left) per image; ``N_b`` may be 0.
        grid_size: ``(H, W)`` of the network's output for these images.
        alpha, stride, pos_thresh: see the module docstring.

    Returns:
        Channel 0: 1 on object cells, else 0. Channels 1-8: ``x1, y1, x2, y2, x3, y3, x4, y4``,
        the plate's corners in the cell's frame (:func:`to_cell_frame`) on object cells, 0
        elsewhere.
    """
    if not isinstance(corners, Sequence) or isinstance(corners, Tensor):
        raise TypeError("corners must be a list with one [N, 4, 2] tensor per image")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    height, width = grid_size
    device = corners[0].device if len(corners) else None
    target = torch.zeros((len(corners), 9, height, width), device=device)
    for b, quads in enumerate(corners):
        quads = check_quads(quads, f"corners[{b}]")
        owner = positive_cells(quads, grid_size, stride, pos_thresh)
        rows, cols = (owner >= 0).nonzero(as_tuple=True)
        if len(rows) == 0:
            continue
        local = to_cell_frame(quads[owner[rows, cols]], rows, cols, alpha, stride)  # [P, 4, 2]
        target[b, 0, rows, cols] = 1.0
        target[b, 1:, rows, cols] = local.reshape(-1, 8).T.to(target)  # [P, 4, 2] -> [8, P]
    return target


def to_cell_frame(points: Tensor, rows: Tensor, cols: Tensor, alpha: float, stride: int) -> Tensor:
    """Pixels -> the frame of cell ``(rows[k], cols[k])``: ``points [K, ..., 2]`` -> same shape."""
    centre = torch.stack((cols, rows), dim=-1).to(points) + 0.5
    centre = centre.reshape(len(centre), *([1] * (points.ndim - 2)), 2)
    return (points / stride - centre) / alpha


def from_cell_frame(
    points: Tensor, rows: Tensor, cols: Tensor, alpha: float, stride: int
) -> Tensor:
    """The inverse of :func:`to_cell_frame`: cell-frame points ``[K, ..., 2]`` -> pixels."""
    centre = torch.stack((cols, rows), dim=-1).to(points) + 0.5
    centre = centre.reshape(len(centre), *([1] * (points.ndim - 2)), 2)
    return (points * alpha + centre) * stride
