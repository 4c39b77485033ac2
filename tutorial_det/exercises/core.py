"""The checking mechanism behind every exercise.

A check runs a learner's function on a list of :class:`Case` s (known answers, edge cases, random
inputs), compares each result with the reference implementation's, and prints which case failed
with what was expected and what came back, plus a hint. It returns a :class:`CheckResult`, truthy
when every case passed, so tests and notebooks can assert on it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Case:
    """One input to a learner's function.

    Attributes:
        name: what the case is about, shown when it fails ("zero-area box").
        args: positional arguments (deep-copied per call, so a function that writes into its
            inputs cannot spoil the reference's run).
        hint: what usually causes a failure here.
        expected: the known answer; when None the reference implementation supplies it.
    """

    name: str
    args: tuple
    hint: str = ""
    expected: Any = None


@dataclass
class CheckResult:
    """How a learner's function did: counts and one message per failed case."""

    name: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    waiting: int = 0  # cases not run because the function raised NotImplementedError

    def __bool__(self) -> bool:
        return not self.failures and not self.waiting

    @property
    def total(self) -> int:
        return self.passed + len(self.failures)

    def report(self) -> str:
        if self.waiting:
            return f"{self.name}: not implemented yet ({self.waiting} cases waiting for your code)."
        if not self.failures:
            return f"{self.name}: all {self.total} cases pass."
        lines = [f"{self.name}: {self.passed} of {self.total} cases pass."]
        lines += [f"  FAIL {msg}" for msg in self.failures]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, passed={self.passed}, failed={len(self.failures)})"

    def _ipython_display_(self) -> None:
        """The report was printed when the check ran: a notebook shows nothing more."""


def compare_tensors(got: Any, expected: torch.Tensor, atol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``expected`` (shape, no NaN, values within ``atol``), else why not."""
    try:
        got = torch.as_tensor(got)
    except (TypeError, ValueError, RuntimeError) as error:
        return f"returned {type(got).__name__}, which is not a tensor or array ({error})"
    if tuple(got.shape) != tuple(expected.shape):
        return f"expected shape {list(expected.shape)}, got shape {list(got.shape)}"
    if got.numel() == 0:
        return None
    if expected.dtype == torch.bool or not expected.is_floating_point():
        diff = got.to(expected.dtype) != expected
        if bool(diff.any()):
            i = _first(diff)
            return f"expected {_fmt(expected)}, got {_fmt(got)} (first difference at index {i})"
        return None
    got = got.to(torch.float64)
    expected = expected.to(torch.float64)
    if bool(torch.isnan(got).any()) and not bool(torch.isnan(expected).any()):
        return f"got NaN: {_fmt(got)} (expected {_fmt(expected)})"
    close = torch.isclose(got, expected, atol=atol, rtol=1e-4, equal_nan=True)
    if not bool(close.all()):
        i = _first(~close)
        return (
            f"expected {_fmt(expected)}, got {_fmt(got)} "
            f"(first difference at index {i}: expected {expected[i].item():.6g}, "
            f"got {got[i].item():.6g})"
        )
    return None


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in mask.nonzero()[0])


def _fmt(t: torch.Tensor, limit: int = 6) -> str:
    flat = t.flatten()
    if flat.numel() <= limit:
        body = ", ".join(f"{v:.4g}" for v in flat.tolist())
    else:
        body = ", ".join(f"{v:.4g}" for v in flat[:limit].tolist()) + ", ..."
    return f"shape {list(t.shape)} [{body}]"


def run_check(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    reference: Callable,
    compare: Callable[[Any, Any], str | None] = compare_tensors,
    verbose: bool = True,
) -> CheckResult:
    """Run ``fn`` on every case, compare with ``case.expected`` or ``reference(*case.args)``.

    An exception raised by ``fn`` counts as a failed case (its type and message are reported);
    the remaining cases still run. ``NotImplementedError`` (an exercise not attempted yet) stops the
    check with one line instead of a failure per case.
    """
    result = CheckResult(name)
    for i, case in enumerate(cases):
        expected = case.expected if case.expected is not None else reference(*case.args)
        try:
            got = fn(*copy.deepcopy(case.args))
        except NotImplementedError:
            result.waiting = len(cases) - i
            break
        except Exception as error:  # a learner's bug of any kind is a failed case, not a crash
            problem = f"raised {type(error).__name__}: {error}"
        else:
            problem = compare(got, expected)
        if problem is None:
            result.passed += 1
        else:
            hint = f"\n       hint: {case.hint}" if case.hint else ""
            result.failures.append(f"[{case.name}] {problem}{hint}")
    if verbose:
        print(result.report())
    return result
