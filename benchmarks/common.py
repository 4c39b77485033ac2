"""Shared timing and table code for the benchmark scripts.

Each ``benchmarks/bench_<topic>.py`` defines ``run() -> list[Row]``; ``python -m benchmarks``
runs them all (or the topics named on the command line) in one process and prints one table, so
every ratio compares timings taken in the same run on the same machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils import benchmark


def time_ms(fn: Callable[[], object], min_run_time: float = 0.5) -> float:
    """Median wall time of ``fn()`` in milliseconds (torch.utils.benchmark, repeated until
    ``min_run_time`` seconds have been spent)."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def interleaved_ms(
    fns: Sequence[Callable[[], object]], rounds: int = 3, min_run_time: float = 0.2
) -> list[float]:
    """Median wall time in milliseconds of each of ``fns``, timed in turn ``rounds`` times
    (ours, torchvision, ours again, ...): on a shared machine, a change of load then slows all
    of them alike instead of the one that happened to run during it."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, fn_times in zip(fns, times, strict=True):
            fn_times.append(time_ms(fn, min_run_time))
    return [statistics.median(fn_times) for fn_times in times]


def once_ms(fn: Callable[[], object]) -> float:
    """Wall time of one call of ``fn`` in milliseconds, for calls that take many seconds."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


@dataclass
class Row:
    """One line of the table: our time, and the same work done by torchvision and by a loop."""

    name: str
    ours_ms: float
    torchvision_ms: float | None = None
    naive_ms: float | None = None
    note: str = ""

    def cells(self) -> list[str]:
        def ms(v: float | None) -> str:
            return "" if v is None else f"{v:.3f}"

        vs_tv = "" if self.torchvision_ms is None else f"{self.ours_ms / self.torchvision_ms:.2f}x"
        vs_naive = "" if self.naive_ms is None else f"{self.naive_ms / self.ours_ms:.0f}x faster"
        return [
            self.name,
            ms(self.ours_ms),
            ms(self.torchvision_ms),
            vs_tv,
            ms(self.naive_ms),
            vs_naive,
            self.note,
        ]


HEADER = ["benchmark", "ours (ms)", "torchvision (ms)", "ours / tv", "loop (ms)", "vs loop", "note"]


def markdown_table(rows: list[Row]) -> str:
    """The rows as a Markdown table (the README shows it as printed)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
