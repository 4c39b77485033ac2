"""The training part of the GPU check: our detectors against torchvision's on the same backbone,
for a fixed number of steps, plus what a training step costs in host synchronisations and what
deterministic kernels cost.

    python -m benchmarks.gpu_training --device cuda --out training.json
    python -m benchmarks.gpu_training --device cpu --quick --out training.json   # a few steps

Pairs:

- Faster R-CNN: ``ours`` against ``tv_matched`` (torchvision's ``FasterRCNN`` with our backbone,
  anchors, proposal settings, sampling, RoIAlign and head), trained by the step mode of
  ``benchmarks/train_faster_rcnn.py`` (:func:`~benchmarks.train_faster_rcnn.train_for_steps`:
  batches of 8, AdamW 1.5e-3);
- SSD: ``ours`` (the registry's small SSD) against ``tv_matched`` (torchvision's ``SSD`` with
  our backbone, extra stages, priors and head layout, ``benchmarks/train_ssd.py``), trained the
  same way (:func:`benchmarks.budget.fit_for_steps`) with batches of 16 and AdamW 3e-3.

As in ``train_faster_rcnn.py``'s step mode, seed ``s`` fixes the initial weights, the training
images (``ShapesDataset(seed=1000 + s)``, the same batches for both models of a pair) and fit's
random stream; the learning rate warms up and follows a cosine over the steps; mAP is measured on
``ShapesDataset(--val-size, seed=1)`` after the last step. Here every run uses ``fit(amp="bf16")``
(bfloat16 autocast), DataLoader workers, and a time cap (``--cap`` seconds: a run that reaches it
stops there and says so). Steps per second: one over the median step time.

Then, on CUDA: the host synchronisations of one training step of every registered detector
(``torch.cuda.set_sync_debug_mode``: each operation that makes the CPU wait for the GPU, counted
by source line), and the cost of ``fit(deterministic=True)`` (steps per second with and without,
and whether two deterministic runs end with the same weights bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch

from benchmarks import train_faster_rcnn, train_ssd
from benchmarks.budget import fit_for_steps
from tutorial_det.data import PlatesDataset, ShapesDataset, detection_collate
from tutorial_det.models import build_model
from tutorial_det.runtime import pick_device
from tutorial_det.training.batches import images_to, targets_to
from tutorial_det.training.loop import CUBLAS_DETERMINISTIC

NUM_CLASSES = 4  # background + circle, square, triangle
SSD_BATCH, SSD_LR = 16, 3e-3


def train_pair_member(family: str, name: str, seed: int, steps: int, args, device, cap: float):
    """One run: ``{"steps", "capped", "steps_per_s", "map_50", "map"}``."""
    options = {"max_seconds": cap, "num_workers": args.workers}
    if family == "faster_rcnn":
        recipe = train_faster_rcnn.Recipe(val_size=args.val_size)
        run = train_faster_rcnn.train_for_steps(
            name, seed, recipe, steps=steps, eval_every=steps, device=device, amp="bf16",
            threads=None, **options,
        )  # fmt: skip
        done, s_per_step, (_, map_50, map_all) = run.steps, run.s_per_step, run.evaluations[-1]
    else:
        model = train_ssd.build("ssd" if name == "ours" else "tv_matched", seed)
        history = fit_for_steps(
            model,
            ShapesDataset(steps * SSD_BATCH, seed=train_faster_rcnn.TRAIN_SEED + seed),
            ShapesDataset(args.val_size, seed=train_faster_rcnn.VAL_SEED),
            steps=steps, lr=SSD_LR, batch_size=SSD_BATCH, eval_every=steps, seed=seed,
            device=device, amp="bf16", **options,
        )  # fmt: skip
        done, s_per_step = len(history.step), _median_step(history)
        map_50, map_all = history.metrics[-1]["map_50"], history.metrics[-1]["map"]
    return {
        "steps": done,
        "capped": done < steps,
        "steps_per_s": 1 / s_per_step if s_per_step else None,
        "map_50": map_50,
        "map": map_all,
    }


def _median_step(history) -> float | None:
    times = [b - a for a, b in zip(history.wall_time, history.wall_time[1:], strict=False)]
    return statistics.median(times) if times else None


def compare_pairs(args, device: torch.device, deadline: float) -> list[dict]:
    """Every pair, every seed: one row per (family, model, seed), printed as it ends."""
    rows = []
    runs = [
        (f, n, s)
        for s in args.seeds
        for f in ("faster_rcnn", "ssd")
        for n in ("ours", "tv_matched")
    ]
    for i, (family, name, seed) in enumerate(runs):
        cap = max(1.0, min(args.cap, (deadline - time.perf_counter()) / (len(runs) - i)))
        row = {"family": family, "model": name, "seed": seed}
        try:
            row.update(train_pair_member(family, name, seed, args.steps[family], args, device, cap))
        except Exception:  # noqa: BLE001  (reported, the next run goes on)
            row["error"] = traceback.format_exc()[-3000:]
        print(json.dumps({k: v for k, v in row.items() if k != "error"}), flush=True)
        rows.append(row)
    return rows


def step_batch(name: str, device: torch.device):
    """A fresh registered detector and a batch of 8 of its images, on ``device``."""
    data = PlatesDataset(8, seed=0) if name == "wpod" else ShapesDataset(8, seed=0)
    images, targets = detection_collate([data[i] for i in range(len(data))])
    torch.manual_seed(0)
    model = build_model(name, 2 if name == "wpod" else NUM_CLASSES).to(device).train()
    return model, images_to(images, device), targets_to(targets, device)


def host_syncs(device: torch.device) -> dict:
    """Per registered detector: the operations of one training step (forward and backward,
    after one warm-up step) that made the CPU wait for the GPU, by source line."""
    out = {}
    for name in ("faster_rcnn", "ssd", "wpod"):
        model, images, targets = step_batch(name, device)
        sum(model(images, targets).values()).backward()  # warm-up: caches, cuDNN plans
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                sum(model(images, targets).values()).backward()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        places = Counter(
            f"{Path(w.filename).name}:{w.lineno}"
            for w in caught
            if "synchronizing" in str(w.message)
        )
        out[name] = {
            "images": len(images),
            "total": sum(places.values()),
            **dict(places.most_common()),
        }
    return out


def build_ours(family: str):
    """Our model of the ``family`` pair (weights of seed 0) and its batch size."""
    if family == "faster_rcnn":
        return train_faster_rcnn.build("ours", train_faster_rcnn.Recipe()), 8
    return train_ssd.build("ssd"), SSD_BATCH


def determinism(args, device: torch.device) -> dict:
    """Per detector of the pairs: steps per second of ``--determinism-steps`` steps with and
    without deterministic kernels, and whether two deterministic runs end bit for bit equal."""
    out = {}
    for family in ("faster_rcnn", "ssd"):
        row = {}
        try:
            finals = []
            for deterministic in (False, True, True):
                model, batch = build_ours(family)
                history = fit_for_steps(
                    model,
                    ShapesDataset(args.determinism_steps * batch, seed=train_faster_rcnn.TRAIN_SEED),
                    ShapesDataset(1, seed=train_faster_rcnn.VAL_SEED),
                    steps=args.determinism_steps, lr=1e-3, batch_size=batch,
                    eval_every=args.determinism_steps, seed=0, device=device, amp="bf16",
                    deterministic=deterministic, num_workers=args.workers,
                )  # fmt: skip
                step = _median_step(history)
                key = "deterministic_steps_per_s" if deterministic else "steps_per_s"
                row[key] = 1 / step if step else None
                if deterministic:
                    finals.append({k: v.cpu() for k, v in model.state_dict().items()})
            row["bit_identical"] = all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])
        except Exception:  # noqa: BLE001
            row["error"] = traceback.format_exc()[-3000:]
        out[family] = row
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--quick", action="store_true", help="a few steps of everything")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--frcnn-steps", type=int, default=150)
    parser.add_argument("--ssd-steps", type=int, default=200)
    parser.add_argument("--determinism-steps", type=int, default=15)
    parser.add_argument("--cap", type=float, default=20.0, help="seconds per training run, at most")
    parser.add_argument("--budget", type=float, default=80.0, help="seconds for all the runs")
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--workers", type=int, default=6, help="DataLoader worker processes")
    args = parser.parse_args(argv)
    if args.quick:
        args.frcnn_steps, args.ssd_steps, args.determinism_steps = 3, 3, 2
        args.val_size, args.workers, args.cap, args.budget = 10, 0, 600.0, 600.0
    args.steps = {"faster_rcnn": args.frcnn_steps, "ssd": args.ssd_steps}
    return args


def main(argv: list[str]) -> int:
    # read by PyTorch at the first matrix product on the GPU, which the runs before the
    # deterministic ones make (fit(deterministic=True)'s docstring)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    args = parse_args(argv)
    start = time.perf_counter()
    device = pick_device(args.device)
    amp = "bf16"
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "torch": torch.__version__,
        "amp": amp,
        "steps": args.steps,
        "seeds": args.seeds,
        "val_size": args.val_size,
        "workers": args.workers,
    }
    out = Path(args.out)
    report["pairs"] = compare_pairs(args, device, start + args.budget)
    out.write_text(json.dumps(report, indent=1))
    if device.type == "cuda":
        report["host_syncs"] = host_syncs(device)
        out.write_text(json.dumps(report, indent=1))
    report["determinism"] = determinism(args, device)
    report["seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(report, indent=1))
    return 0 if not any("error" in row for row in report["pairs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
