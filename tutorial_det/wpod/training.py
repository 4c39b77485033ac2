"""Training WPOD-Net on synthetic plates drawn by worker threads into a sample pool.

Lesson 08 (WPOD-Net) teaches it.

Worker threads of a :class:`~tutorial_det.data.pool.SamplePool` keep rendering fresh plates
(``PlatesDataset.render``: a new random view of a new plate on a new background every call, which
is the augmentation) while :func:`~tutorial_det.training.fit` trains on batches drawn from the
pool; ``fit`` accepts any callable that returns a ready batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from tutorial_det.data.collate import detection_collate
from tutorial_det.data.plates import PlatesDataset
from tutorial_det.data.pool import SamplePool
from tutorial_det.training import History, fit
from tutorial_det.training.batches import Batch


def pool_batches(pool: SamplePool, batch_size: int) -> Callable[[], Batch]:
    """A batch source for ``fit``: each call draws ``batch_size`` samples from ``pool`` and returns
    ``(images, targets)``."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return lambda: detection_collate(pool.get_batch(batch_size))


def train_on_plates(
    model: nn.Module,
    plates: PlatesDataset,
    *,
    batch_size: int = 16,
    lr: float = 2e-3,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    pool_size: int = 256,
    num_workers: int = 1,
    min_samples: int | None = None,
    seed: int = 0,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    eval_every: int | None = None,
    log_every: int | None = 50,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> History:
    """Train ``model`` on plates that ``num_workers`` threads render into a pool.

    ``plates`` only sets how plates look (its ``render`` is the pool's ``sample_fn``; its length
    and seed are not used); the pool is seeded by ``seed``. AdamW at ``lr`` with a cosine decay
    over ``max_steps`` when given (constant otherwise), gradients clipped at norm 10. The pool
    starts filling before the first step (``min_samples`` defaults to ``4 * batch_size``, at
    most ``pool_size``) and is stopped when training ends, also on an error.
    """
    if min_samples is None:
        min_samples = min(pool_size, 4 * batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_steps, eta_min=lr * 0.05)
        if max_steps
        else None
    )
    pool = SamplePool(
        plates.render, pool_size, num_workers=num_workers, min_samples=min_samples, seed=seed
    )
    with pool:
        return fit(
            model,
            pool_batches(pool, batch_size),
            optimizer=optimizer,
            scheduler=scheduler,
            max_steps=max_steps,
            max_seconds=max_seconds,
            grad_clip_norm=10.0,
            eval_fn=eval_fn,
            eval_every=eval_every,
            log_every=log_every,
            progress=progress,
            seed=seed,
            device=device,
        )
