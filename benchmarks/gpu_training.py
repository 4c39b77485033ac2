"""The training part of the GPU check: our detectors against torchvision's on the same backbone,
for a fixed number of steps, plus what a training step costs in host synchronisations and what
deterministic kernels cost.

    python -m benchmarks.gpu_training --device cuda --out training.json
    python -m benchmarks.gpu_training --device cpu --quick --out training.json   # a few steps

Pairs (the models of ``benchmarks/train_faster_rcnn.py`` and ``benchmarks/train_ssd.py``):

- Faster R-CNN: ``ours`` against ``tv_matched`` (torchvision's ``FasterRCNN`` with our backbone,
  anchors, proposal counts, sampling, RoIAlign and head), batches of 8, AdamW 1.5e-3;
- SSD: ``ssd`` against ``tv_matched`` (torchvision's ``SSD`` with our backbone, extra stages,
  priors and head layout), batches of 16, AdamW 3e-3.

Each model starts from the weights of seed 0 and, for each of ``--seeds``, trains a fixed number
of steps (per pair) on ``ShapesDataset(seed=2 * seed)`` (``fit``'s seed is ``seed``) with the
learning rate warming up and following a cosine over those steps (:func:`budget.step_cosine`),
gradient clipping at 10, ``fit(amp=...)`` (bfloat16 autocast on CUDA), DataLoader workers; then
mAP on ``ShapesDataset(--val-size, seed=1)``. A run that reaches ``--cap`` seconds stops there
and says so. Steps per second: the median step time after the first five steps.

Then, on CUDA: the host synchronisations of one training step of every registered detector
(``torch.cuda.set_sync_debug_mode``: each operation that makes the CPU wait for the GPU, counted
by source line), and the cost of ``fit(deterministic=True)`` (steps per second with and without,
and whether two deterministic runs end with the same weights bit for bit).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from benchmarks import train_faster_rcnn, train_ssd
from benchmarks.budget import step_cosine
from tutorial_det.data import PlatesDataset, ShapesDataset, detection_collate
from tutorial_det.models import build_model
from tutorial_det.runtime import pick_device
from tutorial_det.training import evaluate_map, fit
from tutorial_det.training.batches import images_to, targets_to

NUM_CLASSES = 4  # background + circle, square, triangle
PAIRS = {
    "faster_rcnn": {"batch_size": 8, "lr": 1.5e-3},
    "ssd": {"batch_size": 16, "lr": 3e-3},
}


def build(family: str, name: str) -> nn.Module:
    """The model ``name`` ("ours" or "tv_matched") of the ``family`` pair, its weights seeded
    with 0 (as ``benchmarks/train_faster_rcnn.py`` builds them)."""
    torch.manual_seed(0)
    if family == "faster_rcnn":
        return train_faster_rcnn.build(name, train_faster_rcnn.parse_args([]))
    return train_ssd.build("ssd" if name == "ours" else "tv_matched")


def train_fixed_steps(
    model: nn.Module,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    amp: str | bool,
    seed: int,
    cap: float,
    workers: int,
    val_size: int,
    deterministic: bool = False,
    evaluate: bool = True,
) -> dict:
    """Train ``model`` for ``steps`` steps (or ``cap`` seconds, whichever first) and evaluate."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_cosine(steps))
    history = fit(
        model,
        ShapesDataset(1_000_000, seed=2 * seed),  # never seed 1, the held-out images
        optimizer=optimizer,
        scheduler=scheduler,
        max_steps=steps,
        max_seconds=cap,
        batch_size=batch_size,
        shuffle=False,  # a million distinct images: the order does not matter
        grad_clip_norm=10.0,
        device=device,
        amp=amp,
        seed=seed,
        num_workers=workers,
        deterministic=deterministic,
        log_every=None,
        progress=False,
    )
    times = [b - a for a, b in zip(history.wall_time, history.wall_time[1:], strict=False)]
    result = {
        "steps": len(history.step),
        "capped": len(history.step) < steps,
        "steps_per_s": 1 / statistics.median(times[5:] or times) if times else None,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "final_loss": history.loss[-1],
    }
    if evaluate:
        metrics = evaluate_map(model, ShapesDataset(val_size, seed=1), batch_size=50)
        result.update(map_50=metrics["map_50"], map=metrics["map"])
    return result


def compare_pairs(args, device: torch.device, amp, deadline: float) -> list[dict]:
    """Every pair, every seed: one row per (family, model, seed)."""
    rows = []
    runs = [(f, n, s) for s in args.seeds for f in PAIRS for n in ("ours", "tv_matched")]
    for i, (family, name, seed) in enumerate(runs):
        cap = max(1.0, min(args.cap, (deadline - time.perf_counter()) / (len(runs) - i)))
        row = {"family": family, "model": name, "seed": seed}
        try:
            model = build(family, name)
            row.update(
                train_fixed_steps(
                    model,
                    steps=args.steps[family],
                    device=device,
                    amp=amp,
                    seed=seed,
                    cap=cap,
                    workers=args.workers,
                    val_size=args.val_size,
                    **PAIRS[family],
                )
            )
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


def determinism(args, device: torch.device, amp) -> dict:
    """Steps per second with and without deterministic kernels, and whether two deterministic
    runs of each detector end bit for bit equal."""
    out = {}
    for family in PAIRS:
        row = {}
        try:
            finals = []
            for deterministic in (False, True, True):
                model = build(family, "ours")
                result = train_fixed_steps(
                    model,
                    steps=args.determinism_steps,
                    device=device,
                    amp=amp,
                    seed=0,
                    cap=args.cap,
                    workers=args.workers,
                    val_size=args.val_size,
                    deterministic=deterministic,
                    evaluate=False,
                    **PAIRS[family],
                )
                key = "deterministic_steps_per_s" if deterministic else "steps_per_s"
                row[key] = result["steps_per_s"]
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
    parser.add_argument("--determinism-steps", type=int, default=25)
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
    report["pairs"] = compare_pairs(args, device, amp, start + args.budget)
    out.write_text(json.dumps(report, indent=1))
    if device.type == "cuda":
        report["host_syncs"] = host_syncs(device)
        out.write_text(json.dumps(report, indent=1))
    report["determinism"] = determinism(args, device, amp)
    report["seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(report, indent=1))
    return 0 if not any("error" in row for row in report["pairs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
