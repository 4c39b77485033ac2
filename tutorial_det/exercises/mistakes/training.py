"""Mistakes in the one-epoch training loop of lesson 09 (``check_train_epoch``:
``fn(model, batches, optimizer, scheduler=None) -> float``), most of them the classic training
template's bugs.

Right: for each ``(images, targets)`` batch, the loss is the sum of the model's loss terms; zero
the gradients, backward, step the optimizer; add ``loss.item()`` to a running total; after the
last batch step the (epoch-based) scheduler once; return the total divided by the number of
batches."""

from __future__ import annotations

from tutorial_det.exercises.core import Catalogue

TRAIN_EPOCH = Catalogue()


def _loss(model, images, targets):
    """Right: the sum of the model's loss terms."""
    return sum(model(images, targets).values())


def _learn(optimizer, loss):
    """Right: one optimizer step on fresh gradients."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _end_of_epoch(scheduler):
    if scheduler is not None:
        scheduler.step()


@TRAIN_EPOCH.add(
    "Your running total never grows (the template's `epoch_loss` is never added to), so the "
    "mean is 0: add loss.item() after each batch."
)
def epoch_loss_never_added(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        _learn(optimizer, _loss(model, images, targets))
    _end_of_epoch(scheduler)
    return total / len(batches)


@TRAIN_EPOCH.add(
    "You add a constant to the loss (the template's LAMBDA + loss): it changes no gradient but "
    "shifts every loss you report; the loss is the sum of the model's terms."
)
def epoch_constant_added(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = 0.1 + _loss(model, images, targets)
        _learn(optimizer, loss)
        total += loss.item()
    _end_of_epoch(scheduler)
    return total / len(batches)


@TRAIN_EPOCH.add(
    "You step the epoch-based scheduler after every batch, so the learning rate decays once per "
    "batch: step it once, after the last batch."
)
def epoch_scheduler_every_batch(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = _loss(model, images, targets)
        _learn(optimizer, loss)
        _end_of_epoch(scheduler)
        total += loss.item()
    return total / len(batches)


@TRAIN_EPOCH.add(
    "Your learning rate never changes: step the scheduler you were given once at the end of the "
    "epoch (the template steps a misspelt other one)."
)
def epoch_scheduler_never_stepped(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = _loss(model, images, targets)
        _learn(optimizer, loss)
        total += loss.item()
    return total / len(batches)


@TRAIN_EPOCH.add(
    "You never zero the gradients, so each step also carries every earlier batch's gradient: "
    "call optimizer.zero_grad() before each backward."
)
def epoch_without_zero_grad(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = _loss(model, images, targets)
        loss.backward()
        optimizer.step()
        total += loss.item()
    _end_of_epoch(scheduler)
    return total / len(batches)


@TRAIN_EPOCH.add(
    "You zero the gradients between backward and step, so the optimizer steps on zeros and "
    "nothing is learned: zero_grad, backward, step, in that order."
)
def epoch_zero_grad_before_step(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = _loss(model, images, targets)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        total += loss.item()
    _end_of_epoch(scheduler)
    return total / len(batches)


@TRAIN_EPOCH.add(
    "Your loss is the mean of the model's terms; it is their sum (dividing by the number of "
    "terms also divides every gradient)."
)
def epoch_mean_of_terms(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        terms = model(images, targets)
        loss = sum(terms.values()) / len(terms)
        _learn(optimizer, loss)
        total += loss.item()
    _end_of_epoch(scheduler)
    return total / len(batches)


@TRAIN_EPOCH.add(
    "You return a tensor that still holds every batch's computation graph (memory grows each "
    "step): add loss.item(), a float."
)
def epoch_total_keeps_graph(model, batches, optimizer, scheduler=None):
    total = 0.0
    for images, targets in batches:
        loss = _loss(model, images, targets)
        _learn(optimizer, loss)
        total = total + loss
    _end_of_epoch(scheduler)
    return total / len(batches)


@TRAIN_EPOCH.add(
    "You divide by the number of images; the mean is over the batches, as in fit's history "
    "(each batch loss is already a mean over its images)."
)
def epoch_mean_over_images(model, batches, optimizer, scheduler=None):
    total, images_seen = 0.0, 0
    for images, targets in batches:
        loss = _loss(model, images, targets)
        _learn(optimizer, loss)
        total += loss.item()
        images_seen += len(images)
    _end_of_epoch(scheduler)
    return total / images_seen
