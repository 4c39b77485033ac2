"""Mistakes in the average precision of lesson 10 (``check_average_precision``: ``fn(recall [N],
precision [N]) -> AP``), one catalogue per rule in :data:`AVERAGE_PRECISION`.

Right: precision is first replaced by its envelope (``max(precision[i:])``, a maximum towards
higher recall); ``"all_points"`` sums (recall step) x (envelope at the step's end), recall
starting from 0; ``"11_points"`` and ``"coco_101"`` average the envelope at 11 or 101 evenly spaced
recall levels, taken at the first point whose recall reaches the level (>=), 0 where none does."""

from __future__ import annotations

from functools import partial

import torch

from tutorial_det.exercises.core import Catalogue, Mistake

ALL_POINTS = Catalogue()


def _envelope(precision):
    """Right: ``precision[i] -> max(precision[i:])``."""
    return precision.flip(0).cummax(0).values.flip(0)


def _steps(recall):
    """Right: each point's recall step, from recall 0."""
    return torch.diff(recall, prepend=recall.new_zeros(1))


@ALL_POINTS.add(
    "You sum the raw precision; first replace it by its envelope, max(precision[i:]), so that "
    "the curve never goes up again."
)
def ap_without_envelope(recall, precision):
    return (_steps(recall) * precision).sum()


@ALL_POINTS.add(
    "You take the envelope towards lower recall (a running max from the left); it looks ahead: "
    "precision[i] -> max(precision[i:])."
)
def ap_envelope_from_the_left(recall, precision):
    return (_steps(recall) * precision.cummax(0).values).sum()


@ALL_POINTS.add(
    "You integrate the raw curve with the trapezoid rule (torch.trapezoid, np.trapz); VOC's area "
    "is a step function: each recall step from 0 times the envelope at the step's end."
)
def ap_trapezoid(recall, precision):
    return torch.trapezoid(precision, recall) if len(recall) else torch.tensor(0.0)


@ALL_POINTS.add(
    "You skip the first step, from recall 0 to the first point's recall: prepend a recall of 0."
)
def ap_skips_first_step(recall, precision):
    return (torch.diff(recall) * _envelope(precision)[1:]).sum()


@ALL_POINTS.add(
    "An empty curve (no detection) makes your function fail: its AP is 0, return it before "
    "taking a maximum or an index."
)
def ap_empty_curve_fails(recall, precision):
    _ = precision[-1]  # raises on an empty curve
    return (_steps(recall) * _envelope(precision)).sum()


# --------------------------------------------------------------------------- recall levels


def _levels(count):
    return torch.linspace(0, 1, count, dtype=torch.float64)


def _at_levels(recall, values, levels, reached=lambda recall, level: recall >= level):
    """Right: ``values`` at the first point whose recall reaches each level, 0 where none does."""
    out = []
    for level in levels:
        hit = torch.where(reached(recall, level))[0]
        out.append(values[hit[0]] if len(hit) else values.new_zeros(()))
    return torch.stack(out)


def ap_levels_divides_by_one_less(recall, precision, levels):
    envelope = _envelope(precision)
    return _at_levels(recall, envelope, _levels(levels)).sum() / (levels - 1)


def ap_levels_strict(recall, precision, levels):
    envelope = _envelope(precision)
    strict = _at_levels(recall, envelope, _levels(levels), lambda recall, level: recall > level)
    return strict.mean()


def ap_levels_without_envelope(recall, precision, levels):
    return _at_levels(recall, precision, _levels(levels)).mean()


def ap_levels_reached_only(recall, precision, levels):
    envelope = _envelope(precision)
    reached = _levels(levels)[_levels(levels) <= (recall.max() if len(recall) else -1)]
    return _at_levels(recall, envelope, reached).mean() if len(reached) else torch.tensor(0.0)


def ap_levels_unreached_fails(recall, precision, levels):
    envelope_at = [precision[recall >= level].max() for level in _levels(levels)]  # may be empty
    return torch.stack(envelope_at).mean()


def _level_mistakes(count):
    """The catalogue of the rule with ``count`` recall levels."""
    catalogue = Catalogue()
    for fn, cause in (
        (
            ap_levels_divides_by_one_less,
            f"You divide by {count - 1}; there are {count} recall levels, 0 included: divide "
            f"by {count}.",
        ),
        (
            ap_levels_strict,
            "A level counts as reached only when recall goes past it; it is reached when recall "
            ">= the level.",
        ),
        (
            ap_levels_without_envelope,
            "You read the raw precision at each level; read the envelope, max(precision[i:]), "
            "the best precision at that recall or beyond.",
        ),
        (
            ap_levels_reached_only,
            "You average over the levels the curve reaches only; a level it never reaches counts "
            f"with precision 0, and the mean is over all {count}.",
        ),
        (
            ap_levels_unreached_fails,
            "A level the curve never reaches leaves nothing to take the maximum of, and your "
            "function fails: such a level counts with precision 0.",
        ),
    ):
        catalogue.append(Mistake(fn.__name__, cause, partial(fn, levels=count)))
    return catalogue


#: The catalogue of each rule of :func:`tutorial_det.metrics.average_precision`.
AVERAGE_PRECISION = {
    "all_points": ALL_POINTS,
    "11_points": _level_mistakes(11),
    "coco_101": _level_mistakes(101),
}
