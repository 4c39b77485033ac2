"""Plate geometry: the affine-warped unit square, homographies, rectification, quadrilateral IoU.

Lesson 08 (WPOD-Net) teaches it.

A plate is a quadrilateral ``[4, 2]`` of ``(x, y)`` corners in the order top-left, top-right,
bottom-right, bottom-left *of the plate as it reads* (``PlatesDataset``'s ``"corners"``), in
continuous pixel coordinates (pixel column ``c`` spans ``[c, c + 1]``, as for boxes). ``N`` plates
are ``[N, 4, 2]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tutorial_det.geometry import homography

#: Corners ``[4, 2]`` of WPOD-Net's canonical unit square, centred on the origin, in the order
#: top-left, top-right, bottom-right, bottom-left (y grows downwards, as in images).
UNIT_SQUARE = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])


def check_quads(quads: Tensor, name: str = "quads") -> Tensor:
    """Validate ``[N, 4, 2]`` quadrilaterals and return them as floating point.

    Raises:
        TypeError: ``quads`` is not a tensor.
        ValueError: wrong shape, or a NaN / infinite corner (the message names the first one).
    """
    if not isinstance(quads, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [N, 4, 2], got {type(quads).__name__}"
        )
    if quads.ndim != 3 or tuple(quads.shape[1:]) != (4, 2):
        raise ValueError(f"{name} must have shape [N, 4, 2], got {list(quads.shape)}")
    if not quads.is_floating_point():
        quads = quads.float()
    finite = torch.isfinite(quads).flatten(1).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise ValueError(f"{name}[{i}] = {quads[i].tolist()} is not finite")
    return quads


def warp_unit_square(affine: Tensor) -> Tensor:
    """The unit square's corners moved by WPOD-Net's local affine maps: ``[..., 6] -> [..., 4, 2]``.

    ``affine`` holds the six values ``(a, b, tx, c, d, ty)`` of the 2 x 3 matrix
    ``[[max(a, 0), b, tx], [c, max(d, 0), ty]]`` (row-major). The diagonal terms are clamped at 0,
    as in the paper, so that the map cannot mirror the square along either axis on its own. Corner
    ``k`` of the result is ``A @ (q_k, 1)`` for the :data:`UNIT_SQUARE` corner ``q_k``; the
    order stays top-left, top-right, bottom-right, bottom-left.
    """
    if not isinstance(affine, Tensor) or affine.ndim < 1 or affine.shape[-1] != 6:
        shape = list(affine.shape) if isinstance(affine, Tensor) else type(affine).__name__
        raise ValueError(f"affine must be a tensor of shape [..., 6], got {shape}")
    a, b, tx, c, d, ty = affine.unbind(-1)
    q = UNIT_SQUARE.to(affine)
    qx, qy = q[:, 0], q[:, 1]  # [4]
    x = a.clamp(min=0)[..., None] * qx + b[..., None] * qy + tx[..., None]
    y = c[..., None] * qx + d.clamp(min=0)[..., None] * qy + ty[..., None]
    return torch.stack((x, y), dim=-1)


def rectify(image: Tensor, corners: Tensor, size: Sequence[int] = (32, 96)) -> Tensor:
    """Warp each plate of ``image`` to a frontal ``size = (h, w)`` picture (bilinear).

    Args:
        image: ``[C, H, W]`` float tensor.
        corners: ``[N, 4, 2]`` plate corners (top-left, top-right, bottom-right, bottom-left) in
            continuous pixel coordinates; any quadrilateral without three collinear corners.
        size: ``(height, width)`` of each rectified plate.

    Returns:
        ``[N, C, h, w]``: output pixel ``(r, c)`` shows the image at ``H @ (c + 0.5, r + 0.5, 1)``,
        where ``H`` maps the output rectangle's corners ``(0, 0), (w, 0), (w, h), (0, h)`` onto the
        plate's. Points outside the image read as 0. No plates give ``[0, C, h, w]``.
    """
    if not isinstance(image, Tensor) or image.ndim != 3 or not image.is_floating_point():
        shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a float tensor of shape [C, H, W], got {shape}")
    corners = check_quads(corners, "corners").to(image)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
    out_h, out_w = size
    channels, height, width = image.shape
    n = len(corners)
    if n == 0:
        return image.new_zeros((0, channels, out_h, out_w))
    rectangle = torch.tensor(
        [[0.0, 0.0], [out_w, 0.0], [out_w, out_h], [0.0, out_h]], dtype=image.dtype
    ).to(image.device)
    h = homography(rectangle.expand(n, 4, 2), corners)  # [N, 3, 3]
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=image.dtype, device=image.device) + 0.5,
        torch.arange(out_w, dtype=image.dtype, device=image.device) + 0.5,
        indexing="ij",
    )
    points = torch.stack((xs, ys, torch.ones_like(xs)), dim=-1).reshape(-1, 3)  # [h*w, 3]
    mapped = points @ h.transpose(1, 2)  # [N, h*w, 3]
    xy = mapped[..., :2] / mapped[..., 2:]
    # grid_sample with align_corners=False: -1 and 1 are the outer edges of the image.
    scale = torch.tensor([2.0 / width, 2.0 / height], dtype=image.dtype, device=image.device)
    grid = (xy * scale - 1).reshape(n, out_h, out_w, 2)
    return F.grid_sample(
        image.expand(n, channels, height, width), grid, mode="bilinear", align_corners=False
    )


def _signed_area(points: Tensor, count: Tensor) -> Tensor:
    """Shoelace signed area of padded polygons: ``points [P, K, 2]``, the first ``count [P]``
    valid -> ``[P]`` (positive when the vertices turn from +x towards +y)."""
    k = points.shape[1]
    index = torch.arange(k, device=points.device)
    nxt = (index + 1) % count.clamp(min=1)[:, None]  # [P, K]
    following = points.gather(1, nxt[..., None].expand(-1, -1, 2))
    cross = points[..., 0] * following[..., 1] - points[..., 1] * following[..., 0]
    valid = index < count[:, None]
    return 0.5 * torch.where(valid, cross, torch.zeros_like(cross)).sum(dim=1)


def _clip_convex(subject: Tensor, count: Tensor, clip: Tensor) -> tuple[Tensor, Tensor]:
    """Sutherland–Hodgman: each padded polygon ``subject [P, K, 2]`` (first ``count`` vertices
    valid) clipped by the convex quadrilateral ``clip [P, 4, 2]`` of the same row.

    Each of the clip's four edges in turn keeps the part of the polygon on the inside of the
    edge's line: walking the polygon's edges ``cur -> nxt``, an edge that crosses the line emits
    the crossing point, and an edge whose end ``nxt`` is inside emits ``nxt``. Every polygon is
    done at once: the (up to two) points emitted per edge go into a ``[P, 2K]`` buffer that is
    then compacted, valid points first, keeping their order.
    """
    orientation = torch.sign(_signed_area(clip, torch.full_like(count, 4)))  # [P]
    for e in range(4):
        start, end = clip[:, e], clip[:, (e + 1) % 4]  # [P, 2]
        k = subject.shape[1]
        index = torch.arange(k, device=subject.device)
        valid = index < count[:, None]
        nxt_index = (index + 1) % count.clamp(min=1)[:, None]
        nxt = subject.gather(1, nxt_index[..., None].expand(-1, -1, 2))
        edge = (end - start)[:, None]  # [P, 1, 2]

        def side(p, start=start, edge=edge):
            rel = p - start[:, None]
            return orientation[:, None] * (edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0])

        d_cur, d_nxt = side(subject), side(nxt)  # [P, K]; >= 0 is inside
        in_cur, in_nxt = d_cur >= 0, d_nxt >= 0
        crossing = valid & (in_cur != in_nxt)
        t = (d_cur / torch.where(crossing, d_cur - d_nxt, torch.ones_like(d_cur)))[..., None]
        cut = subject + t * (nxt - subject)
        emitted = torch.stack((cut, nxt), dim=2).reshape(len(subject), 2 * k, 2)
        keep = torch.stack((crossing, valid & in_nxt), dim=2).reshape(len(subject), 2 * k)
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
        subject = emitted.gather(1, order[..., None].expand(-1, -1, 2))
        count = keep.sum(dim=1)
        subject = subject[:, : max(int(count.max()) if len(count) else 0, 1)]
    return subject, count


def _is_convex(quads: Tensor) -> Tensor:
    """``[N]`` bool: each quadrilateral ``[N, 4, 2]`` turns the same way at every corner (a
    degenerate corner, turning by 0, is allowed)."""
    edges = quads.roll(-1, dims=1) - quads
    turns = (
        edges[..., 0] * edges.roll(-1, dims=1)[..., 1]
        - edges[..., 1] * edges.roll(-1, dims=1)[..., 0]
    )
    extent = (quads.amax(dim=1) - quads.amin(dim=1)).amax(dim=1)
    tol = 1e-6 * extent**2
    return (turns >= -tol[:, None]).all(dim=1) | (turns <= tol[:, None]).all(dim=1)


def quad_area(quads: Tensor) -> Tensor:
    """Areas ``[N]`` of ``[N, 4, 2]`` simple (non-self-intersecting) quadrilaterals (shoelace)."""
    quads = check_quads(quads)
    return _signed_area(quads, torch.full((len(quads),), 4, device=quads.device)).abs()


def quad_iou(quads1: Tensor, quads2: Tensor) -> Tensor:
    """Intersection over union of every pair of convex quadrilaterals: ``[N, 4, 2]`` x
    ``[M, 4, 2]`` -> ``[N, M]``.

    The intersection of two convex polygons is found by Sutherland–Hodgman clipping (each
    quadrilateral of ``quads1`` cut by the four edge lines of one of ``quads2``), its area by the
    shoelace formula; all ``N * M`` pairs at once, in float64. Corners may go round either way;
    degenerate (zero-area) quadrilaterals are allowed and a pair with an empty union has IoU 0.
    Pairs whose bounding boxes do not overlap are 0 without clipping.

    Raises:
        ValueError: a quadrilateral is not convex (clipping by a non-convex polygon is wrong);
            the message names which one.
    """
    quads1 = check_quads(quads1, "quads1")
    quads2 = check_quads(quads2, "quads2")
    for name, quads in (("quads1", quads1), ("quads2", quads2)):
        convex = _is_convex(quads.double())
        if not bool(convex.all()):
            i = int((~convex).nonzero()[0])
            raise ValueError(
                f"{name}[{i}] = {quads[i].tolist()} is not a convex quadrilateral (its corners "
                "must go round in order, without crossing)"
            )
    n, m = len(quads1), len(quads2)
    out = torch.zeros((n, m), dtype=torch.float64, device=quads1.device)
    if n == 0 or m == 0:
        return out.to(quads1.dtype)
    a, b = quads1.double(), quads2.double().to(quads1.device)
    lo1, hi1, lo2, hi2 = a.amin(1), a.amax(1), b.amin(1), b.amax(1)
    touching = ((torch.min(hi1[:, None], hi2[None]) - torch.max(lo1[:, None], lo2[None])) > 0).all(
        -1
    )
    rows, cols = touching.nonzero(as_tuple=True)
    if len(rows):
        subject, count = _clip_convex(a[rows], torch.full_like(rows, 4), b[cols])
        inter = _signed_area(subject, count).abs()
        area1 = _signed_area(a, torch.full((n,), 4, device=a.device)).abs()
        area2 = _signed_area(b, torch.full((m,), 4, device=b.device)).abs()
        union = area1[rows] + area2[cols] - inter
        out[rows, cols] = torch.where(union > 0, inter / union.clamp(min=1e-300), 0.0)
    return out.clamp_(0, 1).to(quads1.dtype)
