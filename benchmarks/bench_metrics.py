"""mean_average_precision vs pycocotools' COCOeval (loadRes + evaluate + accumulate + summarize)
on 5000 images of synthetic detections: 3 classes, about 3 objects and 20 detections per image.

Each side takes seconds, so each is timed twice (the better run counts) instead of with
torch.utils.benchmark's autorange. pycocotools' time goes in the note, with the ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from benchmarks.common import Row
from tutorial_det.metrics import mean_average_precision, pycocotools_eval, to_coco


def synthetic_detections(num_images: int = 5000, seed: int = 0):
    """Objects of every size (1 to 5 per image, 3 classes); per object 0 to 2 jittered
    detections scored 0.3 to 1, then spurious ones scored 0 to 0.7 up to 20 per image; one label
    in ten wrong. Generated in one go and split per image."""
    g = torch.Generator().manual_seed(seed)
    n_gt = torch.randint(1, 6, (num_images,), generator=g)
    total = int(n_gt.sum())
    xy = torch.rand(total, 2, generator=g) * 500
    wh = torch.exp(torch.rand(total, 2, generator=g) * 4 + 1.5)  # 4.5 to 245 pixels
    gt = torch.cat((xy, xy + wh), 1).round()
    gt_labels = torch.randint(1, 4, (total,), generator=g)
    copies = torch.randint(0, 3, (total,), generator=g)
    near = gt.repeat_interleave(copies, 0)
    size = (near[:, 2:] - near[:, :2]).repeat(1, 2)
    near = (near + torch.randn(near.shape, generator=g) * 0.1 * size).round()
    near_labels = gt_labels.repeat_interleave(copies)
    near_image = torch.arange(num_images).repeat_interleave(n_gt).repeat_interleave(copies)
    n_near = torch.bincount(near_image, minlength=num_images)
    n_far = 20 - n_near
    far_xy = torch.rand(int(n_far.sum()), 2, generator=g) * 500
    far = torch.cat((far_xy, far_xy + torch.rand(len(far_xy), 2, generator=g) * 150 + 2), 1).round()
    far_labels = torch.randint(1, 4, (len(far),), generator=g)
    near_scores = torch.rand(len(near), generator=g) * 0.7 + 0.3
    far_scores = torch.rand(len(far), generator=g) * 0.7
    near[:, 2:] = torch.maximum(near[:, 2:], near[:, :2])
    wrong = torch.rand(len(near_labels), generator=g) < 0.1
    near_labels[wrong] = torch.randint(1, 4, (int(wrong.sum()),), generator=g)
    preds, targets = [], []
    parts = zip(
        near.split(n_near.tolist()),
        near_scores.split(n_near.tolist()),
        near_labels.split(n_near.tolist()),
        far.split(n_far.tolist()),
        far_scores.split(n_far.tolist()),
        far_labels.split(n_far.tolist()),
        gt.split(n_gt.tolist()),
        gt_labels.split(n_gt.tolist()),
        strict=True,
    )
    for nb, ns, nl, fb, fs, fl, gb, gl in parts:
        preds.append(
            {
                "boxes": torch.cat((nb, fb)),
                "scores": torch.cat((ns, fs)),
                "labels": torch.cat((nl, fl)),
            }
        )
        targets.append({"boxes": gb, "labels": gl})
    return preds, targets


def pycocotools_map(dataset: dict, detections: list[dict]) -> float:
    return float(pycocotools_eval(dataset, detections).stats[0])


def best_of(fn: Callable[[], object], repeats: int = 2) -> tuple[float, object]:
    """(fastest wall time in ms, last result) over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times), result


def run() -> list[Row]:
    preds, targets = synthetic_detections()
    name = f"mean_average_precision {len(preds)} images, {sum(len(p['boxes']) for p in preds)} detections"
    ours_ms, ours = best_of(lambda: mean_average_precision(preds, targets))
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        return [Row(name, ours_ms, note="pycocotools not installed")]
    # pycocotools writes into the json objects it is given: a fresh pair per run, built before
    # the clock starts.
    inputs = [to_coco(preds, targets) for _ in range(2)]
    coco_ms, coco_map = best_of(lambda: pycocotools_map(*inputs.pop()))
    assert abs(ours["map"].item() - coco_map) < 1e-4, (ours["map"].item(), coco_map)
    note = f"pycocotools: {coco_ms:.0f} ms (ours/pycocotools = {ours_ms / coco_ms:.2f}); map {coco_map:.4f} both"
    return [Row(name, ours_ms, note=note)]
