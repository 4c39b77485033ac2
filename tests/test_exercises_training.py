"""check_train_epoch: a correct epoch passes; each bug of the classic template fails with its hint."""

from __future__ import annotations

import pytest
import torch

from tutorial_det.exercises.training import ToyDetector, check_train_epoch


def good_epoch(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    if scheduler is not None:
        scheduler.step()
    return total / len(batches)


def buggy_epoch(bug: str):
    """``good_epoch`` with one bug of the classic training template."""

    def epoch(model, batches, optimizer, scheduler=None):
        total = 0.0
        for images, targets in batches:
            loss = sum(model(images, targets).values())
            if bug == "constant":
                loss = 0.1 + loss
            if bug != "no zero_grad":
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if bug == "scheduler per batch" and scheduler is not None:
                scheduler.step()
            if bug == "tensor":
                total += loss
            elif bug != "not accumulated":
                total += loss.item()
        if bug != "scheduler per batch" and scheduler is not None:
            scheduler.step()
        return total / len(batches)

    return epoch


def test_a_correct_epoch_passes(capsys):
    result = check_train_epoch(good_epoch)
    assert result and result.total == 4
    assert capsys.readouterr().out.strip() == "check_train_epoch: all 4 cases pass."


@pytest.mark.parametrize(
    ("bug", "failing", "message"),
    [
        ("not accumulated", 4, "(was the loss accumulated at all?)"),
        ("constant", 4, "nothing added"),
        ("scheduler per batch", 1, "step an epoch-based scheduler once per epoch"),
        ("no zero_grad", 3, "Zero the gradients before each backward"),
        ("tensor", 4, "accumulate loss.item(), a float"),
    ],
)
def test_each_template_bug_fails_with_its_hint(bug, failing, message):
    result = check_train_epoch(buggy_epoch(bug), verbose=False)
    assert len(result.failures) == failing, result.report()
    assert all(message in failure for failure in result.failures), result.report()
    if bug == "scheduler per batch":  # one batch: per batch and per epoch agree
        assert "[a single batch]" not in result.report()


def test_an_unattempted_exercise_waits(capsys):
    def not_yet(model, batches, optimizer, scheduler=None):
        raise NotImplementedError

    result = check_train_epoch(not_yet)
    assert not result and result.waiting == 4
    assert "not implemented yet (4 cases waiting" in capsys.readouterr().out


def test_toy_detector_follows_the_detection_contract():
    model = ToyDetector()
    model.eval()
    (out,) = model([torch.rand(3, 8, 8)])
    assert out["boxes"].shape == (1, 4) and out["labels"].shape == out["scores"].shape == (1,)
