"""Shared timing and table code for the benchmark scripts.

Each ``benchmarks/bench_<topic>.py`` defines ``run() -> list[Row]``; ``python -m benchmarks``
runs them all (or the topics named on the command line) in one process and prints one table, so
every ratio compares timings taken in the same run on the same machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils import benchmark


def time_ms(fn: Callable[[], object], min_run_time: float = 0.5) -> float:
    """Median wall time of ``fn()`` in milliseconds (torch.utils.benchmark, repeated until
    ``min_run_time`` seconds have been spent)."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


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
