"""The device a lesson runs on, seeding for reproducible runs, and timing that waits for the GPU.

Pick the device once, at the top of a notebook or script, and pass it on::

    device = pick_device()          # cuda, then mps, then cpu
    model.to(device)

Nothing in tutorial_det hard-codes a CUDA device: the same code runs on a laptop CPU and on a GPU.
A model's own device is :func:`model_device`; :func:`median_time_ms` times code on any device.
"""

from __future__ import annotations

import itertools
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
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {str(device)!r} requested but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def synchronize() -> None:
    """Wait for every GPU kernel launched so far (CUDA and MPS run asynchronously; the CPU does
    nothing here). A timer must call it before reading the clock, or it times the launch only."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    if _mps_available():
        torch.mps.synchronize()


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
    Each call is timed from a :func:`synchronize` to the next, so on a GPU the time includes the
    kernels ``fn`` launched, not only their launch. ``fn`` runs on whatever device its tensors
    are on: move inputs to the model's device (:func:`model_device`) before timing.
    """
    if not (isinstance(repeat, int) and repeat >= 1 and isinstance(warmup, int) and warmup >= 0):
        raise ValueError(
            f"repeat must be >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}"
        )
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
