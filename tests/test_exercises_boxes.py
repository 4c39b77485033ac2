"""The exercise mechanism: a right answer passes, and each typical mistake fails with its hint."""

from __future__ import annotations

import torch

from tutorial_det.boxes import box_iou
from tutorial_det.exercises import Case, check_box_iou, run_check


def test_reference_passes_every_case(capsys):
    result = check_box_iou(box_iou)
    assert result and result.total == 10 and not result.failures
    assert capsys.readouterr().out.strip() == "check_box_iou: all 10 cases pass."


def _iou_plus_one(a, b):
    """The "+1 pixel" convention: wrong for this package's boxes."""
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    wh = (
        torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2]) + 1
    ).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None] - inter)


def _iou_without_clamp(a, b):
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None] - inter)


def test_plus_one_convention_fails_with_its_hint():
    result = check_box_iou(_iou_plus_one, verbose=False)
    assert not result
    touching = [f for f in result.failures if f.startswith("[boxes touching along an edge]")]
    assert touching and "no '+1'" in touching[0]


def test_missing_clamp_fails_on_disjoint_boxes():
    result = check_box_iou(_iou_without_clamp, verbose=False)
    names = [f.split("]")[0][1:] for f in result.failures]
    assert "disjoint boxes" in names and "zero-area boxes" in names
    assert "identical boxes" not in names


def test_transposed_result_is_reported_with_shapes():
    result = check_box_iou(lambda a, b: box_iou(b, a), verbose=False)
    several = [f for f in result.failures if "several boxes" in f]
    assert several and "expected shape [2, 3], got shape [3, 2]" in several[0]


def test_not_implemented_is_one_line(capsys):
    def todo(a, b):
        raise NotImplementedError

    result = check_box_iou(todo)
    assert not result and result.waiting == 10 and not result.failures
    assert (
        capsys.readouterr().out
        == "check_box_iou: not implemented yet (10 cases waiting for your code).\n"
    )


def test_an_exception_is_a_failed_case_and_later_cases_still_run():
    calls = []

    def flaky(x):
        calls.append(x)
        if x == 1:
            raise ZeroDivisionError("boom")
        return torch.tensor(float(x))

    cases = [Case(f"x={x}", (x,), expected=torch.tensor(float(x))) for x in range(3)]
    result = run_check("flaky", flaky, cases, reference=None, verbose=False)
    assert result.passed == 2 and calls == [0, 1, 2]
    assert result.failures == ["[x=1] raised ZeroDivisionError: boom"]


def test_inputs_are_copied_so_a_mutating_function_cannot_spoil_the_reference():
    boxes = torch.tensor([[0.0, 0, 10, 10]])
    cases = [Case("mutation", (boxes,))]

    def mutating(b):
        b += 5
        return b

    run_check("m", mutating, cases, reference=lambda b: b.clone(), verbose=False)
    assert boxes.tolist() == [[0.0, 0, 10, 10]]
