"""Train WPOD-Net on synthetic plates from the threaded sample pool, then evaluate on held-out plates.

    python -m benchmarks.train_wpod                      # the reference run: 400 steps
    python -m benchmarks.train_wpod --max-steps 200      # shorter
    python -m benchmarks.train_wpod --eval-every 100     # also print the held-out curve

The reference run trains the half-width network (batch 16, AdamW 2e-3 with a cosine decay over
the 400 steps) with one torch thread, the pool's worker rendering on the other core: about 0.2 s of
CPU per step, 80 to 100 s on a quiet two-core machine. ``--max-seconds`` (default 300) stops it
earlier on a busy one; the decay is then cut short.

Plates: ``PlatesDataset``'s defaults (128 x 128 images, one plate 32-104 pixels wide, yaw up to
45 degrees, pitch 30, roll 15, textured backgrounds with clutter). Training plates are rendered by
the pool's worker threads (streams seeded by ``--seed``); the held-out set is
``PlatesDataset(--eval-images, seed=1000)``, a different stream. A plate counts as detected when a
prediction reaches quadrilateral IoU >= 0.5 with it (greedy matching by score); the corner error is
the mean distance of the four corners in pixels, over detected plates.

Prints the training time, steps, the median wall time per step, the training thread's CPU time per
step (what a step costs on a core of its own), and the held-out numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tutorial_det.data.plates import PlatesDataset
from tutorial_det.runtime import seed_everything
from tutorial_det.training import evaluate
from tutorial_det.wpod import build_wpod, evaluate_plates, train_on_plates

HELD_OUT_SEED = 1000


def held_out_score(model, plates: PlatesDataset) -> dict[str, float]:
    """Detection rate and corner error of ``model`` on ``plates``."""
    predictions, targets = evaluate(model, plates, batch_size=25, device="cpu")
    return evaluate_plates(predictions, targets, iou_threshold=0.5)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=float, default=0.5, help="channel multiplier")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument(
        "--max-steps", type=int, default=400, help="steps (also the LR decay's length)"
    )
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=None, help="steps between evaluations")
    parser.add_argument("--workers", type=int, default=1, help="pool worker threads")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (see below)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # One torch thread: on a 2-core machine the pool's worker thread keeps the other core busy
    # rendering plates, and a second torch thread would only fight it for that core.
    torch.set_num_threads(args.threads)

    seed_everything(args.seed)
    model = build_wpod(2, width=args.width)
    held_out = PlatesDataset(args.eval_images, seed=HELD_OUT_SEED)
    eval_fn = None
    if args.eval_every:
        # A fixed-size slice keeps the in-training evaluations short.
        quick = PlatesDataset(min(100, args.eval_images), seed=HELD_OUT_SEED)

        def eval_fn(m):
            return {k: v for k, v in held_out_score(m, quick).items() if k != "images"}

    start, start_cpu = time.perf_counter(), time.thread_time()
    history = train_on_plates(
        model,
        PlatesDataset(1),
        batch_size=args.batch_size,
        lr=args.lr,
        max_steps=args.max_steps,
        max_seconds=args.max_seconds,
        num_workers=args.workers,
        seed=args.seed,
        eval_fn=eval_fn,
        eval_every=args.eval_every,
        log_every=50,
        progress=False,
        device="cpu",
    )
    train_seconds = time.perf_counter() - start
    # With one torch thread every operator runs on this thread, so its CPU time per step is what a
    # step costs on a core of its own (what a quiet machine's wall clock would show).
    train_cpu_seconds = time.thread_time() - start_cpu
    steps = len(history.step)
    step_times = [b - a for a, b in zip(history.wall_time, history.wall_time[1:], strict=False)]
    for record in history.metrics:
        print(
            f"  step {record['step']:5d}: detection rate {record['detection_rate']:.3f}, "
            f"corner error {record['corner_error_px']:.2f} px"
        )
    start = time.perf_counter()
    score = held_out_score(model, held_out)
    eval_seconds = time.perf_counter() - start
    result = {
        "width": args.width,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": train_seconds,
        "steps": steps,
        "median_step_ms": 1e3 * statistics.median(step_times) if step_times else float("nan"),
        "cpu_ms_per_step": 1e3 * train_cpu_seconds / steps if steps else float("nan"),
        "final_loss": statistics.fmean(history.loss[-20:]) if history.loss else float("nan"),
        "eval_seconds": eval_seconds,
        **score,
    }
    print(
        f"WPOD-Net width {args.width} ({result['parameters']} parameters), batch "
        f"{args.batch_size}, {torch.get_num_threads()} threads: {steps} steps in "
        f"{train_seconds:.0f} s (median {result['median_step_ms']:.0f} ms per step; training "
        f"thread CPU {result['cpu_ms_per_step']:.0f} ms per step), final loss "
        f"{result['final_loss']:.2f}"
    )
    print(
        f"held-out: {score['detected']}/{score['plates']} plates detected at quad IoU >= 0.5 "
        f"({100 * score['detection_rate']:.1f}%), {score['false_positives']} false positives, "
        f"mean corner error {score['corner_error_px']:.2f} px (eval {eval_seconds:.1f} s)"
    )
    return result


if __name__ == "__main__":
    main()
