"""Projective geometry shared by the plates data set and WPOD-Net: the homography between two
quadrilaterals. Points are ``(x, y)`` in continuous pixel coordinates."""

from __future__ import annotations

import torch
from torch import Tensor


def homography(src: Tensor, dst: Tensor) -> Tensor:
    """The projective maps sending four points to four points: ``[..., 4, 2]`` x2 -> ``[..., 3, 3]``.

    ``H`` (with ``H[2, 2] = 1``) satisfies ``dst_k ~ H @ (src_k, 1)``: the eight unknowns come from
    two linear equations per point pair, solved in float64 with ``torch.linalg.solve_ex``.

    Raises:
        ValueError: shapes differ or are not ``[..., 4, 2]``, or three points of one set are
            collinear (no such map; the message gives the index of the first such set).
    """
    for name, value in (("src", src), ("dst", dst)):
        if not isinstance(value, Tensor) or value.ndim < 2 or tuple(value.shape[-2:]) != (4, 2):
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name} must be a tensor of shape [..., 4, 2], got {shape}")
    if src.shape != dst.shape:
        raise ValueError(f"src {list(src.shape)} and dst {list(dst.shape)} differ in shape")
    batch = src.shape[:-2]
    s = src.reshape(-1, 4, 2).double()
    t = dst.reshape(-1, 4, 2).to(s)
    x, y, u, v = s[..., 0], s[..., 1], t[..., 0], t[..., 1]  # [P, 4]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack((x, y, one, zero, zero, zero, -u * x, -u * y), dim=-1)  # [P, 4, 8]
    rows_v = torch.stack((zero, zero, zero, x, y, one, -v * x, -v * y), dim=-1)
    system = torch.stack((rows_u, rows_v), dim=2).reshape(-1, 8, 8)
    rhs = torch.stack((u, v), dim=2).reshape(-1, 8)
    solution, info = torch.linalg.solve_ex(system, rhs)
    singular = (info != 0) | ~torch.isfinite(solution).all(dim=1)
    if bool(singular.any()):
        i = int(singular.nonzero()[0])
        raise ValueError(
            f"no homography for point set {i}: src {s[i].tolist()} -> dst {t[i].tolist()} "
            "(three of the points are collinear)"
        )
    h = torch.cat((solution, torch.ones_like(solution[:, :1])), dim=1)
    return h.reshape(*batch, 3, 3).to(src.dtype if src.is_floating_point() else torch.float32)
