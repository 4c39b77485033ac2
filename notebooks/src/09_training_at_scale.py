# %% [markdown]
# # 09 · Training at scale
#
# The detectors of lessons 04 and 06 to 08 were trained with one call to `fit`: behind it, a loop
# over batches, a loss, a step. Real training runs last hours or days, on several GPUs, and they
# must survive a crash, a NaN, a wrong learning rate and a restart. This lesson starts from the
# training-loop template that countless projects copy, finds its bugs, and then walks through
# everything a production detection trainer does, each piece in its PyTorch form and shown working:
# the package's `fit` and the `tutorial-det` command line.
#
# **You will learn**
# - five bugs of the classic training template, each shown with a small demonstration (a
#   learning-rate curve that collapses, a loss that always reads 0, ...);
# - what `fit` does in each step, and how every feature of a production trainer (the TensorFlow
#   Object Detection API's) maps to PyTorch: input queues, augmentation, fine-tune restore,
#   frozen layers, a bias learning-rate multiplier, gradient clipping, the NaN check, summaries,
#   periodic checkpoints, model clones on several GPUs;
# - checkpoints that allow an **exact** resume: interrupted and resumed, the weights are
#   bit-for-bit those of an uninterrupted run;
# - how fast a threaded sample pool and a `DataLoader` feed a training loop;
# - data-parallel training with `torchrun`: two processes on this CPU, and when their result
#   equals one process with twice the batch.
#
# **You need** lessons 07 (SSD) and 08 (WPOD-Net), whose models train here, and basic PyTorch
# training (a loss, `backward`, an optimizer). The README's lesson table gives its running time on
# a quiet 2-core CPU.

# %%
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from torchvision.ops import FrozenBatchNorm2d

from tutorial_det.cli import main as tutorial_det_cli
from tutorial_det.cli import open_data, parse_data
from tutorial_det.data import SamplePool, ShapesDataset, detection_collate, train_transforms
from tutorial_det.exercises.training import check_train_epoch
from tutorial_det.model_file import freeze_batch_norm, load_model_file
from tutorial_det.models import build_model
from tutorial_det.prose import say
from tutorial_det.runtime import seed_everything
from tutorial_det.training import (
    CHECKPOINT_NAME,
    NonFiniteLossError,
    evaluate,
    fit,
    freeze,
    load_checkpoint,
    load_partial_state_dict,
    param_groups,
)
from tutorial_det.viz import draw_boxes, plot_history, show_image

seed_everything(0)
torch.set_num_threads(1)  # the same numbers whatever the number of cores (lesson 04, section 7)
work = Path(tempfile.mkdtemp(prefix="lesson09_"))  # every file this lesson writes goes here
QUIET = {"progress": False, "log_every": None, "device": "cpu"}  # see the next cell

# %% [markdown]
# Everything in this lesson trains on the CPU, even with a GPU at hand (`QUIET` holds the
# settings of its `fit` calls): several demonstrations compare two runs bit for bit, which the
# CPU's kernels guarantee (on a GPU some kernels add in a varying order; section 3f says what
# that changes), and section 5 starts two processes on this one machine.
#
# The training data throughout: synthetic shapes (lesson 07's data set) at 64 x 64 pixels, small
# enough that a training step of the small SSD takes a fraction of a second on a CPU.
# `open_data` is what the command line uses: it scales the shapes' sizes with the image.

# %%
shapes, classes = open_data(parse_data("shapes"), length=16, seed=0, image_size=64)
print("classes:", classes)
print(
    "16 images of",
    tuple(shapes[0][0].shape),
    "| objects in the first four:",
    [len(shapes[i][1]["boxes"]) for i in range(4)],
)

# %% [markdown]
# Four classes counting the background (label 0), so the detectors below are built for 4.
#
# ## 1. The classic template, and five bugs in it
#
# Here is a training template of the kind found in many notes and starter repositories, written
# for our detector: a data loader of dict batches, a train function that keeps the checkpoint with
# the best training loss, and a test function. It runs. **Before reading on, find five bugs.**

# %%
LAMBDA = 0.1  # meant as the weight of an extra loss term


def dict_batches(items):
    """collate_fn: a list of (image, target) -> {"images": [...], "targets": [...]}."""
    return {"images": [image for image, _ in items], "targets": [target for _, target in items]}


def template_train(model, loader, optimizer, epochs, path):
    best = float("inf")
    for epoch in range(epochs):
        model.train()
        epoch_loss = 0.0
        for batch in loader:
            optimizer.zero_grad()
            losses = model(batch["images"], batch["targets"])
            loss = LAMBDA + sum(losses.values())
            loss.backward()
            optimizer.step()
            scheduler.step()
        epoch_loss = epoch_loss / len(loader)
        print(f"epoch {epoch + 1}: loss {epoch_loss:.4f}")
        if epoch_loss <= best:
            best = epoch_loss
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
            print(f"  saved the best model so far to {path.name}")


def template_test(model, loader):
    model.eval()
    detections = []
    with torch.no_grad():
        for batch in loader:
            detections += model(batch["image"])
    return detections


# %% [markdown]
# Suppose an earlier experiment in the same notebook left a `scheduler` behind (notebooks keep
# every variable until the kernel restarts). Then the set-up for this run, as the template writes
# it:

# %%
old_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
scheduler = LambdaLR(old_optimizer, lambda epoch: 0.95**epoch)  # from an earlier experiment

torch.manual_seed(0)
model = build_model("ssd", len(classes))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
schedular = LambdaLR(optimizer, lambda epoch: 0.95**epoch)
loader = DataLoader(shapes, batch_size=4, shuffle=True, collate_fn=dict_batches)
template_train(model, loader, optimizer, epochs=2, path=work / "best.pt")

# %% [markdown]
# Two epochs of 16 / 4 = 4 batches each. The log says the loss is exactly 0 in both epochs, and
# the "best" checkpoint was overwritten after each. Nothing crashed. Now the five bugs, one at a
# time.
#
# **Bug 1: the misspelt scheduler.** The set-up creates `schedular`, the loop steps `scheduler`.
# In a fresh script that is a `NameError` at the first step; in a notebook the name may already
# exist, and the loop silently steps *another optimizer's* schedule:

# %%
print("this run's learning rate:", optimizer.param_groups[0]["lr"])
print(f"the earlier experiment's: {old_optimizer.param_groups[0]['lr']:.7f} = 0.01 x 0.95^8")
print("steps taken by this run's scheduler:", schedular.last_epoch)

# %% [markdown]
# This run trained at its initial 0.001 throughout; the 8 decay steps went to the stale schedule
# (0.01 x 0.95^8 = 0.0066342), and this run's own `schedular` was never stepped (`last_epoch` 0).
# PyTorch's warning above was the only clue: it saw a scheduler stepped for an optimizer that had
# never taken a step. Restarting the kernel and running top to bottom finds the name error; a
# training function that takes its scheduler as an argument cannot step the wrong one.
#
# **Bug 2: a constant added to the loss.** `LAMBDA + loss` was meant as `loss + LAMBDA * other`,
# a weighted term. A constant has no gradient: the training is unchanged, only the number reported
# moves up by 0.1, for ever.

# %%
images, targets = detection_collate([shapes[i] for i in range(4)])
losses, gradients = [], []
for extra in (0.0, LAMBDA):
    model.zero_grad()
    loss = extra + sum(model(images, targets).values())
    loss.backward()
    losses.append(loss.item())
    gradients.append([p.grad.clone() for p in model.parameters()])
print(f"loss with the constant - loss without: {losses[1] - losses[0]:.4f}")
print("identical gradients:", all(torch.equal(a, b) for a, b in zip(*gradients, strict=True)))

# %% [markdown]
# The two losses differ by 0.1 and every gradient is identical, bit for bit: the optimizer cannot
# tell them apart. What the constant does change is every logged curve and every comparison with
# another run's loss: a run that reached 0.05 would be reported as 0.15.
#
# **Bug 3: the epoch loss is never accumulated.** The loop sets `epoch_loss = 0.0` and then only
# divides it, so every epoch reports 0, every epoch's 0 is "the best so far", and the "best"
# checkpoint is simply the last one. The fix is `epoch_loss += loss.item()` in the loop: `.item()`,
# because accumulating the tensor itself keeps every batch's computation graph alive until the
# epoch ends:

# %%
kept = torch.zeros(())
for batch in [detection_collate([shapes[i] for i in range(j, j + 2)]) for j in (0, 2)]:
    kept = kept + sum(model(*batch).values())
print(
    "accumulated tensor:",
    type(kept).__name__,
    "| requires_grad:",
    kept.requires_grad,
    "| grad_fn:",
    type(kept.grad_fn).__name__,
)
print("accumulated .item():", type(kept.item()).__name__)

# %% [markdown]
# The accumulated tensor has a `grad_fn`: it still references the graphs of both batches (with all
# their activations), so memory grows with every batch of the epoch. A float does not.
#
# **Bug 4: an epoch-based schedule stepped every batch.** `lambda epoch: 0.95 ** epoch` means "5 %
# less per epoch". `scheduler.step()` inside the batch loop advances it once per *batch*. With the
# command line's default of 2000 training images in batches of 8, an epoch has 250 batches:


# %%
def learning_rates(epochs, batches_per_epoch, step_per_batch):
    """The learning rate of each epoch's first batch for 0.95 ** epoch, stepped either way."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = LambdaLR(optimizer, lambda epoch: 0.95**epoch)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        for _ in range(batches_per_epoch):
            optimizer.step()
            if step_per_batch:
                schedule.step()
        if not step_per_batch:
            schedule.step()
    return rates


batches_per_epoch = 2000 // 8  # tutorial-det train's defaults: --train-size 2000, --batch-size 8
per_epoch = learning_rates(30, batches_per_epoch, step_per_batch=False)
per_batch = learning_rates(30, batches_per_epoch, step_per_batch=True)
for epoch in (1, 2, 10):
    print(f"epoch {epoch}: per epoch {per_epoch[epoch]:.4f}, per batch {per_batch[epoch]:.3g}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.semilogy(per_epoch, marker=".", label="stepped once per epoch (intended)")
ax.semilogy(per_batch, marker=".", label="stepped every batch (the template)")
ax.set_xlabel("epoch")
ax.set_ylabel("learning rate / initial rate")
ax.set_ylim(1e-40, 2)
ax.legend()
plt.show()

# %% jupyter={"source_hidden": true}
say(f"""
    Intended: 0.95 after one epoch, 0.95² = {per_epoch[2]:.4f} after two, 0.95¹⁰ =
    {per_epoch[10]:.4f} after ten. Stepped every batch the exponent is {batches_per_epoch} times
    larger: {per_batch[1]:.2g} after one epoch, {per_batch[2]:.2g} after two, {per_batch[10]:.1e}
    after ten (the curve leaves the plot).
""")

# %% [markdown]
# The model stops learning during its first epoch, and the loss curve looks like convergence.
# `fit` takes `scheduler_interval="epoch"` for such schedules; its default, `"step"`, suits
# schedules written in steps (warm-up, cosine).
#
# **Bug 5: the test loop reads the wrong key.** The batches hold `"images"`; the test reads
# `"image"`:

# %%
try:
    template_test(model, loader)
except KeyError as error:
    print("KeyError:", error)

# %% [markdown]
# A `KeyError` is the lucky case: a wrong key that happens to exist (evaluating on the training
# loader, or on the targets) runs and returns a meaningless number. The package's loops take
# `(images, targets)` pairs and name what is wrong with anything else:

# %%
try:
    evaluate(model, loader)
except TypeError as error:
    print("TypeError:", error)

# %% [markdown]
# The template above keeps the checkpoint with the lowest *training* loss, which says nothing
# about held-out data. The training-loop template it is shortened from (one of the course's source
# documents, see the README) has more to fix: it sends every batch to a CUDA device by name, loads
# checkpoints with `torch.load` without `weights_only=True` (which runs any code pickled into the
# file), and restores the optimizer only to test.
#
# The exercise at the end asks you to write one epoch correctly. `check_train_epoch` runs your
# function and `fit` from the same weights on a toy detector, and compares the learning rate after
# the epoch, the weights after it and the mean loss returned, each as a case of its own, so that
# bugs that spoil different things are all named. The template's epoch, as a function:


# %%
def template_epoch(model, batches, optimizer, scheduler=None):
    epoch_loss = 0.0
    for images, targets in batches:
        optimizer.zero_grad()
        loss = LAMBDA + sum(model(images, targets).values())
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return epoch_loss / len(batches)


template_check = check_train_epoch(template_epoch)

# %%
print(f"{len(template_check.failures)} of {template_check.total} cases fail; the causes named:")
for mistake in template_check.causes:
    print(" -", mistake.name)

# %% [markdown]
# The check names two causes (the report above gives the numbers): the running total that is
# never added to (bug 3: every mean returned is 0), then the scheduler stepped after every batch
# (bug 4: after three batches the learning rate is 0.5 x 0.5³ instead of 0.5 x 0.5). Bug 2 hides
# behind bug 3 here. With the accumulation fixed, the check names the added constant:


# %%
def template_epoch_summed(model, batches, optimizer, scheduler=None):
    epoch_loss = 0.0
    for images, targets in batches:
        optimizer.zero_grad()
        loss = LAMBDA + sum(model(images, targets).values())
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()  # bug 3 fixed
        if scheduler is not None:
            scheduler.step()
    return epoch_loss / len(batches)


summed_check = check_train_epoch(template_epoch_summed, verbose=False)
print("the causes named:", [mistake.name for mistake in summed_check.causes])

# %% [markdown]
#
# ## 2. From the template to `fit`
#
# `fit` is the loop every lesson uses. Each optimizer step:
#
# 1. takes the next batch and moves it to the device;
# 2. runs the forward pass (under autocast when mixed precision is on, by default on a GPU);
# 3. averages the loss terms over the processes (with several) and **stops with an error naming
#    the step and the terms** if one is NaN or infinite, before the weights are touched;
# 4. backward (through a gradient scaler for float16);
# 5. clips the gradient norm (optional), steps the optimizer, steps the scheduler (per step or per
#    epoch);
# 6. records the step in a `History` (every loss term, the learning rate, the gradient norm, the
#    time), logs, evaluates and writes a checkpoint when due.
#
# The template's run, done by `fit` (same model set-up, same schedule, stepped per epoch):

# %%
torch.manual_seed(0)
model = build_model("ssd", len(classes))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scheduler = LambdaLR(optimizer, lambda epoch: 0.95**epoch)
history = fit(
    model, shapes, optimizer=optimizer, scheduler=scheduler, scheduler_interval="epoch",
    epochs=2, batch_size=4, **QUIET,
)  # fmt: skip
print("steps:", history.step)
print("epoch of each step:", history.epoch)
print("learning rate of each step:", [f"{lr:.6f}" for lr in history.lr])
print("loss terms recorded:", sorted(history.terms))

# %% [markdown]
# 8 steps in 2 epochs; the learning rate is 0.001 for the 4 steps of epoch 0 and 0.001 x 0.95 =
# 0.00095 for epoch 1. The history keeps each loss term (SSD's classification and box regression)
# separately; their sum is `history.loss`:

# %%
print("loss per step:", [round(v, 3) for v in history.loss])
plot_history(history, smoothing=0.0)
plt.show()

# %% [markdown]
# (Eight steps on sixteen images teach the model little; the training lessons show real curves.)
#
# ## 3. A production trainer, feature by feature
#
# The TensorFlow Object Detection API's trainer is a good inventory of what a detection training
# job needs. Here is each of its features, what it is for, and its form in PyTorch, in this
# package and on the command line (`tutorial-det train`, section 6):
#
# | trainer feature | what it is for | PyTorch / tutorial_det | `tutorial-det train` |
# | --- | --- | --- | --- |
# | batch queue with reader threads, prefetch queue | keep the accelerator busy while images are decoded and augmented | `DataLoader(num_workers=k, prefetch_factor=2, pin_memory=True)`; the threaded `SamplePool` | `--workers K` |
# | data augmentation options | more varied training images | `torchvision.transforms.v2`; `train_transforms("shapes")` | (synthetic data are new at every index) |
# | model clones on several GPUs | more images per step | `DistributedDataParallel`, one process per GPU | `torchrun --nproc_per_node=N -m tutorial_det train ...` |
# | worker replicas, synchronous replicas | several machines | `torchrun --nnodes=M`; DDP's all-reduce is synchronous | the same |
# | fine-tune checkpoint, "variables available in the checkpoint" | start from another model's weights | `load_partial_state_dict` (matching names and shapes) | `--init-from FILE` |
# | freeze variables (by regex) | keep a pretrained backbone fixed | `freeze(model, [regex])`; `FrozenBatchNorm2d` for the statistics | `--freeze REGEX`, `--frozen-batch-norm` |
# | bias gradient multiplier | train biases faster | `param_groups(model, lr, {regex: factor})` | `--lr-multiplier REGEX=FACTOR` |
# | gradient clipping by norm | survive a bad batch | `clip_grad_norm_`; `fit(grad_clip_norm=...)` | `--grad-clip-norm` |
# | check numerics (NaN / Inf) | stop at once, say where | `fit` raises `NonFiniteLossError` | built in |
# | summaries (loss scalars, histograms) | watch the run | `History`, `plot_history` | `history.json` |
# | saver, keep a checkpoint every n hours | survive a crash | `fit(checkpoint_dir, checkpoint_every)`: atomic `last.pt`, exact resume | `--checkpoint-every`, `--resume` |
# | number of steps | when to stop | `fit(epochs=..., max_steps=...)` | `--epochs`, `--max-steps` |
#
# ### 3a. Input pipeline: augmentation
#
# `train_transforms` flips, rescales and crops, and jitters the colours, moving the boxes with the
# pixels (torchvision's transforms v2). Four draws of one training image:

# %%
augment = train_transforms("shapes", size=64)
image, target = shapes[3]
torch.manual_seed(0)
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
show_image(image, ax=axes[0], title="original")
draw_boxes(axes[0], target["boxes"], target["labels"], class_names=classes)
kept_boxes = []
for ax in axes[1:]:
    new_image, new_target = augment(image, target)
    kept_boxes.append(len(new_target["boxes"]))
    show_image(new_image, ax=ax, title=f"{kept_boxes[-1]} boxes")
    draw_boxes(ax, new_target["boxes"], new_target["labels"], class_names=classes)
plt.show()

# %% jupyter={"source_hidden": true}
say(
    f"The image has {len(target['boxes'])} shapes. A shape that the crop cuts to less than half "
    f"its area loses its box: the draws keep {', '.join(map(str, kept_boxes[:-1]))} and "
    f"{kept_boxes[-1]} of the {len(target['boxes'])} boxes; a shape cut less keeps its box, "
    "clipped to the window."
)

# %% [markdown]
# ### 3b. Fine-tune restore
#
# A detector trained for our three shapes, restarted for five (adding hexagons and stars):
# `load_partial_state_dict` copies every tensor whose name and shape match and reports the rest.

# %%
five = ShapesDataset(
    16, image_size=64, min_size=6, max_size=32,
    classes=("circle", "square", "triangle", "hexagon", "star"),
)  # fmt: skip
torch.manual_seed(1)
model5 = build_model("ssd", len(five.classes))
report = load_partial_state_dict(model5, model.state_dict())
print(report)

# %% [markdown]
# Everything loads except the class scores of SSD's four heads: a head predicts `priors x classes`
# channels, 4 x 4 = 16 for four classes and 4 x 6 = 24 for six, so those 8 tensors keep their fresh
# initialisation. The box regressors (4 numbers per prior, whatever the classes) and the backbone
# carry over.
#
# ### 3c. Freezing, and a learning-rate multiplier for biases
#
# Freezing the backbone and training the biases twice as fast:

# %%
frozen = freeze(model5, [r"^backbone\."])
groups = param_groups(model5, 1e-3, {r"\.bias$": 2.0})
print(f"frozen: {len(frozen)} tensors, e.g. {frozen[:2]}")
for group in groups:
    print(f"group {group['name']!r}: lr {group['lr']:.4g}, {len(group['params'])} tensors")
before = {name: value.clone() for name, value in model5.state_dict().items()}
fit(model5, five, optimizer=torch.optim.AdamW(groups), max_steps=2, batch_size=4, **QUIET)
after = model5.state_dict()
changed = {name for name in after if not torch.equal(after[name], before[name])}
print("frozen weights changed:", sorted(set(frozen) & changed))
print("head weights changed:", any(name.startswith("cls_heads.") for name in changed))
statistics = sorted(n for n in changed if n.startswith("backbone.") and "running" in n)
print(f"backbone batch-norm statistics changed: {len(statistics)}, e.g. {statistics[0]}")

# %% [markdown]
# The 18 frozen tensors are the backbone's convolution and batch-norm weights and biases.
# `param_groups` puts every trainable tensor in exactly one group: the 12 biases outside the
# backbone in the `\.bias$` group at twice the rate, the 16 other tensors at the base rate. (Scaling
# a group's learning rate is PyTorch's form of the gradient multiplier: the two are the same for
# SGD, and for Adam-like optimizers, which normalise the gradient's size away, only the rate has an
# effect.) After two steps no frozen weight moved and the heads did.
#
# But the frozen backbone's batch-norm **running statistics** changed (the running mean and
# variance of its layers): `requires_grad=False` stops gradients, not the statistics a
# `BatchNorm2d` layer updates in training mode. Freezing a layer
# completely also takes `freeze_batch_norm`, which swaps each `BatchNorm2d` for torchvision's
# `FrozenBatchNorm2d` with the same numbers, used as constants (section 5 needs it too):

# %%
replaced = freeze_batch_norm(model5)
in_backbone = sum(
    isinstance(module, FrozenBatchNorm2d) for module in model5.backbone.modules()
)  # fmt: skip
print(f"batch-norm layers frozen: {replaced} ({in_backbone} of them in the backbone)")
before = {name: value.clone() for name, value in model5.state_dict().items()}
fit(
    model5,
    five,
    optimizer=torch.optim.AdamW(param_groups(model5, 1e-3)),
    max_steps=1,
    batch_size=4,
    **QUIET,
)
print(
    "backbone tensors changed now:",
    sum(
        not torch.equal(v, before[n])
        for n, v in model5.state_dict().items()
        if n.startswith("backbone.")
    ),
)

# %% [markdown]
# ### 3d. Gradient clipping
#
# `clip_grad_norm_(params, max_norm)` treats all gradients as one long vector; if its length
# exceeds `max_norm`, every gradient is scaled by `max_norm / length`, so the direction is kept:

# %%
w = torch.zeros(2, requires_grad=True)
(w * torch.tensor([3.0, 4.0])).sum().backward()
norm = torch.nn.utils.clip_grad_norm_([w], max_norm=1.0)
print("norm before:", norm.item(), "| gradient after:", [round(g, 4) for g in w.grad.tolist()])

# %% [markdown]
# The gradient (3, 4) has length 5; scaled by 1/5 it becomes (0.6, 0.8), of length 1. `fit` clips
# when given `grad_clip_norm` and records the norm *before* clipping, so a run's history shows how
# often clipping acted:

# %%
torch.manual_seed(0)
model = build_model("ssd", len(classes))
history = fit(
    model,
    shapes,
    optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
    grad_clip_norm=10.0,
    max_steps=4,
    batch_size=4,
    **QUIET,
)
print("gradient norm before clipping, per step:", [round(g, 1) for g in history.grad_norm])
clipped = sum(g > 10.0 for g in history.grad_norm)

# %% jupyter={"source_hidden": true}
say(
    f"Clipping acted at {clipped} of the {len(history.grad_norm)} steps: a freshly initialised "
    "detector's gradients are large."
)

# %% [markdown]
# ### 3e. The NaN check
#
# A single image full of NaN (a corrupt file decoded badly, a division by zero in an
# augmentation) poisons the loss, the gradients and then every weight. `fit` checks the loss terms
# of every step before the backward pass and stops at the first non-finite one:


# %%
class Corrupted(torch.utils.data.Dataset):
    """``data`` with image ``bad`` replaced by NaN."""

    def __init__(self, data, bad):
        self.data, self.bad = data, bad

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        image, target = self.data[i]
        return (torch.full_like(image, float("nan")) if i == self.bad else image), target


torch.manual_seed(0)
model = build_model("ssd", len(classes))
try:
    fit(
        model,
        Corrupted(shapes, bad=5),
        optimizer=torch.optim.AdamW(model.parameters()),
        epochs=1,
        batch_size=4,
        shuffle=False,
        **QUIET,
    )
except NonFiniteLossError as error:
    print(
        "stopped at step",
        error.step,
        "| non-finite terms:",
        [k for k, v in error.values.items() if not math.isfinite(v)],
    )
    print(textwrap.fill(str(error), width=100))

# %% [markdown]
# Without shuffling, batch 2 holds images 4 to 7, image 5 among them: the run stops at step 2,
# names both loss terms, lists the usual causes, and the weights are those after step 1 (the step
# that saw the NaN never reached the optimizer).
#
# ### 3f. Checkpoints and an exact resume
#
# `fit` writes `last.pt` atomically (a temporary file, `fsync`, then an atomic rename: a crash
# during the write leaves the previous checkpoint intact, and the next run removes the temporary
# file) every `checkpoint_every` steps, at the end, and when training stops on an exception (a NaN,
# a corrupt image, Ctrl-C). It holds the model, the optimizer, the scheduler, the step, the epoch
# and the position in it, the history and every random generator's state. A run of 6 steps (2 epochs
# of 3 batches), straight through, and the same run interrupted after step 4, in the middle of epoch
# 2, then resumed:


# %%
def run(folder, max_steps, resume=False):
    torch.manual_seed(0)
    model = build_model("ssd", len(classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = ShapesDataset(
        12, image_size=64, min_size=6, max_size=32, transforms=train_transforms("shapes", size=64)
    )
    fit(
        model,
        data,
        optimizer=optimizer,
        epochs=2,
        max_steps=max_steps,
        batch_size=4,
        checkpoint_dir=work / folder,
        resume=resume,
        **QUIET,
    )
    return model


straight = run("straight", max_steps=6)
run("interrupted", max_steps=4)
shutil.copy(work / "interrupted" / CHECKPOINT_NAME, work / "step4.pt")  # kept for the next cell
resumed = run("interrupted", max_steps=6, resume=True)
same = all(
    torch.equal(a, b)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True)
)
print("resumed == straight, bit for bit:", same)
state = load_checkpoint(work / "interrupted" / CHECKPOINT_NAME)
print("checkpoint entries:", sorted(state))
print(
    "step", state["step"], "| epoch", state["epoch"], "| generators saved:", sorted(state["rng"][0])
)

# %% [markdown]
# Identical weights, although the data set draws random augmentations and SSD's hard-negative
# mining depends on the weights: the resumed run skipped exactly the 1 batch of epoch 2 it had
# already trained on, restored the random generators of Python, NumPy and torch, and went on.
# That holds for every run on the CPU. On a GPU some kernels (the backward passes of convolutions
# and of `index_select`, for example) add in a varying order, so that two runs with the same
# settings, and a run and its resumed twin, end close together but not bit for bit, unless `fit`
# runs with deterministic kernels (`fit(..., deterministic=True)`; its `resume` argument says
# more).
#
# Restoring only the model and the optimizer (what the template's checkpoint holds) is not enough:

# %%
step4 = load_checkpoint(work / "step4.pt")
naive = build_model("ssd", len(classes))
naive.load_state_dict(step4["model"])
optimizer = torch.optim.AdamW(naive.parameters(), lr=1e-3)
optimizer.load_state_dict(step4["optimizer"])
data = ShapesDataset(
    12, image_size=64, min_size=6, max_size=32, transforms=train_transforms("shapes", size=64)
)
fit(naive, data, optimizer=optimizer, max_steps=2, batch_size=4, **QUIET)
same = all(
    torch.equal(a, b)
    for a, b in zip(straight.state_dict().values(), naive.state_dict().values(), strict=True)
)
print("naive resume == straight:", same)

# %% [markdown]
# Restarted from the step-4 weights and optimizer state but without the data position and the
# generators, the two remaining steps train on other batches (epoch 0's order again, from its
# start) with other augmentations, and end elsewhere.
#
# ## 4. Feeding the model: sample pool or DataLoader
#
# A step waits for its batch. Three ways to produce batches of 8 augmented 128 x 128 shapes
# images, measured here as images per second and as a ratio to the first way (the numbers
# change from run to run, and a lot on a busy machine):

# %%
# NBVAL_IGNORE_OUTPUT
source = ShapesDataset(10_000, image_size=128, transforms=train_transforms("shapes"))
BATCHES, BATCH = 12, 8


def images_per_second(next_batch):
    next_batch()  # start-up and warm-up
    start = time.perf_counter()
    for _ in range(BATCHES):
        next_batch()
    return BATCHES * BATCH / (time.perf_counter() - start)


items = iter(range(10_000))
plain = images_per_second(lambda: detection_collate([source[next(items)] for _ in range(BATCH)]))


def data_loader_rate():
    """Images per second from a DataLoader with 2 worker processes (stopped on return)."""
    batches = iter(
        DataLoader(
            source, batch_size=BATCH, shuffle=True, num_workers=2, collate_fn=detection_collate
        )
    )
    return images_per_second(lambda: next(batches))


workers = data_loader_rate()
with SamplePool.from_dataset(source, pool_size=64, num_workers=2, min_samples=64).start() as pool:
    served = images_per_second(lambda: pool.get_batch(BATCH))
    time.sleep(1.0)
    produced_before, start = pool.produced, time.perf_counter()
    time.sleep(1.0)
    fresh = (pool.produced - produced_before) / (time.perf_counter() - start)
for name, rate in (
    ("main process, one image after the other", plain),
    ("DataLoader, 2 worker processes", workers),
    ("SamplePool, 2 threads, batches served", served),
    ("SamplePool, new samples rendered", fresh),
):
    print(f"{name:<40} {rate:9.0f} images/s = {rate / plain:9,.1f} x the main process")

# %% [markdown]
# How to read the numbers (they change from run to run): rendering and augmenting in the main
# process gives a baseline; a `DataLoader` with worker *processes* renders in parallel, truly (each
# process has its own Python interpreter), at the price of copying every batch between processes (on
# a machine whose cores are busy with other work, the workers compete with them and may well lose to
# the main process). The sample pool serves batches almost for free, because it hands out samples it
# already holds, with repetition; the rate at which it renders *new* samples is bounded by its
# threads sharing one interpreter (only the NumPy and torch parts run in parallel). The pool suits
# expensive samples and a model that can learn from repeats (WPOD-Net, lesson 08); the DataLoader
# gives every sample exactly once per epoch, which `fit`'s exact resume relies on.
#
# ## 5. Several processes: data-parallel training
#
# The trainer's "clones" put one copy of the model on each GPU, split each batch between them and
# add up their gradients. PyTorch's `DistributedDataParallel` (DDP) does the same with one process
# per GPU, launched by `torchrun`. Each process:
#
# - builds the same model (DDP copies rank 0's weights to the others at the start);
# - trains on its own shard of every epoch (`DistributedSampler`: process `r` of `W` takes every
#   `W`-th image of the shuffled order);
# - after its backward pass, **averages the gradients with the other processes** (an all-reduce),
#   so every process takes the same optimizer step and the replicas stay identical.
#
# One step then trains on `W x B` images. Is it *the same* step as one process with a batch of
# `W x B`? The average of the processes' gradients equals the gradient of the combined batch's
# loss only if the loss of a batch is the **mean of independent per-image losses**. Batch norm
# breaks that in training mode: each image is normalised with the statistics of the images it is
# batched with. WPOD-Net (lesson 08) averages per-image losses, so for it the question is batch
# norm alone: the loss of two images together, against the mean of their losses one at a time:

# %%
plates, plate_classes = open_data(parse_data("plates"), length=8, seed=0, image_size=64)
batch_images, batch_targets = detection_collate([plates[0], plates[1]])


def together_equals_alone(model):
    """Is the loss of the two images batched together the mean of their losses one at a time?"""
    together = sum(model(batch_images, batch_targets).values()).item()
    pairs = zip(batch_images, batch_targets, strict=True)
    alone = sum(sum(model([image], [target]).values()).item() for image, target in pairs) / 2
    return math.isclose(together, alone, rel_tol=1e-5)


torch.manual_seed(0)
wpod = build_model("wpod", len(plate_classes))
wpod.train()
print("batch norm:", together_equals_alone(wpod))
freeze_batch_norm(wpod)
print("frozen batch norm:", together_equals_alone(wpod))

# %% [markdown]
# With training-mode batch norm the two differ; with the statistics frozen they agree. So two
# processes of two images each should end exactly where one process with four images ends, if
# batch norm is frozen (`--frozen-batch-norm` on the command line). The command line under
# `torchrun`, two processes on this CPU (the Gloo backend), three steps. `--redirects 3` writes
# each process's output to a file of its own under `--log-dir` (on one shared console the lines
# of two processes can interleave); the cell prints them rank by rank:

# %%
# NBVAL_IGNORE_OUTPUT
common = [
    "train", "--model", "wpod", "--data", "plates", "--frozen-batch-norm", "--image-size", "64",
    "--device", "cpu",
    "--train-size", "16", "--epochs", "1", "--max-steps", "3", "--log-every", "1", "--no-progress",
]  # fmt: skip
command = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
    "--log-dir", str(work / "logs"), "--redirects", "3",
    "-m", "tutorial_det", *common, "--batch-size", "2", "--out", str(work / "two"),
]  # fmt: skip
done = subprocess.run(
    command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300
)
rank_logs = {path.parent.name: path.read_text() for path in (work / "logs").rglob("stdout.log")}
for rank, text in sorted(rank_logs.items()):
    print("\n".join(f"[rank {rank}] {line}" for line in text.splitlines()))
print("exit status:", done.returncode)
if done.returncode != 0:  # what torchrun says went wrong
    print(done.stderr[-3000:])

# %% [markdown]
# Only rank 0 logs the losses and writes the checkpoint and the model file; both
# processes print a fingerprint of their weights at the end (the sum of the absolute values of
# every parameter). Now one process with a batch of four, through the same command line:

# %%
# NBVAL_IGNORE_OUTPUT
status = tutorial_det_cli([*common, "--batch-size", "4", "--out", str(work / "one")])

# %%
fingerprints = {
    rank: found[0]
    for rank, text in rank_logs.items()
    if (found := re.findall(r"rank \d of 2: step 3, weights fingerprint (\S+)", text))
}
print(
    "both ranks reported:",
    sorted(fingerprints),
    "| identical replicas:",
    len(set(fingerprints.values())) == 1,
)
two = dict(load_model_file(work / "two" / "model.pt")[0].named_parameters())
one = dict(load_model_file(work / "one" / "model.pt")[0].named_parameters())
seed_everything(0)  # what the command line does with --seed 0 before building the model
initial = build_model("wpod", 2)
freeze_batch_norm(initial)
start = dict(initial.named_parameters())
difference = max((two[n] - one[n]).abs().max().item() for n in one)
moved = max((one[n] - start[n]).abs().max().item() for n in one)
print("2 processes x 2 images == 1 process x 4 images (within 1e-5):", difference < 1e-5)
print("the weights moved by more than 1e-3 in training:", moved > 1e-3)
h_two, h_one = (json.loads((work / name / "history.json").read_text()) for name in ("two", "one"))
print(
    "same losses at every step:",
    all(
        math.isclose(a, b, rel_tol=1e-5) for a, b in zip(h_two["loss"], h_one["loss"], strict=True)
    ),
)

# %% [markdown]
# The two replicas are identical (same fingerprint), and the two-process run ends with the weights
# of the one-process run up to float rounding (the sums run in another order), while training moved
# the weights far more than that. The history of the two-process run records the losses averaged
# over the processes, which equal the one-process losses step by step.
#
# What does not carry over: with batch norm in training mode (most detectors trained from
# scratch), or a loss normalised by a count over the batch (SSD divides by the number of matched
# priors in the batch), or random sampling inside the model (Faster R-CNN's 256 anchors), `W x B`
# on `W` processes is a *different* but equally valid training run, not a copy of the one-process
# run. On GPUs, `torch.nn.SyncBatchNorm` computes batch statistics over all processes (it has no
# CPU implementation).
#
# ## 6. The command line
#
# `tutorial-det` (or `python -m tutorial_det`) wraps all of this for any model of the registry:
#
# ```bash
# tutorial-det train --model ssd --data shapes --epochs 20 --out runs/ssd          # checkpoints, history, model file
# tutorial-det train --model ssd --data shapes --epochs 20 --out runs/ssd --resume # continue exactly
# torchrun --nproc_per_node=4 -m tutorial_det train --model ssd --data shapes --epochs 20 --out runs/ssd4
# tutorial-det evaluate --checkpoint runs/ssd/model.pt --data shapes --json runs/ssd/eval.json
# tutorial-det detect photo.jpg --checkpoint runs/ssd/model.pt --out runs/ssd/detections
# ```
#
# `train` writes `run.json` (its settings; `--resume` refuses to continue with different ones),
# `last.pt` (fit's checkpoint), `history.json` and `model.pt`, a model file holding the model's
# registry name, its class names and options next to the weights, so that `evaluate` and `detect`
# rebuild it without being told what it is. Lesson 10 explains the numbers `evaluate` reports.
#
# The checkpoints and model files this lesson wrote are not needed any more:

# %%
written = sum(path.stat().st_size for path in work.rglob("*") if path.is_file())
shutil.rmtree(work)
print(f"removed {written / 1e6:.0f} MB of checkpoints, model files and logs")

# %% [markdown]
# ## 7. Exercises
#
# **a) One epoch, right.** Write `train_epoch(model, batches, optimizer, scheduler=None)`: for
# each `(images, targets)` batch, the loss is the sum of the model's loss terms; zero the
# gradients, backward, step the optimizer; after the last batch step the scheduler (an epoch-based
# one) once; return the mean of the batches' losses as a Python float. The check compares your
# function with `fit` on a toy detector.


# %%
def train_epoch(model, batches, optimizer, scheduler=None):
    """Train one epoch; return the mean batch loss (a float)."""
    raise NotImplementedError  # your code here


check_train_epoch(train_epoch)

# %% [markdown]
# ## Summary
#
# - The classic template's bugs are silent: a misspelt scheduler steps another optimizer's
#   schedule, a constant added to the loss only shifts the logs, an epoch loss never accumulated
#   reads 0 (and makes every checkpoint "the best"), an epoch schedule stepped per batch decays
#   0.95²⁵⁰ = 2.7e-06 in one epoch, and a wrong key in the test loop fails (at best) only there.
# - `fit` does the steps in a fixed order: forward, a non-finite check naming the step and terms,
#   backward, clipping (recording the norm before), optimizer and scheduler steps, history,
#   evaluation, atomic checkpoints.
# - A production trainer's features map to PyTorch one by one: DataLoader workers (or a threaded
#   sample pool), transforms v2, `load_partial_state_dict`, `freeze` plus `FrozenBatchNorm2d`,
#   `param_groups` multipliers, `clip_grad_norm_`, `History`, checkpoints, DDP under `torchrun`.
# - An exact resume needs more than weights and optimizer: the scheduler, the position in the
#   epoch, the data order and every random generator. With them, an interrupted run ends
#   bit-for-bit where an uninterrupted one does (on a GPU with `fit(..., deterministic=True)`).
# - `W` processes of `B` images equal one process of `W x B` images only for per-image losses
#   without cross-image coupling (frozen batch norm): shown here with WPOD-Net to within 1e-5.
#
# **More exercises**
# 1. Train the small SSD on shapes with `tutorial-det train` for 5 epochs, interrupt it with
#    Ctrl-C during epoch 3, resume it with `--resume`, and compare `model.pt` with an uninterrupted
#    run's (`torch.equal` on every tensor).
# 2. Repeat section 5 without `--frozen-batch-norm`. How far apart do the two runs end, compared
#    with how far training moved the weights?
# 3. With the template's per-batch stepping, what factor per batch would give 0.95 per epoch of
#    250 batches? Write the schedule as `lambda step: ...` for `scheduler_interval="step"`.
# 4. Time `fit` with `num_workers=0` and `num_workers=2` on 128-pixel shapes with
#    `train_transforms`: is the model or the data the bottleneck on your machine?
#
# Next: **10 · Evaluation**, which measures what the trained detectors find.
