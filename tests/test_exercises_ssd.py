"""check_match_priors and check_hard_negative_mining: right answers written differently pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_det.boxes import box_iou
from tutorial_det.exercises import check_hard_negative_mining, check_match_priors
from tutorial_det.labelling import match_priors
from tutorial_det.ssd import hard_negative_mask


def match_loop(priors, gt_boxes):
    matched = [-1] * len(priors)
    if len(gt_boxes) == 0:
        return torch.tensor(matched, dtype=torch.int64)
    iou = box_iou(gt_boxes, priors).tolist()  # [G][P]
    for p in range(len(priors)):
        column = [row[p] for row in iou]
        if max(column) >= 0.5:
            matched[p] = column.index(max(column))
    free_gt, free_prior = set(range(len(gt_boxes))), set(range(len(priors)))
    while free_gt:
        value, g, p = max((iou[g][p], g, p) for g in free_gt for p in free_prior)
        if value <= 0:
            break
        matched[p] = g
        free_gt.discard(g)
        free_prior.discard(p)
    return torch.tensor(matched, dtype=torch.int64)


def match_numpy(priors, gt_boxes):
    matched = np.full(len(priors), -1, dtype=np.int64)
    if len(gt_boxes):
        iou = box_iou(gt_boxes, priors).numpy().copy()
        best = iou.max(axis=0)
        matched[best >= 0.5] = iou.argmax(axis=0)[best >= 0.5]
        for _ in range(len(gt_boxes)):
            g, p = np.unravel_index(iou.argmax(), iou.shape)
            if iou[g, p] <= 0:
                break
            matched[p] = g
            iou[g, :], iou[:, p] = -1, -1
    return torch.from_numpy(matched)


@pytest.mark.parametrize("fn", [match_priors, match_loop, match_numpy])
def test_right_matchings_pass(fn):
    assert check_match_priors(fn, verbose=False)


def mining_topk(background_loss, positive, neg_pos_ratio):
    kept = torch.zeros_like(positive)
    for b in range(len(positive)):
        negatives = torch.where(~positive[b])[0]
        quota = min(int(neg_pos_ratio * positive[b].sum()), len(negatives))
        hardest = background_loss[b, negatives].topk(quota).indices
        kept[b, negatives[hardest]] = True
    return kept


def mining_double_argsort(background_loss, positive, neg_pos_ratio):
    loss = background_loss.masked_fill(positive, -torch.inf)
    rank = loss.argsort(dim=1, descending=True).argsort(dim=1)
    quota = torch.minimum(
        neg_pos_ratio * positive.sum(1, keepdim=True), (~positive).sum(1, keepdim=True)
    )
    return rank < quota


def mining_numpy(background_loss, positive, neg_pos_ratio):
    loss, pos = background_loss.numpy(), positive.numpy()
    kept = np.zeros_like(pos)
    for b in range(len(pos)):
        negatives = np.flatnonzero(~pos[b])
        quota = min(neg_pos_ratio * int(pos[b].sum()), len(negatives))
        kept[b, negatives[np.argsort(-loss[b, negatives])[:quota]]] = True
    return torch.from_numpy(kept)


@pytest.mark.parametrize(
    "fn",
    [
        lambda loss, pos, ratio: hard_negative_mask(loss, pos, ratio),
        mining_topk,
        mining_double_argsort,
        mining_numpy,
    ],
)
def test_right_minings_pass(fn):
    assert check_hard_negative_mining(fn, verbose=False)
