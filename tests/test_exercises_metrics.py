"""check_average_precision: right answers written differently pass, for each of the three rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_det.exercises import check_average_precision
from tutorial_det.metrics import average_precision


def all_points_loop(recall, precision):
    r, p = [0.0, *recall.tolist()], precision.tolist()
    return sum((r[i + 1] - r[i]) * max(p[i:]) for i in range(len(p)))


def all_points_numpy(recall, precision):
    r = np.concatenate(([0.0], recall.numpy()))
    envelope = np.maximum.accumulate(precision.numpy()[::-1])[::-1]
    return float(np.sum(np.diff(r) * envelope))


def levels_loop(count):
    def ap(recall, precision):
        total = 0.0
        for level in np.linspace(0, 1, count):
            reached = precision[recall >= level]
            total += float(reached.max()) if len(reached) else 0.0
        return total / count

    return ap


RIGHT = {
    "all_points": [all_points_loop, all_points_numpy],
    "11_points": [levels_loop(11)],
    "coco_101": [levels_loop(101)],
}


@pytest.mark.parametrize(
    ("method", "fn"),
    [(method, fn) for method, fns in RIGHT.items() for fn in fns]
    + [(method, lambda r, p, m=method: average_precision(r, p, m)) for method in RIGHT],
)
def test_right_answers_pass(method, fn):
    assert check_average_precision(fn, method, verbose=False)


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method='voc'"):
        check_average_precision(lambda r, p: torch.tensor(0.0), "voc")
