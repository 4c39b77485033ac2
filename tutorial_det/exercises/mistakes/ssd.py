"""Mistakes in the SSD exercises of lesson 07: matching priors to objects (``check_match_priors``:
``fn(priors [P, 4], gt_boxes [G, 4]) -> [P]`` int64, -1 for background, IoU 0.5) and hard negative
mining (``check_hard_negative_mining``: ``fn(background_loss [B, P], positive [B, P] bool,
neg_pos_ratio) -> [B, P]`` bool).

Matching, right: rule 1 gives every object its best prior, greedily (the highest IoU of the
matrix first, then that object and prior leave it, until the highest IoU left is 0); rule 2
gives every other prior its best object when their IoU is >= 0.5. Mining, right: per image,
the ``min(ratio x positives, negatives)`` negatives with the highest background loss."""

from __future__ import annotations

from functools import partial

import torch

from tutorial_det.boxes import box_iou
from tutorial_det.exercises.core import Catalogue
from tutorial_det.exercises.variants import hard_negative_mask_across_batch

MATCH_PRIORS = Catalogue()
HARD_NEGATIVE_MINING = Catalogue()


def _threshold_rule(iou, matched, keep=lambda best: best >= 0.5):
    """Rule 2 (right with the default ``keep``): a prior takes its best object at IoU >= 0.5."""
    best, best_gt = iou.max(dim=0)
    matched[keep(best)] = best_gt[keep(best)]


def _forced_rule(iou, matched, at_zero=False):
    """Rule 1, right unless ``at_zero``: greedy, the highest IoU left first, while it is > 0."""
    remaining = iou.clone()
    for _ in range(len(iou)):
        value, flat = remaining.flatten().max(dim=0)
        if value <= 0 and not at_zero:
            break
        g, p = divmod(int(flat), iou.shape[1])
        matched[p] = g
        remaining[g, :], remaining[:, p] = -1, -1


def _match(priors, gt_boxes, rules):
    """Apply ``rules`` in order to an all-background ``[P]`` result, with the right G = 0 guard."""
    matched = torch.full((len(priors),), -1, dtype=torch.int64)
    if len(gt_boxes):
        iou = box_iou(gt_boxes, priors)  # [G, P]
        for rule in rules:
            rule(iou, matched)
    return matched


@MATCH_PRIORS.add(
    "Your threshold is strict (IoU > 0.5); a prior with IoU exactly 0.5 matches (>= 0.5)."
)
def match_strict_threshold(priors, gt_boxes):
    strict = partial(_threshold_rule, keep=lambda best: best > 0.5)
    return _match(priors, gt_boxes, [strict, _forced_rule])


@MATCH_PRIORS.add(
    "You leave out rule 1: every object takes its best prior even below IoU 0.5, so that no "
    "object is left without a prior."
)
def match_threshold_only(priors, gt_boxes):
    return _match(priors, gt_boxes, [_threshold_rule])


@MATCH_PRIORS.add(
    "You give each object its best prior with an argmax, so two objects that share a best prior "
    "leave one of them without it: match greedily, the highest IoU first."
)
def match_argmax_per_object(priors, gt_boxes):
    def argmax_rule(iou, matched):
        matched[iou.argmax(dim=1)] = torch.arange(len(iou))

    return _match(priors, gt_boxes, [_threshold_rule, argmax_rule])


@MATCH_PRIORS.add(
    "You apply the threshold rule after the best-prior rule, so it takes a forced prior back "
    "for another object: a prior forced to an object keeps it (rule 1 last)."
)
def match_threshold_rule_last(priors, gt_boxes):
    return _match(priors, gt_boxes, [_forced_rule, _threshold_rule])


@MATCH_PRIORS.add(
    "An object that overlaps no prior still takes one (the first, at IoU 0): rule 1 stops when "
    "the highest IoU left is 0."
)
def match_forced_at_zero(priors, gt_boxes):
    return _match(priors, gt_boxes, [_threshold_rule, partial(_forced_rule, at_zero=True)])


@MATCH_PRIORS.add(
    "You mark background priors with 0, which is the first object's index; background is -1."
)
def match_background_zero(priors, gt_boxes):
    return _match(priors, gt_boxes, [_threshold_rule, _forced_rule]).clamp(min=0)


@MATCH_PRIORS.add(
    "Your indices are floats (torch.full(..., -1.0) makes float32); they are int64, to index "
    "the objects with."
)
def match_float_indices(priors, gt_boxes):
    return _match(priors, gt_boxes, [_threshold_rule, _forced_rule]).float()


@MATCH_PRIORS.add(
    "With no object (G = 0) there is no maximum to take: return every prior as background (-1) "
    "first."
)
def match_no_object_guard(priors, gt_boxes):
    box_iou(gt_boxes, priors).max(dim=0)  # raises when G = 0: nothing guards it
    return _match(priors, gt_boxes, [_threshold_rule, _forced_rule])


# --------------------------------------------------------------------------- hard negatives


def _ranks(loss):
    """Right: each prior's rank ``[B, P]`` by decreasing loss within its image (0 = hardest)."""
    order = loss.sort(dim=1, descending=True, stable=True).indices
    positions = torch.arange(loss.shape[1], device=loss.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def _quota(positive, neg_pos_ratio):
    """Right: ``[B, 1]``, min(ratio x positives, negatives) per image."""
    num_pos = positive.sum(dim=1, keepdim=True)
    return torch.minimum(neg_pos_ratio * num_pos, (~positive).sum(dim=1, keepdim=True))


@HARD_NEGATIVE_MINING.add(
    "You rank the negatives of the whole batch together, so one image can take every other "
    "image's quota: rank and count per image (the SSD tutorial mines per batch too)."
)
def mining_across_batch(background_loss, positive, neg_pos_ratio):
    return hard_negative_mask_across_batch(background_loss, positive, neg_pos_ratio)


@HARD_NEGATIVE_MINING.add(
    "You rank the positives with the negatives, so a positive with a high background loss takes "
    "a negative's place: leave the positives out of the ranking (e.g. loss -inf)."
)
def mining_ranks_positives(background_loss, positive, neg_pos_ratio):
    return _ranks(background_loss) < _quota(positive, neg_pos_ratio)


@HARD_NEGATIVE_MINING.add(
    "You keep 3 x positives even when the image has fewer negatives, so positives fill the rest: "
    "the quota is min(ratio x positives, number of negatives)."
)
def mining_uncapped_quota(background_loss, positive, neg_pos_ratio):
    ranks = _ranks(background_loss.masked_fill(positive, -torch.inf))
    return ranks < neg_pos_ratio * positive.sum(dim=1, keepdim=True)


@HARD_NEGATIVE_MINING.add(
    "You keep 3 negatives per positive whatever neg_pos_ratio says: use the argument."
)
def mining_fixed_ratio(background_loss, positive, neg_pos_ratio):
    ranks = _ranks(background_loss.masked_fill(positive, -torch.inf))
    return ranks < _quota(positive, 3)


@HARD_NEGATIVE_MINING.add(
    "You keep the easiest negatives (lowest loss first); the hard ones have the highest "
    "background loss: sort with descending=True."
)
def mining_easiest(background_loss, positive, neg_pos_ratio):
    ranks = _ranks(-background_loss.masked_fill(positive, torch.inf))
    return ranks < _quota(positive, neg_pos_ratio)


@HARD_NEGATIVE_MINING.add(
    "You write -inf into the background_loss you were given (an in-place edit of the caller's "
    "tensor): use masked_fill, which makes a new tensor, or clone first."
)
def mining_edits_loss(background_loss, positive, neg_pos_ratio):
    background_loss[positive] = -torch.inf
    return _ranks(background_loss) < _quota(positive, neg_pos_ratio)


@HARD_NEGATIVE_MINING.add(
    "You build a tensor on the CPU (torch.arange without device=), which fails for inputs on a "
    "GPU: make it on the inputs' device."
)
def mining_arange_on_cpu(background_loss, positive, neg_pos_ratio):
    order = background_loss.masked_fill(positive, -torch.inf).sort(dim=1, descending=True).indices
    in_quota = torch.arange(order.shape[1]) < _quota(positive, neg_pos_ratio)  # arange on the CPU
    return torch.zeros_like(positive).scatter(1, order, in_quota)
