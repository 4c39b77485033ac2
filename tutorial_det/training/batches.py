"""Where training batches come from, in a reproducible, resumable order.

Lesson 09 (training at scale) teaches it.

A batch is ``(images, targets)``: a list of ``[3, H, W]`` float tensors and a list of target dicts
(``boxes`` ``[N, 4]`` xyxy float, ``labels`` ``[N]`` int64, ...), one per image.

:func:`batch_source` accepts three kinds of training data:

* a map-style data set (``len`` and ``[i]``, items ``(image, target)``): batches are built here.
  Each epoch's order is a shuffle seeded by ``(seed, epoch)`` through ``DistributedSampler`` (one
  shard per process under torch.distributed, the whole set on one process), so a run is
  reproducible, and a resumed run skips exactly the batches the interrupted run had trained on;
* an iterable of ready batches (a ``DataLoader`` you built): one pass is one epoch (a plain
  list counts as a data set of items);
* a callable returning one ready batch per call (a threaded sample pool): no epochs at all.

Under torch.distributed an iterable or a callable runs in every process as it is: give each
process its own share of the data (different seeds, a DistributedSampler of its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from tutorial_det.data.collate import detection_collate

Batch = tuple[list[torch.Tensor], list[dict[str, Any]]]


def check_batch(batch: Any, where: str) -> Batch:
    """``batch`` as ``(list of images, list of target dicts)``, or a TypeError saying what is wrong
    and ``where`` (``"step 12"``, ``"batch 3"``)."""
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise TypeError(
            f"{where}: a batch must be an (images, targets) pair, got {type(batch).__name__}"
        )
    images, targets = batch
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, list | tuple) or not all(
        isinstance(im, torch.Tensor) and im.ndim == 3 for im in images
    ):
        raise TypeError(
            f"{where}: batch images must be a list of [C, H, W] tensors (or one [B, C, H, W] "
            f"tensor); got {type(images).__name__}. An iterable or callable source must yield "
            "ready batches: wrap single (image, target) items in a DataLoader with a collate_fn"
        )
    if not isinstance(targets, list | tuple) or not all(isinstance(t, dict) for t in targets):
        raise TypeError(f"{where}: batch targets must be a list of dicts")
    if len(images) != len(targets):
        raise ValueError(f"{where}: {len(images)} images but {len(targets)} targets")
    return list(images), list(targets)


def images_to(images: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Each image moved to ``device``."""
    return [im.to(device, non_blocking=device.type == "cuda") for im in images]


def targets_to(targets: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    """Each target dict with its tensor values moved to ``device`` (other values kept)."""
    non_blocking = device.type == "cuda"
    return [
        {
            k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
            for k, v in t.items()
        }
        for t in targets
    ]


def is_map_style(data: Any) -> bool:
    """True for an indexable data set of items (not a DataLoader, not an IterableDataset)."""
    if isinstance(data, IterableDataset | DataLoader):
        return False
    if isinstance(data, Dataset):
        return hasattr(data, "__len__")
    return hasattr(data, "__len__") and hasattr(data, "__getitem__") and not callable(data)


@dataclass
class BatchSource:
    """Training batches epoch by epoch (see the module docstring for the three kinds).

    Attributes:
        kind: ``"dataset"``, ``"iterable"`` or ``"callable"``.
        steps_per_epoch: batches per epoch on each process, where known.
        resumable: True when a resumed run sees exactly the batches an uninterrupted one would.
    """

    kind: str
    steps_per_epoch: int | None
    resumable: bool
    _epoch_batches: Callable[[int, int], Iterator[Any]]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """The batches of ``epoch``, after the first ``skip`` (only a data set can skip)."""
        return self._epoch_batches(epoch, skip)


def batch_source(
    data: Any,
    *,
    batch_size: int,
    collate_fn: Callable | None,
    shuffle: bool,
    seed: int,
    rank: int,
    world_size: int,
    num_workers: int,
    pin_memory: bool,
) -> BatchSource:
    """Wrap ``data`` (a data set, an iterable of batches or a callable) as a :class:`BatchSource`.

    ``batch_size`` is per process: under torch.distributed each optimizer step trains on
    ``batch_size * world_size`` images. When the data set's length is not a multiple of
    ``world_size``, DistributedSampler repeats a few items so that every process gets as many.
    """
    if is_map_style(data):
        if len(data) == 0:
            raise ValueError("train_data is an empty data set")
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        sampler = DistributedSampler(
            data, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed
        )

        def epoch_batches(epoch: int, skip: int) -> Iterator[Any]:
            sampler.set_epoch(epoch)
            indices = list(sampler)[skip * batch_size :]
            # The generator seeds the loader's workers; it also keeps the loader from drawing
            # that seed from torch's global generator, which would shift a resumed run's stream.
            worker_seed = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
            loader = DataLoader(
                data,
                batch_size=batch_size,
                sampler=indices,
                collate_fn=collate_fn or detection_collate,
                num_workers=num_workers,
                pin_memory=pin_memory,
                generator=torch.Generator().manual_seed(worker_seed),
            )
            return iter(loader)

        return BatchSource("dataset", math.ceil(len(sampler) / batch_size), True, epoch_batches)

    if callable(data):

        def calls(epoch: int, skip: int) -> Iterator[Any]:
            while True:
                yield data()

        return BatchSource("callable", None, False, calls)

    if hasattr(data, "__iter__"):
        try:
            steps = len(data)
        except TypeError:
            steps = None
        return BatchSource("iterable", steps, False, lambda epoch, skip: iter(data))

    raise TypeError(
        f"train_data must be a data set (len and [i]), an iterable of batches or a callable "
        f"returning batches; got {type(data).__name__}"
    )
