"""RoI max pooling on the RoI head's sizes: 128 proposals on the 512 x 50 x 50 stride-16 map of
an 800 x 800 image, pooled to 7 x 7: ``tutorial_det.roi_pool.roi_pool`` vs
``torchvision.ops.roi_pool`` (C++) vs the loop over RoIs and bins
(``tutorial_det.naive.roi_pool_loop``); forward alone, and forward plus backward (the same
numbers and gradients, checked), ours and torchvision's timed in turn in the same run."""

from __future__ import annotations

from functools import partial

import torch
import torchvision

from benchmarks.bench_nms import proposals
from benchmarks.common import Row, interleaved_ms, time_ms
from tutorial_det.naive import roi_pool_loop
from tutorial_det.roi_pool import roi_pool


def run() -> list[Row]:
    g = torch.Generator().manual_seed(0)
    features = torch.randn(1, 512, 50, 50, generator=g).relu()
    rois = torch.cat((torch.zeros(128, 1), proposals(128, g)), dim=1)
    scale = 1 / 16

    expected = torchvision.ops.roi_pool(features, rois, 7, scale)
    assert torch.equal(roi_pool(features, rois, 7, scale), expected)
    assert torch.equal(roi_pool_loop(features, rois, 7, scale), expected)

    leaf = features.clone().requires_grad_()
    upstream = torch.randn(expected.shape, generator=g)

    def backward(pool) -> None:
        leaf.grad = None
        pool(leaf, rois, 7, scale).backward(upstream)

    backward(roi_pool)
    ours_grad = leaf.grad
    backward(torchvision.ops.roi_pool)
    assert torch.equal(ours_grad, leaf.grad)

    forward = interleaved_ms(
        [
            partial(roi_pool, features, rois, 7, scale),
            partial(torchvision.ops.roi_pool, features, rois, 7, scale),
        ]
    )
    both = interleaved_ms(
        [partial(backward, roi_pool), partial(backward, torchvision.ops.roi_pool)]
    )
    loop = time_ms(partial(roi_pool_loop, features, rois, 7, scale), min_run_time=1.0)
    return [
        Row(
            "roi_pool 128 RoIs, 512x50x50 -> 7x7",
            *forward,
            loop,
            note="no gradient wanted: each bin's maximum only",
        ),
        Row(
            "roi_pool forward + backward, same sizes",
            *both,
            note="also each bin's first arg-max cell",
        ),
    ]
