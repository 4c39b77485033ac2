"""Shared test settings and helpers: hypothesis profiles, box strategies, the walkthrough's
800 x 800 example (its anchors and ground truths), label counts, a short training loop, and the
``device`` fixture."""

from __future__ import annotations

import os
from collections.abc import Callable

# Before torch loads OpenMP, which reads it once: its threads spin only briefly while they wait, so
# a busy machine slows the tests (and the kernels nbval starts) a few times, not twentyfold (the
# Makefile's measurements).
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.training.loop import CUBLAS_DETERMINISTIC

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")

torch.set_num_threads(min(2, torch.get_num_threads()))
# Before the first matrix product on a GPU, which reads it once: fit(deterministic=True) needs it
# (see fit's docstring), and a test worker may have multiplied on the GPU before.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)

# A test runs on the CPU unless it takes the ``device`` fixture (or TUTORIAL_DET_DEVICE says
# otherwise): code that picks a device itself (fit, the command line) then picks the CPU too.
os.environ.setdefault("TUTORIAL_DET_DEVICE", "cpu")
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(scope="session", params=DEVICES)
def device(request) -> torch.device:
    """Each device the suite can use: the CPU always, CUDA when present. A test that takes this
    fixture runs once per device, so the GPU run is this same suite."""
    return torch.device(request.param)


@st.composite
def xyxy_boxes(
    draw, min_n: int = 0, max_n: int = 8, max_coord: float = 500.0, min_size: float = 0.0
):
    """``[N, 4]`` float32 xyxy boxes with x2 >= x1 + min_size and y2 >= y1 + min_size."""
    n = draw(st.integers(min_n, max_n))
    coord = st.floats(0, max_coord, allow_nan=False, width=32)
    size = st.floats(min_size, max_coord, allow_nan=False, width=32)
    rows = [
        (x, y, x + w, y + h)
        for x, y, w, h in draw(
            st.lists(st.tuples(coord, coord, size, size), min_size=n, max_size=n)
        )
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def t(rows) -> torch.Tensor:
    """A float32 tensor of ``rows`` (boxes written out in a test)."""
    return torch.tensor(rows, dtype=torch.float32)


#: The walkthrough's two ground truths on its 800 x 800 image (lesson 03): (y1, x1, y2, x2)
#: [[20, 30, 400, 500], [300, 400, 500, 600]] there, xyxy here.
SEED_GT = t([[30, 20, 500, 400], [400, 300, 600, 500]])


@pytest.fixture(scope="session")
def anchors_800() -> torch.Tensor:
    """Faster R-CNN's 22500 anchors on an 800 x 800 image: stride 16, 50 x 50 cells x 9."""
    return grid_anchors(anchor_base(), (50, 50), 16)


@pytest.fixture(scope="session")
def inside_800(anchors_800) -> torch.Tensor:
    """The 8940 of them that lie inside the image."""
    return anchors_800[inside_anchors(anchors_800, (800, 800))]


def label_counts(labels: torch.Tensor) -> tuple[int, int, int]:
    """``(positive, negative, ignored)``: how many labels are 1, 0 and -1."""
    return int((labels == 1).sum()), int((labels == 0).sum()), int((labels == -1).sum())


def loss_history(loss_fn: Callable[[], torch.Tensor], optimizer, steps: int) -> list[float]:
    """The losses of ``steps`` optimisation steps on ``loss_fn()``, a scalar tensor."""
    history = []
    for _ in range(steps):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history
