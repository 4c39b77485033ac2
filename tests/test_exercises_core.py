"""The checking mechanism: a right answer passes in one line; a wrong one is named by its cause
first, or, when no catalogued mistake fits, shown by its smallest failing case; exceptions,
changed inputs, None and results on the wrong device are reported in one sentence."""

from __future__ import annotations

import torch

from tutorial_det.exercises import Case, Catalogue, check_box_iou, run_check
from tutorial_det.exercises.core import RETURNS_NONE

CATALOGUE = Catalogue()


@CATALOGUE.add("You double the input.")
def doubles(x):
    return x * 2


@CATALOGUE.add("You negate the input.")
def negates(x):
    return -x


def cases():
    return [Case(f"x = {v}", (torch.tensor([v] * (n + 1)),)) for n, v in enumerate((0.0, 1.0, 2.0))]


def check(fn):
    return run_check(
        "check_copy", fn, cases(), reference=torch.clone, verbose=False, mistakes=CATALOGUE
    )


def test_a_right_answer_passes_in_one_line(capsys):
    result = run_check("check_copy", lambda x: x + 0, cases(), reference=torch.clone)
    assert result and result.total == 3 and not result.causes
    assert capsys.readouterr().out == "check_copy: all 3 cases pass.\n"


def test_the_mistake_reproduced_is_named_first_then_its_smallest_case(capsys):
    result = run_check(
        "check_copy", lambda x: x + x, cases(), reference=torch.clone, mistakes=CATALOGUE
    )
    assert result.causes == [CATALOGUE.named("doubles")]
    assert capsys.readouterr().out.splitlines() == [
        "check_copy: You double the input.",
        '  Smallest case showing it, "x = 1.0": expected [1, 1], got [2, 2]',
        "  1 of 3 cases pass.",
    ]


def test_two_mistakes_at_once_are_both_named():
    def doubles_from_two_on(x):
        return x * 2 if float(x[0]) >= 2 else -x

    result = check(doubles_from_two_on)
    assert [m.name for m in result.causes] == ["doubles", "negates"]  # a tie: catalogue order
    assert result.report().splitlines()[2] == "  Also: You negate the input."


def test_a_function_wrong_everywhere_is_not_pinned_on_a_coincidence():
    result = check(lambda x: x + 5)
    assert not result.causes
    assert result.report().splitlines()[:2] == [
        "check_copy: No mistake on our list gives these answers.",
        '  Smallest failing case, "x = 0.0": expected [0], got [5]',
    ]


def test_a_mistake_is_not_named_when_the_function_passes_a_case_it_fails():
    # like `doubles` on x = 1, but right on x = 2, where `doubles` is wrong
    result = check(lambda x: x * 2 if float(x[0]) == 1 else x.clone())
    assert not result.causes and len(result.failures) == 1


def test_an_exception_is_one_sentence_naming_the_case_and_later_cases_still_run():
    calls = []

    def flaky(x):
        calls.append(float(x[0]))
        if float(x[0]) == 1:
            raise ZeroDivisionError("boom")
        return x.clone()

    result = check(flaky)
    assert calls == [0.0, 1.0, 2.0] and result.passed == 2
    assert result.failures == ["[x = 1.0] raised ZeroDivisionError: boom"]
    assert (
        result.headline
        == 'check_copy: Your function raised ZeroDivisionError on the case "x = 1.0": boom'
    )
    assert "Traceback" not in result.report()


def test_not_implemented_is_one_line(capsys):
    def todo(a, b):
        raise NotImplementedError

    result = check_box_iou(todo)
    assert not result and result.waiting == 10 and not result.failures
    assert capsys.readouterr().out == (
        "check_box_iou: not implemented yet (10 cases waiting for your code).\n"
    )


def test_returning_none_is_named():
    def forgot_return(x):
        x.clone()

    result = check(forgot_return)
    assert result.causes == [RETURNS_NONE]
    assert result.headline == f"check_copy: {RETURNS_NONE.cause}"


def test_inputs_are_copied_and_a_changed_input_is_reported():
    boxes = torch.tensor([[0.0, 0, 10, 10]])

    def mutating(b):
        b += 5
        return b - 5

    result = run_check(
        "m", mutating, [Case("mutation", (boxes,))], reference=torch.clone, verbose=False
    )
    assert boxes.tolist() == [[0.0, 0, 10, 10]]
    assert result.failures == ["[mutation] changed its input `b` in place"]


def _device_cases():
    return [
        Case("values", (torch.tensor([1.0, 2.0]),)),
        Case("on another device", (torch.tensor([1.0, 2.0]),), on_other_device=True),
    ]


def test_a_tensor_built_on_the_cpu_fails_the_other_device_case():
    result = run_check(
        "d", lambda x: x * torch.ones(2), _device_cases(), reference=torch.clone, verbose=False
    )
    assert result.passed == 1
    assert (
        "with its inputs on the meta device (a stand-in for a GPU), your function mixed"
        in (result.failures[0])
    )

    def made_on_the_cpu(x):
        return torch.tensor([1.0, 2.0])  # right for the values, but always on the CPU

    moved = run_check("d", made_on_the_cpu, _device_cases(), reference=torch.clone, verbose=False)
    assert moved.failures[0].endswith("your function returned a tensor on cpu")


def test_a_function_the_meta_device_cannot_run_passes_the_other_device_case():
    def by_values(x):
        return torch.tensor([float(v) for v in x], device=x.device)  # .item() on meta raises

    assert run_check("d", by_values, _device_cases(), reference=torch.clone, verbose=False)
    assert run_check("d", lambda x: x * 1, _device_cases(), reference=torch.clone, verbose=False)


def test_integer_answers_must_be_integers_and_exact_dtypes_are_checked_where_asked():
    from tutorial_det.exercises import compare_tensors

    indices = torch.tensor([0, 2])
    assert compare_tensors(torch.tensor([0.0, 2.0]), indices) == (
        "expected int64 values, got float32: [0, 2]"
    )
    assert compare_tensors(indices.int(), indices) is None
    assert compare_tensors(indices.int(), indices, exact_dtype=True) == (
        "expected int64 values, got int32: [0, 2]"
    )
    assert compare_tensors(torch.tensor([1, 0]), torch.tensor([True, False])).startswith(
        "expected bool values"
    )
