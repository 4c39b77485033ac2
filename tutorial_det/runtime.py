"""The device a lesson runs on, and seeding for reproducible runs.

Pick the device once, at the top of a notebook or script, and pass it on::

    device = pick_device()          # cuda, then mps, then cpu
    model.to(device)

Nothing in tutorial_det hard-codes a CUDA device: the same code runs on a laptop CPU and on a GPU.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU.

    Args:
        prefer: a device to use instead (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); the
            environment variable ``TUTORIAL_DET_DEVICE`` does the same without editing code.

    Raises:
        ValueError: the preferred device is not available on this machine.
    """
    prefer = prefer if prefer is not None else os.environ.get("TUTORIAL_DET_DEVICE") or None
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {str(device)!r} requested but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU) with ``seed``."""
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def median_time_ms(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, in milliseconds, after ``warmup`` calls.

    The lessons' quick timings (``benchmarks/`` measures more carefully with torch.utils.benchmark).
    On a GPU, synchronise inside ``fn`` if it launches asynchronous work.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
