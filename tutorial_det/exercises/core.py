"""The checking mechanism behind every exercise: run the learner's function, name the mistake.

A check runs a learner's function on a list of :class:`Case` s (known answers, edge cases,
random inputs) and compares each answer with the known one or the reference implementation's.
When some case fails, it runs the **catalogue** of that exercise, a list of realistic wrong
functions (:class:`Mistake`, each with one sentence saying what it gets wrong), on the same cases
and names the mistake whose answers the learner's function reproduces. The report says the cause
first, in one sentence, then the smallest case that shows it with what was expected and what came
back; when no catalogued mistake fits, it says so and shows the smallest failing case.

A mistake fits when the learner's function fails every case the mistake fails and gives the
mistake's very (wrong) answer on at least one of them. The first cause named is the fitting
mistake that reproduces the most answers, and it must reproduce at least half of its mistake's
wrong answers (so a function that is wrong everywhere is not pinned on a coincidence). Two bugs
at once rarely leave every answer of either: after the first, each further fitting mistake is
named when it explains a failing case that the ones named before it do not.

Besides values, a case notices what a contract forbids: an exception (reported in one sentence,
never as a traceback), a changed input (the function wrote into its arguments), and, on the
cases marked ``on_other_device``, a result that leaves the inputs' device. Those cases move the
inputs to PyTorch's ``"meta"`` device, which stands for a GPU on a machine without one: a
tensor built without ``device=`` stays on the CPU and gets mixed in. Where the meta device
cannot run the function (it holds no values, so ``.item()``, a loop over values or a conversion
to numpy fails there) the case cannot tell and counts as passed.

:func:`run_check` returns a :class:`CheckResult`, truthy when every case passed, so tests and
notebooks can assert on it.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Case:
    """One input to a learner's function.

    Attributes:
        name: what the case is about, shown when it fails ("zero-area box").
        args: positional arguments (deep-copied per call, networks apart, so a function that
            writes into its inputs cannot spoil the next run; that it wrote into them is
            reported).
        hint: the rule this case tests, shown with it when no catalogued mistake explains it.
        expected: the known answer; when None the reference implementation supplies it.
        on_other_device: run on the inputs moved to the meta device and check only that the
            result stays there (see the module docstring); ``expected`` is not used.
        compare: this case's own comparison, used instead of the check's (for a case with more
            than one right answer).
    """

    name: str
    args: tuple
    hint: str = ""
    expected: Any = None
    on_other_device: bool = False
    compare: Callable[[Any, Any], str | None] | None = None


@dataclass(frozen=True)
class Mistake:
    """A realistic wrong answer to an exercise.

    Attributes:
        name: the wrong function's name (what tests and lessons call it).
        cause: one sentence to the learner: what the function does wrong, and what is right.
        fn: the wrong function, with the exercise's signature.
    """

    name: str
    cause: str
    fn: Callable


class Catalogue(list):
    """The mistakes of one exercise, in the order the report prefers them on a tie.

    ``@catalogue.add("cause")`` above a wrong function records it and leaves the function as it
    is, so it stays importable and readable under its own name.
    """

    def add(self, cause: str) -> Callable[[Callable], Callable]:
        def record(fn: Callable) -> Callable:
            self.append(Mistake(fn.__name__, cause, fn))
            return fn

        return record

    def named(self, name: str) -> Mistake:
        """The mistake called ``name``."""
        for mistake in self:
            if mistake.name == name:
                return mistake
        raise KeyError(f"no mistake called {name!r}; known: {[m.name for m in self]}")


@dataclass
class Outcome:
    """What one call did: its value, or the exception it raised, and which arguments it changed.

    On an ``on_other_device`` case, ``value`` is None where the result stayed on the inputs'
    device (or the meta device could not run the function) and a sentence where it did not.
    """

    value: Any = None
    error: Exception | None = None
    edited: tuple[str, ...] = ()


@dataclass
class CheckResult:
    """How a learner's function did: counts, one message per failed case, and the named causes."""

    name: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    waiting: int = 0  # cases not run because the function raised NotImplementedError
    causes: list[Mistake] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # the report's lines, cause first

    def __bool__(self) -> bool:
        return not self.failures and not self.waiting

    @property
    def total(self) -> int:
        return self.passed + len(self.failures)

    @property
    def headline(self) -> str:
        """The report's first line: the cause when a failure has one."""
        return self.report().splitlines()[0]

    def report(self) -> str:
        if self.waiting:
            return f"{self.name}: not implemented yet ({self.waiting} cases waiting for your code)."
        if not self.failures:
            return f"{self.name}: all {self.total} cases pass."
        return "\n".join(self.details + [f"  {self.passed} of {self.total} cases pass."])

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, passed={self.passed}, failed={len(self.failures)})"

    def _ipython_display_(self) -> None:
        """The report was printed when the check ran: a notebook shows nothing more."""


RETURNS_NONE = Mistake(
    "returns_none",
    "Your function returns None: end it with `return` and the result.",
    lambda *args: None,
)


# --------------------------------------------------------------------------- comparing answers


def compare_tensors(
    got: Any, expected: torch.Tensor, atol: float = 1e-5, exact_dtype: bool = False
) -> str | None:
    """None when ``got`` matches ``expected``, else why not.

    ``got`` must have ``expected``'s shape, no NaN where ``expected`` has none, and values within
    ``atol`` (exactly equal for integer and bool answers). Indices and labels must come back as
    integers and masks as bool; ``exact_dtype`` also requires ``expected``'s very dtype (int64
    indices, as torchvision's contract says).
    """
    try:
        got = torch.as_tensor(got)
    except (TypeError, ValueError, RuntimeError) as error:
        return f"returned {type(got).__name__}, which is not a tensor or array ({error})"
    if tuple(got.shape) != tuple(expected.shape):
        if max(got.ndim, expected.ndim) <= 1 and max(got.numel(), expected.numel()) <= _SHOWN:
            return f"expected {_fmt(expected)}, got {_fmt(got)}"
        return f"expected shape {list(expected.shape)}, got shape {list(got.shape)}"
    kind = _kind(expected)
    if (exact_dtype and got.dtype != expected.dtype) or (kind != "float" and _kind(got) != kind):
        return f"expected {_dtype(expected)} values, got {_dtype(got)}: {_fmt(got)}"
    if got.numel() == 0:
        return None
    if kind != "float":
        differ = got.to(expected.dtype) != expected
    else:
        got, expected = got.to(torch.float64), expected.to(torch.float64)
        differ = ~torch.isclose(got, expected, atol=atol, rtol=1e-4, equal_nan=True)
    if not bool(differ.any()):
        return None
    if expected.numel() <= _SHOWN:
        return f"expected {_fmt(expected)}, got {_fmt(got)}"
    i = _first(differ)
    return (
        f"at index {list(i)} of the {list(expected.shape)} result: expected "
        f"{_fmt(expected[i])}, got {_fmt(got[i])}"
    )


def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "float" if t.is_floating_point() or t.is_complex() else "integer"


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in mask.nonzero()[0])


#: Answers with at most this many values are shown whole.
_SHOWN = 8


def _fmt(t: torch.Tensor) -> str:
    """A small tensor's values as nested lists (``[[0.3333]]``), or a large one's shape."""
    if t.numel() > _SHOWN or (t.numel() == 0 and t.ndim > 1):
        return f"a {list(t.shape)} tensor"
    values = t.int().tolist() if t.dtype == torch.bool else t.tolist()
    return _nested(values)


def _nested(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_nested(v) for v in values) + "]"
    return f"{values:.4g}"


# --------------------------------------------------------------------------- running a function


def _call(fn: Callable, call: Callable | None, case: Case) -> Outcome:
    """Run ``fn`` on a copy of the case's arguments; NotImplementedError passes through."""
    args = _copy(case.args)
    if case.on_other_device:
        return _on_other_device(fn, call, args)
    try:
        value = call(fn, *args) if call else fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # a learner's bug of any kind is an outcome, not a crash
        return Outcome(error=error)
    edited = tuple(
        _argument_name(fn, i)
        for i, (before, after) in enumerate(zip(case.args, args, strict=True))
        if not _unchanged(before, after)
    )
    return Outcome(value=value, edited=edited)


def _copy(value: Any) -> Any:
    """A deep copy of a case's arguments, except networks (large, and read only by the checks
    that take them), which are passed as they are."""
    if isinstance(value, nn.Module):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return copy.deepcopy(value)


def _on_other_device(fn: Callable, call: Callable | None, args: tuple) -> Outcome:
    args = _to_meta(args)
    try:
        value = call(fn, *args) if call else fn(*args)
    except Exception as error:  # NotImplementedError too: torch raises it for some meta copies
        if "device" in str(error) and "numpy" not in str(error):
            message = _message(error)
            return Outcome(value=f"mixed devices ({type(error).__name__}: {message})")
        return Outcome()  # the meta device cannot run it: this case cannot tell
    devices = {t.device.type for t in _tensors(value)} - {"meta"}
    if devices:
        return Outcome(value=f"returned a tensor on {', '.join(sorted(devices))}")
    return Outcome()


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to("meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    return value


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _unchanged(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor):
        return (
            isinstance(after, torch.Tensor)
            and before.shape == after.shape
            and before.dtype == after.dtype
            and bool(torch.equal(before, after) or (before.isnan() & after.isnan()).all())
        )
    if isinstance(before, (list, tuple)):
        return (
            isinstance(after, (list, tuple))
            and len(before) == len(after)
            and all(_unchanged(b, a) for b, a in zip(before, after, strict=True))
        )
    if isinstance(before, dict):
        return before.keys() == after.keys() and all(
            _unchanged(before[k], after[k]) for k in before
        )
    return True


def _argument_name(fn: Callable, i: int) -> str:
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    return f"`{names[i]}`" if i < len(names) and not names[i].startswith("*") else f"argument {i}"


def _problem(outcome: Outcome, expected: Any, compare: Callable, case: Case) -> str | None:
    """Why an outcome fails its case (one sentence), or None when it passes."""
    if outcome.error is not None:
        message = _message(outcome.error)
        return f"raised {type(outcome.error).__name__}" + (f": {message}" if message else "")
    if case.on_other_device:
        if outcome.value is None:
            return None
        return f"with its inputs on the meta device (a stand-in for a GPU), your function {outcome.value}"
    if outcome.edited:
        return f"changed its input {', '.join(outcome.edited)} in place"
    if outcome.value is None:
        return "returned None"
    try:
        return (case.compare or compare)(outcome.value, expected)
    except Exception as error:  # an answer so malformed that the comparison itself fails
        return f"returned an answer that cannot be compared ({type(error).__name__}: {error})"


def _message(error: Exception) -> str:
    """The first line of an exception's message (no traceback)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def _same(mine: Outcome, theirs: Outcome, compare: Callable, case: Case) -> bool:
    """Whether two functions gave the same (wrong) answer on a case."""
    if mine.error is not None or theirs.error is not None:
        return mine.error is not None and theirs.error is not None
    if case.on_other_device:
        return (mine.value is None) == (theirs.value is None)
    if bool(mine.edited) != bool(theirs.edited):
        return False
    if mine.value is None or theirs.value is None:
        return mine.value is None and theirs.value is None
    try:
        return (case.compare or compare)(mine.value, theirs.value) is None
    except Exception:  # the mistake's answer does not fit the comparison: not the same
        return False


def _size(value: Any) -> int:
    """How big a case's input is, to find the smallest failing case."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, nn.Module):
        return sum(1 for m in value.modules() if not list(m.children()))
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    return 1


# --------------------------------------------------------------------------- the check


def run_check(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    reference: Callable,
    compare: Callable[[Any, Any], str | None] = compare_tensors,
    verbose: bool = True,
    mistakes: Sequence[Mistake] = (),
    call: Callable | None = None,
) -> CheckResult:
    """Run ``fn`` on every case and compare with ``case.expected`` or ``reference(*case.args)``.

    When a case fails, the ``mistakes`` are run on the cases too and the one ``fn`` behaves like
    is named first (see the module docstring). ``call(fn, *args)``, when given, runs a function on
    a case's arguments (for checks whose cases describe a set-up rather than the arguments).
    ``NotImplementedError`` (an exercise not attempted yet) stops the check with one line.
    """
    result = CheckResult(name)
    outcomes: list[Outcome] = []
    for i, case in enumerate(cases):
        try:
            outcomes.append(_call(fn, call, case))
        except NotImplementedError:
            result.waiting = len(cases) - i
            break
    if result.waiting:
        if verbose:
            print(result.report())
        return result
    expected = [_expected(case, reference, call) for case in cases]
    problems = [
        _problem(outcome, want, compare, case)
        for outcome, want, case in zip(outcomes, expected, cases, strict=True)
    ]
    failing = [i for i, problem in enumerate(problems) if problem is not None]
    result.passed = len(cases) - len(failing)
    result.failures = [f"[{cases[i].name}] {problems[i]}" for i in failing]
    if failing:
        _diagnose(
            result, cases, outcomes, expected, problems, compare, [*mistakes, RETURNS_NONE], call
        )
    if verbose:
        print(result.report())
    return result


def _expected(case: Case, reference: Callable, call: Callable | None) -> Any:
    if case.on_other_device:
        return None
    if case.expected is not None:
        return case.expected
    return call(reference, *case.args) if call else reference(*case.args)


def _diagnose(
    result: CheckResult,
    cases: Sequence[Case],
    outcomes: list[Outcome],
    expected: list[Any],
    problems: list[str | None],
    compare: Callable,
    mistakes: Sequence[Mistake],
    call: Callable | None,
) -> None:
    """Name the mistakes ``outcomes`` reproduce and write the report's lines into ``result``."""
    failing = {i for i, problem in enumerate(problems) if problem is not None}
    fits = []
    for rank, mistake in enumerate(mistakes):
        theirs = _catalogued(result.name, mistake, cases, call)
        wrong = [
            i
            for i, case in enumerate(cases)
            if _problem(theirs[i], expected[i], compare, case) is not None
        ]
        shown = [
            i for i in wrong if i in failing and _same(outcomes[i], theirs[i], compare, cases[i])
        ]
        if shown and failing.issuperset(wrong):
            fits.append((-len(shown), rank, mistake, shown, 2 * len(shown) >= len(wrong)))
    fits.sort(key=lambda fit: fit[:2])
    strong = [fit for fit in fits if fit[4]]
    fits = [strong[0], *(fit for fit in fits if fit is not strong[0])] if strong else []
    explained: set[int] = set()
    lines = []
    for _, _, mistake, shown, _ in fits:
        if explained.issuperset(shown):
            continue
        explained.update(shown)
        result.causes.append(mistake)
        lines.append(mistake.cause if not lines else f"  Also: {mistake.cause}")
        lines.append(
            "  " + _show(cases, problems, _smallest(cases, shown), "Smallest case showing it")
        )
    rest = sorted(failing - explained)
    if not lines:
        first = _smallest(cases, rest)
        error = outcomes[first].error
        if error is not None:
            lines.append(
                f'Your function raised {type(error).__name__} on the case "{cases[first].name}"'
                + (f": {_message(error)}" if _message(error) else ".")
            )
        else:
            lines.append("No mistake on our list gives these answers.")
            lines.append("  " + _show(cases, problems, first, "Smallest failing case"))
        if cases[first].hint:
            lines.append(f"  The rule this case tests: {cases[first].hint}.")
    elif rest:
        first = _smallest(cases, rest)
        lines.append(
            "  " + _show(cases, problems, first, "Not explained by the above, smallest case")
        )
    result.details = [f"{result.name}: {lines[0]}", *lines[1:]]


#: The catalogued mistakes' outcomes, by (check, mistake, case names): cases are deterministic,
#: so a check run again (a learner's next try) does not run the whole catalogue again.
_CATALOGUED: dict[tuple, list[Outcome]] = {}


def _catalogued(
    name: str, mistake: Mistake, cases: Sequence[Case], call: Callable | None
) -> list[Outcome]:
    key = (name, mistake.name, id(mistake.fn), tuple(case.name for case in cases))
    if key not in _CATALOGUED:
        _CATALOGUED[key] = [_call(mistake.fn, call, case) for case in cases]
    return _CATALOGUED[key]


def _smallest(cases: Sequence[Case], indices: Sequence[int]) -> int:
    return min(indices, key=lambda i: (_size(cases[i].args), i))


def _show(cases: Sequence[Case], problems: list[str | None], i: int, what: str) -> str:
    problem = problems[i]
    if problem.startswith(("raised", "changed", "returned")):
        problem = f"your function {problem}"
    return f'{what}, "{cases[i].name}": {problem}'
