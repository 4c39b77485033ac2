"""check_roi_pool: right answers written differently pass; the walkthrough's RoI pooling is told
both of its faults (truncation, and crops that can be empty)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from tutorial_det.exercises import check_roi_pool
from tutorial_det.roi import roi_pool


def roi_pool_loop(features, rois, output_size, spatial_scale):
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    _, channels, height, width = features.shape
    out = features.new_zeros(len(rois), channels, out_h, out_w)

    def rounded(v):  # halves away from zero
        return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)

    for k, (image, *corners) in enumerate(rois.tolist()):
        x1, y1, x2, y2 = (rounded(v * spatial_scale) for v in corners)
        bin_h = torch.tensor(float(max(y2 - y1 + 1, 1))) / out_h
        bin_w = torch.tensor(float(max(x2 - x1 + 1, 1))) / out_w
        for i in range(out_h):
            top = min(max(y1 + int(torch.floor(i * bin_h)), 0), height)
            bottom = min(max(y1 + int(torch.ceil((i + 1) * bin_h)), 0), height)
            for j in range(out_w):
                left = min(max(x1 + int(torch.floor(j * bin_w)), 0), width)
                right = min(max(x1 + int(torch.ceil((j + 1) * bin_w)), 0), width)
                if bottom > top and right > left:
                    out[k, :, i, j] = features[int(image), :, top:bottom, left:right].amax(
                        dim=(1, 2)
                    )
    return out


@pytest.mark.parametrize("fn", [roi_pool, torchvision.ops.roi_pool, roi_pool_loop])
def test_right_answers_pass(fn):
    assert check_roi_pool(fn, verbose=False)


def test_the_seed_notebooks_roi_pooling_is_told_truncation_and_crops():
    def roi_pool_walkthrough(features, rois, output_size, spatial_scale):  # lesson 05's
        pool = nn.AdaptiveMaxPool2d(output_size)
        scaled = rois.clone()
        scaled[:, 1:] = scaled[:, 1:] * spatial_scale
        outputs = []
        for index, x1, y1, x2, y2 in scaled.long().tolist():
            outputs.append(pool(features[index : index + 1, :, y1 : y2 + 1, x1 : x2 + 1]))
        return torch.cat(outputs)

    result = check_roi_pool(roi_pool_walkthrough, verbose=False)
    assert [m.name for m in result.causes] == ["roi_pool_truncates", "roi_pool_crops"]
