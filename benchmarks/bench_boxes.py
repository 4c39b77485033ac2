"""box_iou: ours vs torchvision.ops.box_iou vs the seed-style double loop, on the lesson's sizes
(the 8940 inside anchors of an 800 x 800 image against 2 ground truths) and on a square case,
timed in turn in the same run; and on 10 000 x 10 000 boxes, the peak memory of one call in a
fresh process of its own (``python -m benchmarks.bench_boxes peak ours|torchvision``)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from functools import partial

import torch
import torchvision

from benchmarks.common import Row, interleaved_ms, time_ms
from tutorial_det.boxes import box_iou
from tutorial_det.naive import box_iou_loop

#: Boxes on each side of the memory benchmark: a 10 000 x 10 000 float32 result is 0.4 GB.
LARGE = 10_000


def _boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator) * 700
    wh = torch.rand(n, 2, generator=generator) * 300 + 1
    return torch.cat((xy, xy + wh), dim=1)


def _peak(which: str) -> dict[str, float]:
    """One ``LARGE`` x ``LARGE`` box_iou call (ours or torchvision's) in this process: its wall
    time, the result's size and the peak resident memory above what the process held before
    the call (the kernel's high-water mark, ``ru_maxrss``: tracemalloc does not see torch's
    allocations), in bytes."""
    g = torch.Generator().manual_seed(0)
    a, b = _boxes(LARGE, g), _boxes(LARGE, g)
    fn = box_iou if which == "ours" else torchvision.ops.box_iou
    with open("/proc/self/statm") as statm:  # resident pages now
        before = int(statm.read().split()[1]) * resource.getpagesize()
    start = time.perf_counter()
    iou = fn(a, b)
    ms = (time.perf_counter() - start) * 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"ms": ms, "peak": peak, "result": iou.numel() * iou.element_size()}


def _peak_in_fresh_process(which: str) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.bench_boxes", "peak", which]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> list[Row]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for n, m, with_loop in ((8940, 2, True), (2000, 2000, False)):
        a, b = _boxes(n, g), _boxes(m, g)
        assert torch.equal(box_iou(a, b), torchvision.ops.box_iou(a, b))
        ours, tv = interleaved_ms([partial(box_iou, a, b), partial(torchvision.ops.box_iou, a, b)])
        naive = time_ms(partial(box_iou_loop, a, b), min_run_time=0.2) if with_loop else None
        rows.append(Row(f"box_iou {n} x {m}", ours, tv, naive))
    ours, tv = _peak_in_fresh_process("ours"), _peak_in_fresh_process("torchvision")
    gb = 1e9
    note = (
        f"peak memory {ours['peak'] / gb:.2f} GB = {ours['peak'] / ours['result']:.2f}x the "
        f"{ours['result'] / gb:.2f} GB result (torchvision {tv['peak'] / gb:.2f} GB, "
        f"{tv['peak'] / tv['result']:.1f}x): max RSS of a fresh process, one call each"
    )
    rows.append(Row(f"box_iou {LARGE} x {LARGE}", ours["ms"], tv["ms"], note=note))
    return rows


if __name__ == "__main__" and sys.argv[1:2] == ["peak"]:
    print(json.dumps(_peak(sys.argv[2])))
