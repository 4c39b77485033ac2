"""Naive loop versions of the vectorised operations, the way the lessons first write them.

They are the readable baseline the notebooks start from and the benchmarks compare against
(``benchmarks/``); the package itself never calls them. Each returns exactly what its vectorised
counterpart returns, so a test can check one against the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def anchors_loop(
    feature_size: Sequence[int],
    stride: float = 16,
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
    scales: Sequence[float] = (8, 16, 32),
) -> Tensor:
    """Every anchor of an ``(H, W)`` feature map, one Python loop iteration per anchor.

    Same result as ``grid_anchors(anchor_base(stride, ratios, scales), feature_size, stride)``:
    ``[H * W * A, 4]`` xyxy float32, rows in the outer loop and columns in the inner one
    (row-major, the order of a head's output permuted to ``(N, H, W, A)``).
    """
    rows = []
    for i in range(int(feature_size[0])):
        cy = (i + 0.5) * stride
        for j in range(int(feature_size[1])):
            cx = (j + 0.5) * stride
            for ratio in ratios:
                for scale in scales:
                    h = stride * scale * math.sqrt(ratio)
                    w = stride * scale / math.sqrt(ratio)
                    rows.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
