"""Run the benchmark scripts in one process and print one Markdown table.

python -m benchmarks            # every benchmarks/bench_*.py
python -m benchmarks boxes nms  # only bench_boxes.py and bench_nms.py
"""

from __future__ import annotations

import importlib
import platform
import sys
from pathlib import Path

import torch

from benchmarks.common import markdown_table


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    topics = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    rows = []
    for topic in topics:
        module = importlib.import_module(f"benchmarks.bench_{topic}")
        print(f"running bench_{topic} ...", file=sys.stderr, flush=True)
        rows += module.run()
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
