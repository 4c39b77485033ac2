"""check_train_epoch: right epochs written differently pass; the classic template's epoch is told
both of its visible bugs; the toy detector follows the detection contract."""

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


def epoch_zeroing_after_the_step(model, batches, optimizer, scheduler=None):
    losses = []
    for images, targets in batches:
        loss = torch.stack(list(model(images, targets).values())).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # ready for the next batch
        losses.append(float(loss.detach()))
    if scheduler:
        scheduler.step()
    return sum(losses) / len(losses)


def epoch_returning_a_detached_tensor(model, batches, optimizer, scheduler=None):
    total = torch.zeros(())
    for images, targets in batches:
        optimizer.zero_grad()
        loss = sum(model(images, targets).values())
        loss.backward()
        optimizer.step()
        total += loss.detach()
    if scheduler is not None:
        scheduler.step()
    return total / len(batches)


@pytest.mark.parametrize(
    "fn", [good_epoch, epoch_zeroing_after_the_step, epoch_returning_a_detached_tensor]
)
def test_right_epochs_pass(fn):
    assert check_train_epoch(fn, verbose=False)


def test_the_templates_epoch_is_told_its_two_visible_bugs():
    def template_epoch(model, batches, optimizer, scheduler=None):  # lesson 09's
        epoch_loss = 0.0
        for images, targets in batches:
            optimizer.zero_grad()
            loss = 0.1 + sum(model(images, targets).values())
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        return epoch_loss / len(batches)

    result = check_train_epoch(template_epoch, verbose=False)
    assert [m.name for m in result.causes] == [
        "epoch_loss_never_added",
        "epoch_scheduler_every_batch",
    ]


def test_an_unattempted_exercise_waits(capsys):
    def not_yet(model, batches, optimizer, scheduler=None):
        raise NotImplementedError

    result = check_train_epoch(not_yet)
    assert not result and result.waiting == 12
    assert "not implemented yet (12 cases waiting" in capsys.readouterr().out


def test_toy_detector_follows_the_detection_contract():
    model = ToyDetector()
    model.eval()
    (out,) = model([torch.rand(3, 8, 8)])
    assert out["boxes"].shape == (1, 4) and out["labels"].shape == out["scores"].shape == (1,)
