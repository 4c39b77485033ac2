"""Batching detection items: images of different sizes and targets with different box counts
cannot be stacked, so a batch stays a pair of lists (torchvision's detection models take that)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def detection_collate(batch: Sequence[tuple[Tensor, dict]]) -> tuple[list[Tensor], list[dict]]:
    """``[(image, target), ...] -> ([image, ...], [target, ...])``: the ``collate_fn`` for a
    ``DataLoader`` over detection data sets (each image ``[3, H, W]``, each target a dict with
    ``"boxes"`` ``[N_i, 4]`` and ``"labels"`` ``[N_i]``)."""
    images, targets = [], []
    for i, item in enumerate(batch):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(
                f"batch[{i}] must be an (image, target) pair, got {type(item).__name__}"
            )
        images.append(item[0])
        targets.append(item[1])
    return images, targets
