"""Data generation speed: synthetic shapes and plates (128 px), with and without the training
augmentation, and the threaded sample pool against a DataLoader with 2 worker processes
producing the same augmented shapes items.

Rows give milliseconds per image (``ours_ms``) and images per second (``note``). The pool's
rate counts new samples put into the pool while the main thread only waits, the DataLoader's
rate counts items delivered after its workers have started.

Everything runs with one torch thread, as in a DataLoader worker: the augmentation is many
small tensor operations, and splitting each over two threads costs more than it saves (on a
busy machine, ten times more).
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from benchmarks.common import Row, time_ms
from tutorial_det.data.collate import detection_collate
from tutorial_det.data.plates import PlatesDataset
from tutorial_det.data.pool import SamplePool
from tutorial_det.data.shapes import ShapesDataset
from tutorial_det.data.transforms import train_transforms

ITEMS_PER_CALL = 16


def _per_image_row(name: str, dataset) -> Row:
    ms = time_ms(lambda: [dataset[i] for i in range(ITEMS_PER_CALL)], min_run_time=1.0)
    ms /= ITEMS_PER_CALL
    return Row(name, ms, note=f"{1000 / ms:.0f} images/s")


def _pool_row(dataset, seconds: float = 3.0) -> Row:
    with SamplePool.from_dataset(dataset, pool_size=256, num_workers=2, min_samples=32) as pool:
        pool.get_batch(1, timeout=60)
        start, produced = time.perf_counter(), pool.produced
        time.sleep(seconds)
        elapsed, count = time.perf_counter() - start, pool.produced - produced
    ms = 1000 * elapsed / count
    return Row("SamplePool 2 threads: shapes + aug", ms, note=f"{1000 / ms:.0f} new images/s")


def _loader_row(dataset, batches: int = 60) -> Row:
    loader = DataLoader(dataset, batch_size=16, num_workers=2, collate_fn=detection_collate)
    iterator = iter(loader)
    next(iterator)  # workers started and warm
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    ms = 1000 * (time.perf_counter() - start) / (batches * 16)
    del iterator
    return Row("DataLoader 2 processes: shapes + aug", ms, note=f"{1000 / ms:.0f} images/s")


def run() -> list[Row]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _rows()
    finally:
        torch.set_num_threads(threads)


def _rows() -> list[Row]:
    torch.manual_seed(0)
    shapes = ShapesDataset(10_000, seed=0)
    shapes_aug = ShapesDataset(10_000, seed=0, transforms=train_transforms("shapes"))
    plates = PlatesDataset(10_000, seed=0)
    plates_aug = PlatesDataset(10_000, seed=0, transforms=train_transforms("plates"))
    return [
        _per_image_row("ShapesDataset 128 px", shapes),
        _per_image_row("ShapesDataset 128 px + train_transforms", shapes_aug),
        _per_image_row("PlatesDataset 128 px", plates),
        _per_image_row("PlatesDataset 128 px + train_transforms", plates_aug),
        _pool_row(shapes_aug),
        _loader_row(shapes_aug),
    ]
