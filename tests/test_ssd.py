"""SSD: prior matching, targets, hard negative mining and the multibox loss (against torchvision's
SSDMatcher and SSD.compute_loss), decoding (against SSD.postprocess_detections), the small model,
and the lesson's exercise checks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import loss_history, xyxy_boxes
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.ssd import SSD as TorchvisionSSD

from tutorial_det.boxes import box_convert, box_iou, decode_boxes
from tutorial_det.exercises import check_hard_negative_mining, check_match_priors
from tutorial_det.exercises.variants import (
    hard_negative_mask_across_batch,
    multibox_loss_tutorial_style,
)
from tutorial_det.labelling import match_priors
from tutorial_det.models import MODELS, build_model
from tutorial_det.ssd import (
    SSD,
    SSD_WEIGHTS,
    build_ssd,
    decode_detections,
    hard_negative_mask,
    multibox_loss,
    prior_targets,
)
from tutorial_det.training.batches import targets_to


@pytest.fixture(scope="module")
def small_ssd() -> SSD:
    torch.manual_seed(0)
    return SSD(4, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), extra_channels=(16, 16))


@pytest.fixture(scope="module")
def priors(small_ssd) -> torch.Tensor:
    """The small SSD's 1360 priors on a 128 x 128 image, xyxy pixels."""
    return small_ssd.priors_for([(16, 16), (8, 8), (4, 4), (2, 2)], (128, 128))


def _torchvision_ssd(neg_to_pos_ratio: float = 3.0) -> TorchvisionSSD:
    """A torchvision SSD object with only what compute_loss and postprocess_detections read."""
    model = TorchvisionSSD.__new__(TorchvisionSSD)
    torch.nn.Module.__init__(model)
    model.box_coder = det_utils.BoxCoder(weights=SSD_WEIGHTS)
    model.neg_to_pos_ratio = neg_to_pos_ratio
    model.score_thresh, model.nms_thresh = 0.01, 0.45
    model.topk_candidates, model.detections_per_img = 200, 100
    return model


def _random_targets(generator: torch.Generator, count: int, n_max: int = 4) -> list[dict]:
    targets = []
    for i in range(count):
        n = i % (n_max + 1)  # 0, 1, ..., n_max objects
        xy = torch.rand(n, 2, generator=generator) * 90
        wh = 12 + torch.rand(n, 2, generator=generator) * 50
        boxes = torch.cat((xy, (xy + wh).clamp(max=128)), dim=1)
        labels = torch.randint(1, 4, (n,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


# --------------------------------------------------------------------------- matching


def test_match_priors_known_answer(device):
    priors = torch.tensor(
        [[0.0, 0, 10, 10], [0, 0, 10, 20], [0, 0, 4, 10], [50, 50, 60, 60], [48, 50, 60, 60]],
        device=device,
    )
    gt = torch.tensor([[0.0, 0, 10, 10], [50, 50, 62, 60]], device=device)
    # IoUs: prior 0-2 with gt 0: 1, 0.5, 0.4; prior 3, 4 with gt 1: 0.833, 1.0 (best, forced).
    assert match_priors(priors, gt).tolist() == [0, 0, -1, 1, 1]


def test_match_priors_forces_the_best_prior_below_the_threshold():
    priors = torch.tensor([[0.0, 0, 4, 10], [0, 0, 2, 10], [20, 20, 30, 30]])
    assert match_priors(priors, torch.tensor([[0.0, 0, 10, 10]])).tolist() == [0, -1, -1]


def test_match_priors_gives_two_objects_with_one_best_prior_distinct_priors():
    priors = torch.tensor([[0.0, 0, 10, 10], [-8, 0, 2, 10]])
    gt = torch.tensor([[-3.0, 0, 7, 10], [0, 0, 8, 10]])
    iou = box_iou(gt, priors)
    assert iou.argmax(dim=1).tolist() == [0, 0]  # the same best prior
    assert match_priors(priors, gt).tolist() == [1, 0]
    # torchvision's SSDMatcher gives prior 0 to the later object and none to the first.
    assert det_utils.SSDMatcher(0.5)(iou).tolist() == [1, -1]


def test_match_priors_edge_cases(priors):
    assert match_priors(priors, torch.zeros(0, 4)).tolist() == [-1] * len(priors)
    assert match_priors(torch.zeros(0, 4), torch.tensor([[0.0, 0, 5, 5]])).shape == (0,)
    with pytest.raises(ValueError, match=r"gt_boxes\[1\].*zero width or height"):
        match_priors(priors, torch.tensor([[0.0, 0, 20, 20], [30.0, 30, 30, 50]]))
    with pytest.raises(ValueError, match="pos_thresh"):
        match_priors(priors, torch.zeros(0, 4), pos_thresh=0)
    # A ground truth that overlaps no prior gets no forced match (torchvision would force prior 0).
    far = torch.tensor([[0.0, 0, 10, 10]])
    assert match_priors(far, torch.tensor([[50.0, 50, 60, 60]])).tolist() == [-1]


@given(gt=xyxy_boxes(min_n=1, max_n=5, max_coord=110.0, min_size=8.0))
def test_match_priors_agrees_with_torchvision_when_best_priors_differ(priors, gt):
    iou = box_iou(gt, priors)
    best = iou.argmax(dim=1)
    ties = (iou == iou.max(dim=1, keepdim=True).values).sum(dim=1) > 1
    if len(set(best.tolist())) < len(gt) or bool(ties.any()):
        return  # a shared or tied best prior: the two rules differ by design (see above)
    assert torch.equal(match_priors(priors, gt), det_utils.SSDMatcher(0.5)(iou))


# --------------------------------------------------------------------------- targets


def test_prior_targets_encode_with_the_ssd_variances(priors):
    gt = torch.tensor([[10.0, 20, 50, 44], [70, 60, 120, 126]])
    labels, deltas = prior_targets(priors, gt, torch.tensor([2, 3]))
    matched = match_priors(priors, gt)
    positive = matched >= 0
    assert labels.dtype == torch.int64 and labels.shape == (len(priors),)
    assert torch.equal(labels[positive], torch.tensor([2, 3])[matched[positive]])
    assert not bool(labels[~positive].any()) and not bool(deltas[~positive].any())
    # The paper's form: ((g_cx - p_cx) / p_w / 0.1, ..., log(g_w / p_w) / 0.2, ...).
    g = box_convert(gt[matched[positive]], "xyxy", "cxcywh").double()
    p = box_convert(priors[positive], "xyxy", "cxcywh").double()
    paper = torch.cat(
        ((g[:, :2] - p[:, :2]) / p[:, 2:] / 0.1, torch.log(g[:, 2:] / p[:, 2:]) / 0.2), dim=1
    )
    torch.testing.assert_close(deltas[positive].double(), paper, atol=1e-5, rtol=1e-5)
    # Decoding the targets gives the ground truths back.
    torch.testing.assert_close(
        decode_boxes(deltas[positive], priors[positive], SSD_WEIGHTS),
        gt[matched[positive]],
        atol=1e-4,
        rtol=0,
    )


def test_prior_targets_without_objects_and_with_bad_labels(priors):
    labels, deltas = prior_targets(priors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert not bool(labels.any()) and not bool(deltas.any())
    box = torch.tensor([[0.0, 0, 20, 20]])
    with pytest.raises(ValueError, match=">= 1"):
        prior_targets(priors, box, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"shape \[1\]"):
        prior_targets(priors, box, torch.tensor([1, 2]))


# --------------------------------------------------------------------------- mining


def test_hard_negative_mask_per_image_and_the_seeds_across_the_batch():
    loss = torch.tensor([[0.1, 9.0, 8.0, 7.0, 6.0, 5.0], [0.1, 0.5, 0.4, 0.3, 0.2, 0.1]])
    positive = torch.tensor([[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    per_image = hard_negative_mask(loss, positive, 2)
    assert per_image.int().tolist() == [[0, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0]]
    # Across the batch the first image's large losses take all 2 x 2 = 4 places.
    batch = hard_negative_mask_across_batch(loss, positive, 2)
    assert batch.int().tolist() == [[0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"\[B, P\]"):
        hard_negative_mask_across_batch(loss[0], positive[0])


@given(
    b=st.integers(1, 4),
    p=st.integers(1, 40),
    ratio=st.sampled_from([0.0, 1.0, 2.5, 3.0]),
    data=st.data(),
)
def test_hard_negative_mask_properties(b, p, ratio, data):
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    loss = torch.rand(b, p, generator=g)
    positive = torch.rand(b, p, generator=g) < data.draw(st.floats(0, 1))
    mask = hard_negative_mask(loss, positive, ratio)
    assert not bool((mask & positive).any())
    quota = torch.minimum(torch.ceil(ratio * positive.sum(1).double()), (~positive).sum(1).double())
    assert torch.equal(mask.sum(1).double(), quota)
    # The kept negatives are the hardest: none left out has a higher loss than one kept.
    for i in range(b):
        kept, left = loss[i][mask[i]], loss[i][~mask[i] & ~positive[i]]
        if len(kept) and len(left):
            assert kept.min() >= left.max()


def test_hard_negative_mask_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[B, P\]"):
        hard_negative_mask(torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        hard_negative_mask(torch.zeros(1, 3), torch.zeros(1, 3))


# --------------------------------------------------------------------------- the loss


def _head_outputs(generator, batch, num_priors, num_classes=4):
    logits = torch.randn(batch, num_priors, num_classes, generator=generator) * 2
    deltas = torch.randn(batch, num_priors, 4, generator=generator)
    return logits.requires_grad_(), deltas.requires_grad_()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multibox_loss_equals_torchvision_compute_loss(priors, seed, device):
    g = torch.Generator().manual_seed(seed)
    priors = priors.to(device)
    targets = targets_to(_random_targets(g, 5), device)  # 0 to 4 objects per image
    logits, deltas = (
        t.detach().to(device).requires_grad_() for t in _head_outputs(g, 5, len(priors))
    )
    labels, target_deltas = zip(
        *(prior_targets(priors, t["boxes"], t["labels"]) for t in targets), strict=True
    )
    ours = multibox_loss(logits, deltas, torch.stack(labels), torch.stack(target_deltas))
    matched = [match_priors(priors, t["boxes"]) for t in targets]
    theirs = _torchvision_ssd().compute_loss(
        targets,
        {"cls_logits": logits, "bbox_regression": deltas},
        [priors] * len(targets),
        matched,
    )
    for key in ("classification", "bbox_regression"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    # Gradients agree too.
    grads = torch.autograd.grad(sum(ours.values()), (logits, deltas))
    grads_tv = torch.autograd.grad(sum(theirs.values()), (logits, deltas))
    for a, b in zip(grads, grads_tv, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_multibox_loss_by_hand():
    # One image, 6 priors, 2 classes; prior 0 is positive (class 1), 5 negatives.
    logits = torch.tensor([[[0.0, 1.0], [3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.5], [2.0, 0]]])
    labels = torch.tensor([[1, 0, 0, 0, 0, 0]])
    deltas = torch.tensor([[[0.5, -2.0, 0, 0]] + [[9.0, 9, 9, 9]] * 5])
    targets = torch.zeros(1, 6, 4)
    ce = F.cross_entropy(logits[0], labels[0], reduction="none")
    # Background losses of the negatives: priors 2 (2.13), 4 (0.97), 3 (0.69) are the hardest 3.
    hardest = ce[2] + ce[4] + ce[3]
    smooth_l1 = 0.5 * 0.5**2 + (2.0 - 0.5)
    loss = multibox_loss(logits, deltas, labels, targets)
    assert loss["classification"].item() == pytest.approx((ce[0] + hardest).item(), rel=1e-6)
    assert loss["bbox_regression"].item() == pytest.approx(smooth_l1, rel=1e-6)
    # The SSD tutorial's normalisation: negatives divided by their own count (3), not by N = 1.
    split = multibox_loss_tutorial_style(logits, deltas, labels, targets, across_batch=False)
    assert split["classification"].item() == pytest.approx((ce[0] + hardest / 3).item(), rel=1e-6)
    assert split["bbox_regression"].item() == pytest.approx(smooth_l1, rel=1e-6)


def test_multibox_loss_batch_mining_differs_from_per_image():
    logits = torch.zeros(2, 4, 2)
    logits[0, 1:, 1] = torch.tensor([5.0, 4.0, 3.0])  # image 0's negatives look like objects
    labels = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0]])
    zeros = torch.zeros(2, 4, 4)
    per_image = multibox_loss(logits, zeros, labels, zeros, neg_pos_ratio=1)
    batch = multibox_loss_tutorial_style(logits, zeros, labels, zeros, neg_pos_ratio=1, split=False)
    ce = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), reduction="none").view(2, 4)
    # Per image: prior 1 of image 0 and one (tied, log 2) prior of image 1; batch: priors 1, 2 of 0.
    assert per_image["classification"].item() == pytest.approx(
        ((ce[:, 0].sum() + ce[0, 1] + math.log(2)) / 2).item()
    )
    assert batch["classification"].item() == pytest.approx(
        ((ce[:, 0].sum() + ce[0, 1] + ce[0, 2]) / 2).item()
    )


def test_the_seeds_loss_without_its_bugs_is_the_papers(priors):
    g = torch.Generator().manual_seed(4)
    targets = _random_targets(g, 4)
    logits, deltas = _head_outputs(g, 4, len(priors))
    labels, target_deltas = (
        torch.stack(v)
        for v in zip(
            *(prior_targets(priors, t["boxes"], t["labels"]) for t in targets), strict=True
        )
    )
    paper = multibox_loss(logits, deltas, labels, target_deltas)
    fixed = multibox_loss_tutorial_style(
        logits, deltas, labels, target_deltas, across_batch=False, split=False
    )
    assert all(torch.equal(paper[k], fixed[k]) for k in paper)
    seed = multibox_loss_tutorial_style(logits, deltas, labels, target_deltas)
    assert seed["classification"] < paper["classification"]  # negatives weigh less
    assert torch.equal(seed["bbox_regression"], paper["bbox_regression"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        multibox_loss_tutorial_style(logits, deltas, labels + 4, target_deltas)


def test_multibox_loss_without_positives_is_zero_not_nan():
    logits, deltas = _head_outputs(torch.Generator().manual_seed(0), 2, 10)
    zeros = torch.zeros(2, 10, 4)
    loss = multibox_loss(logits, deltas, torch.zeros(2, 10, dtype=torch.int64), zeros)
    assert loss["classification"].item() == 0 and loss["bbox_regression"].item() == 0
    sum(loss.values()).backward()
    assert torch.isfinite(logits.grad).all() and not bool(logits.grad.any())


def test_multibox_loss_rejects_bad_input():
    logits, deltas = torch.zeros(1, 5, 3), torch.zeros(1, 5, 4)
    labels = torch.zeros(1, 5, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        multibox_loss(logits, deltas, labels + 3, deltas)
    with pytest.raises(ValueError, match=r"target_deltas must have shape \[1, 5, 4\]"):
        multibox_loss(logits, deltas, labels, torch.zeros(1, 4, 4))
    with pytest.raises(TypeError, match="int64"):
        multibox_loss(logits, deltas, labels.int(), deltas)


# --------------------------------------------------------------------------- decoding


def test_decode_detections_equals_torchvision_postprocess(priors):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, len(priors), 4, generator=g) * 3
    deltas = torch.randn(2, len(priors), 4, generator=g)
    theirs = _torchvision_ssd().postprocess_detections(
        {"cls_logits": logits, "bbox_regression": deltas}, [priors, priors], [(128, 128)] * 2
    )
    for i in range(2):
        ours = decode_detections(logits[i], deltas[i], priors, (128, 128))
        assert len(ours["boxes"]) == 100
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(ours[key], theirs[i][key], atol=1e-4, rtol=0)


def test_decode_detections_with_nothing_above_the_threshold(priors):
    logits = torch.zeros(len(priors), 4)
    logits[:, 0] = 20  # everything is background
    out = decode_detections(logits, torch.zeros(len(priors), 4), priors, (128, 128))
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == (0,)
    assert out["labels"].dtype == torch.int64


# --------------------------------------------------------------------------- the model


def test_small_ssd_priors_line_up_with_the_head(small_ssd, priors):
    assert priors.shape == (16 * 16 * 4 + 8 * 8 * 4 + 4 * 4 * 4 + 2 * 2 * 4, 4) == (1360, 4)
    centres = (priors[:, :2] + priors[:, 2:]) / 2
    # Prior (i * 16 + j) * 4 + a of the stride-8 map is centred on cell (row i, column j).
    i, j = 5, 11
    torch.testing.assert_close(
        centres[(i * 16 + j) * 4 : (i * 16 + j) * 4 + 4], torch.tensor([[92.0, 44.0]] * 4)
    )
    # The stride-64 map's last cell: centre (96, 96), its first prior 0.7 x 128 = 89.6 px wide.
    torch.testing.assert_close(centres[-4:], torch.tensor([[96.0, 96.0]] * 4))
    assert (priors[-4, 2] - priors[-4, 0]).item() == pytest.approx(0.7 * 128, rel=1e-5)
    logits, deltas, head_priors = small_ssd.head_outputs(torch.zeros(2, 3, 128, 128))
    assert logits.shape == (2, 1360, 4) and deltas.shape == (2, 1360, 4)
    assert torch.equal(head_priors, priors)


def test_small_ssd_training_and_eval_contract(small_ssd, device):
    small_ssd = copy.deepcopy(small_ssd).to(device)  # the inputs stay on the CPU: SSD moves them
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 128, 128, generator=g) for _ in range(3)]
    targets = _random_targets(g, 3, n_max=2)
    small_ssd.train()
    losses = small_ssd(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    small_ssd.eval()
    with torch.no_grad():
        detections = small_ssd(images)
    assert len(detections) == 3
    for det in detections:
        assert det["boxes"].shape[1] == 4 and len(det["boxes"]) <= 100
        assert det["boxes"].min() >= 0 and det["boxes"].max() <= 128
        assert det["labels"].dtype == torch.int64 and bool((det["labels"] >= 1).all())
        assert bool((det["scores"][:-1] >= det["scores"][1:]).all())


def test_small_ssd_rejects_bad_input(small_ssd):
    small_ssd.train()
    image = torch.rand(3, 128, 128)
    with pytest.raises(ValueError, match=r"images\[1\] must be a \[3, H, W\] tensor"):
        small_ssd([image, torch.rand(64, 64)], [{}, {}])
    with pytest.raises(ValueError, match="one target per image"):
        small_ssd([image])
    degenerate = {"boxes": torch.tensor([[5.0, 5, 5, 30]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match=r"targets\[0\].*zero width"):
        small_ssd([image], [degenerate])
    too_big = {"boxes": torch.tensor([[5.0, 5, 40, 30]]), "labels": torch.tensor([4])}
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]\[0\] = 4 is not an object"):
        small_ssd([image], [too_big])
    with pytest.raises(ValueError, match="num_classes"):
        SSD(1)


def test_ssd_is_registered():
    assert MODELS["ssd"] is build_ssd
    model = build_model("ssd", 3, widths=(4, 4, 4, 4), extra_channels=(4, 4))
    assert isinstance(model, SSD) and model.num_classes == 3


def test_small_ssd_loss_decreases_on_a_fixed_batch(device):
    torch.manual_seed(0)
    model = SSD(3, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), extra_channels=(16, 16))
    model.to(device)
    images = torch.full((2, 3, 64, 64), 0.2)
    images[0, :, 8:30, 10:40] = 0.9
    images[1, 0, 30:60, 20:44] = 1.0
    targets = [
        {"boxes": torch.tensor([[10.0, 8, 40, 30]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[20.0, 30, 44, 60]]), "labels": torch.tensor([2])},
    ]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    totals = loss_history(lambda: sum(model(images, targets).values()), optimizer, 15)
    assert totals[-1] < 0.5 * totals[0]


# --------------------------------------------------------------------------- exercises


def test_exercise_checks_pass_the_reference_and_catch_the_seeds_mining():
    assert check_hard_negative_mining(hard_negative_mask, verbose=False)
    batch_wide = check_hard_negative_mining(hard_negative_mask_across_batch, verbose=False)
    assert not batch_wide and batch_wide.causes[0].name == "mining_across_batch"
    assert check_match_priors(match_priors, verbose=False)


def test_match_check_catches_a_plain_argmax_per_ground_truth():
    def argmax_matching(priors, gt):
        matched = torch.full((len(priors),), -1)
        if len(gt):
            iou = box_iou(gt, priors)
            best, index = iou.max(dim=0)
            matched[best >= 0.5] = index[best >= 0.5]
            matched[iou.argmax(dim=1)] = torch.arange(len(gt))
        return matched

    result = check_match_priors(argmax_matching, verbose=False)
    assert not result and result.causes[0].name == "match_argmax_per_object"
    assert "same best prior" in result.failures[0]


def test_a_batch_of_one_64_px_image_trains():
    """The last extra stage of a 64 px image is a 1 x 1 map: with one image its batch norm sees
    one value per channel and falls back to its running statistics (nn.BatchNorm2d raises)."""
    torch.manual_seed(0)
    model = SSD(3).train()
    last_norm = model.extras[-1][-2]
    before = last_norm.running_mean.clone()
    target = {"boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([1])}
    losses = model([torch.rand(3, 64, 64)], [target])
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    assert torch.equal(last_norm.running_mean, before)  # left as it was
    assert model.extras[0][-2].running_mean.abs().sum() > 0  # a 2 x 2 map: batch statistics
