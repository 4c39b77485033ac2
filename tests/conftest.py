"""Shared test settings: hypothesis profiles and small box strategies."""

from __future__ import annotations

import os

# Before torch loads OpenMP, which reads it once: its threads wait without spinning, so a busy
# machine slows the tests (and the kernels nbval starts) by a fair share (see the Makefile).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")

torch.set_num_threads(min(2, torch.get_num_threads()))


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
