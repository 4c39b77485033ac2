# %% [markdown]
# # 06 · Losses and training
#
# Lessons 03 to 05 built every target and every prediction of Faster R-CNN. This lesson writes
# the four loss terms that compare them, says exactly what each is divided by, and then trains
# the whole detector on synthetic shapes on this machine and measures it.
#
# **You will learn**
# - the RPN's two terms: cross entropy over the sampled anchors and smooth L1 over the positive
#   ones, normalised by the number of sampled anchors (and how that relates to the paper's
#   `N_cls`, `N_reg` and lambda = 10);
# - the RoI head's two terms: cross entropy over the sampled RoIs and smooth L1 on each positive
#   RoI's deltas *for its own class*, normalised by the number of sampled RoIs;
# - three loss bugs of the walkthrough this course grew from, and what they do to the numbers;
# - to train `FasterRCNN` with `fit`, evaluate its mAP on held-out images with
#   `tutorial_det.metrics`, look at its detections and its training curves.
#
# **You need** lessons 03 to 05. Most of the notebook's running time is section 5's training.

# %%
import copy
import math
import time
from collections import Counter

import matplotlib.pyplot as plt
import torch
from torch.nn import functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork as TorchvisionRPN

from tutorial_det.backbones import imagenet_normalize, vgg16_stride16
from tutorial_det.boxes import box_area, box_iou
from tutorial_det.data import SHAPE_CLASSES, ShapesDataset
from tutorial_det.exercises import check_roi_head_loss, check_rpn_loss
from tutorial_det.faster_rcnn import FasterRCNN
from tutorial_det.labelling import anchor_targets
from tutorial_det.metrics import mean_average_precision
from tutorial_det.prose import say
from tutorial_det.roi import RoIHead, proposal_targets, roi_head_loss
from tutorial_det.rpn import (
    SMOOTH_L1_BETA,
    TRAIN_PROPOSALS,
    RegionProposalNetwork,
    objectness_probability,
    propose,
    rpn_loss,
    to_anchor_order,
)
from tutorial_det.runtime import pick_device, seed_everything
from tutorial_det.samples import load_sample
from tutorial_det.training import evaluate, fit
from tutorial_det.viz import draw_boxes, plot_history, show_image

seed_everything(0)
device = pick_device()  # where section 5 trains: cuda, then mps, then cpu
if device.type == "cpu":
    torch.set_num_threads(1)  # the same numbers whatever the number of cores: see section 5

# %% [markdown]
# ## 1. The example of lessons 04 and 05
#
# The astronaut photo at 800 x 800, random-weight VGG16 features, the untrained RPN with its
# 22500 anchors, lesson 03's anchor targets (256 sampled anchors), lesson 04's 2000 proposals
# and lesson 05's 128 RoI targets, all rebuilt with the same seeds.

# %%
size = 800
photo800, photo_target = load_sample("astronaut", size=size)
gt = photo_target["boxes"].as_subclass(torch.Tensor)
gt_labels = photo_target["labels"].as_subclass(torch.Tensor)
with torch.no_grad():
    features = vgg16_stride16().eval()(imagenet_normalize(photo800)[None])

torch.manual_seed(0)
rpn = RegionProposalNetwork(512)
anchors, logits, deltas = rpn.predict(features)  # with gradients: we take losses of them
labels, target_deltas = anchor_targets(
    anchors, gt, (size, size), generator=torch.Generator().manual_seed(0)
)
proposals, _ = propose(
    anchors,
    objectness_probability(logits[0].detach()),
    deltas[0].detach(),
    (size, size),
    TRAIN_PROPOSALS,
)
rois, roi_labels, roi_deltas = proposal_targets(
    proposals, gt, gt_labels, generator=torch.Generator().manual_seed(0)
)
n_sampled, n_positive = int((labels >= 0).sum()), int((labels == 1).sum())
n_roi_positive = int((roi_labels > 0).sum())
print("anchors:", tuple(anchors.shape), "| sampled:", n_sampled, end=" ")
print("(positive", n_positive, "+ negative", int((labels == 0).sum()), ")")
print("RoIs:", tuple(rois.shape), "| positive:", n_roi_positive)

# %% jupyter={"source_hidden": true}
say(
    f"{n_sampled} anchors take part in the RPN's loss: the {n_positive} positives (IoU >= 0.7 "
    f"with one of the {len(gt)} objects, or an object's best anchor) and "
    f"{n_sampled - n_positive} negatives; the other {len(anchors) - n_sampled} are ignored. "
    f"The RoI head learns from {len(rois)} RoIs, {n_roi_positive} of them positive."
)

# %% [markdown]
# ## 2. The RPN loss
#
# **Objectness.** For every *sampled* anchor, the cross entropy between the two logits
# (background, object) and its label 0 or 1; ignored anchors (-1) take no part. **Box.** For every
# *positive* anchor, the smooth L1 distance between its 4 predicted deltas and its 4 targets,
# summed. Both are divided by `S`, the number of sampled anchors:
#
# `L_rpn = 1/S sum_{sampled} CE(logits_k, label_k) + lambda 1/S sum_{positive} smoothL1(d_k - t_k)`
#
# with lambda = 1. The paper writes `1/N_cls sum L_cls + lambda 1/N_reg sum p*_k L_reg`, with
# `N_cls = 256` (the mini-batch), `N_reg ~ 2400` (the number of anchor *locations* of a
# ~600 x 1000 image) and lambda = 10: the box sum gets a weight of 10 / 2400 = 1 / 240, nearly
# the 1 / 256 used here. Dividing both terms by the sampled count with lambda = 1 (torchvision's
# choice) balances them the same way and does not depend on the image size.

# %%
objectness, box = rpn_loss(logits, deltas, labels[None], target_deltas[None])
print(f"objectness {objectness.item():.4f} (ln 2 = {math.log(2):.4f}) | box {box.item():.4f}")

# %% jupyter={"source_hidden": true}
say(
    "The untrained head says 50 % for every anchor, so every sampled anchor costs "
    f"`-ln 0.5 = ln 2 = {math.log(2):.4f}`, whatever its label: the objectness loss of an "
    "untrained RPN is ln 2. The box term is the smooth L1 distance of the (near-zero) predicted "
    f"deltas to the targets of the {n_positive} positives, summed and divided by {n_sampled}."
)

# %% [markdown]
#
# **Smooth L1** is quadratic near 0 and linear beyond `beta`: `0.5 x² / beta` for `|x| < beta`,
# else `|x| - beta / 2`. The quadratic part gives small errors a small, shrinking gradient; the
# linear part keeps the gradient of large errors (outliers, early training) at 1 instead of
# growing with the error as L2 would. torchvision uses `beta = 1/9` for both Faster R-CNN box
# losses (the original code used `sigma = 3`, `beta = 1 / sigma²`, for the RPN's loss and
# `beta = 1` for the RoI head's); textbooks use `beta = 1`:

# %%
x = torch.linspace(-2, 2, 401)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(x, x.abs(), label="|x| (L1)", color="grey", linestyle=":")
ax.plot(x, 0.5 * x**2, label="x² / 2 (L2)", color="grey", linestyle="--")
for beta in (1.0, SMOOTH_L1_BETA):
    y = F.smooth_l1_loss(x, torch.zeros_like(x), beta=beta, reduction="none")
    ax.plot(x, y, label=f"smooth L1, beta = {beta:.3g}")
ax.set_ylim(0, 2)
ax.set_xlabel("prediction - target")
ax.legend()
plt.show()

# %% [markdown]
# With `beta = 1/9` the loss is L1 lowered by `beta / 2`, except for a rounded tip within 1/9 of 0.
#
# torchvision's RPN computes the same two numbers. It predicts one logit per anchor; two logits
# `(b, o)` are one logit `o - b` (lesson 04), and the two-class cross entropy equals its binary
# cross entropy:

# %%
tv_rpn = TorchvisionRPN(AnchorGenerator(), torch.nn.Identity(), 0.7, 0.3, 256, 0.5, {}, {}, 0.7)
tv_objectness, tv_box = tv_rpn.compute_loss(
    (logits[0, :, 1] - logits[0, :, 0]).reshape(-1, 1),
    deltas[0],
    [labels.float()],
    [target_deltas],
)
print(f"torchvision: objectness {tv_objectness.item():.4f} | box {tv_box.item():.4f}")
print(
    "same:",
    torch.allclose(objectness, tv_objectness) and torch.allclose(box, tv_box),
)

# %% [markdown]
# (torchvision's loss samples its own 256 anchors from the labels; with exactly 256 labelled
# anchors it keeps them all, so the two agree to the last digit.)
#
# **The same model, not the same training.** The cross entropy's gradient with respect to `o`
# is the negative of its gradient with respect to `b`: the two halves of `cls_logits` move by
# the same amount in opposite directions, each as far as torchvision's single logit would, so
# their difference `o - b` moves twice as far. A few Adam steps on the objectness layer alone,
# from the same start (the single logit's weights are the differences of the pair's):

# %%
hidden = F.relu(rpn.head.conv(features)).detach()  # [1, 512, 50, 50]: what the 1x1 convs see
sampled = labels >= 0
pair = rpn.head.cls_logits  # 2 A channels: (background, object) for each anchor
single = torch.nn.Conv2d(512, rpn.num_anchors, 1)  # torchvision's: one logit for each anchor
with torch.no_grad():
    single.weight.copy_(pair.weight[1::2] - pair.weight[0::2])
    single.bias.copy_(pair.bias[1::2] - pair.bias[0::2])


def objectness_loss(layer):
    out = layer(hidden)
    if out.shape[1] == 2 * rpn.num_anchors:  # two logits: cross entropy
        return F.cross_entropy(to_anchor_order(out, 2)[0][sampled], labels[sampled])
    one = to_anchor_order(out, 1)[0, :, 0]  # one logit: binary cross entropy
    return F.binary_cross_entropy_with_logits(one[sampled], labels[sampled].float())


def after_adam_steps(layer, lr, steps=5):
    layer = copy.deepcopy(layer)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    for _ in range(steps):
        loss = objectness_loss(layer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return objectness_loss(layer).item()


print(
    f"before: two logits {objectness_loss(pair).item():.4f}, one {objectness_loss(single).item():.4f}"
)
print(
    f"after 5 steps at lr 1e-3: two logits {after_adam_steps(pair, 1e-3):.4f}, "
    f"one {after_adam_steps(single, 1e-3):.4f}; one at lr 2e-3: {after_adam_steps(single, 2e-3):.4f}"
)

# %% [markdown]
# The same loss before; after five steps at the same learning rate the pair's is lower, and the
# single logit at twice the rate matches it (`tests/test_rpn.py` checks that after ten Adam steps
# the weights agree, and that at the same learning rate they do not). This package keeps the
# paper's two logits: at the same learning rate its objectness logits move twice as far per step as
# torchvision's. `benchmarks/train_faster_rcnn.py` compares the two detectors step for step over
# several seeds.
#
# ## 3. The RoI head loss
#
# **Classifier.** The cross entropy of each sampled RoI's class logits against its class (0 for
# background), averaged over the `S = 128` sampled RoIs. **Box.** For each *positive* RoI, the
# smooth L1 distance between the 4 deltas it predicts **for its own class** and its target,
# summed and divided by the same `S`. The deltas of the other classes get no gradient from that
# RoI; negatives have no box loss at all. A RoI head for 21 classes (lesson 05) on this example:

# %%
torch.manual_seed(0)
head = RoIHead(512, 21, pooling="pool", representation_size=256, paper_init=True)
class_logits, box_deltas = head(features, [rois])
classifier, roi_box = roi_head_loss(class_logits, box_deltas, roi_labels, roi_deltas)
print(f"classifier {classifier.item():.4f} (ln 21 = {math.log(21):.4f}) | box {roi_box.item():.4f}")
tv_classifier, tv_roi_box = fastrcnn_loss(
    class_logits, box_deltas.reshape(128, -1), [roi_labels], [roi_deltas]
)
print(
    "same as torchvision's fastrcnn_loss:",
    torch.allclose(classifier, tv_classifier) and torch.allclose(roi_box, tv_roi_box),
)
torch.manual_seed(0)
default_head = RoIHead(512, 21, pooling="pool", representation_size=256)  # PyTorch's init
default_classifier, _ = roi_head_loss(*default_head(features, [rois]), roi_labels, roi_deltas)
print(f"with PyTorch's initialisation: classifier {default_classifier.item():.4f}")

# %% jupyter={"source_hidden": true}
say(
    "With the paper's initialisation (`paper_init=True`: output weights from N(0, 0.01) and "
    "N(0, 0.001)) the untrained classifier's 21 logits are all about 0 and every class gets a "
    f"probability of about 1/21: the loss is about `ln 21 = {math.log(21):.4f}` per RoI. The box "
    f"term is the distance of {n_roi_positive} positives' near-zero deltas to their targets, "
    f"divided by {len(rois)}. The package's default keeps PyTorch's initialisation of these two "
    "layers, as torchvision does: the untrained classifier's loss is then "
    f"{default_classifier.item():.4f}, just as close to ln 21, but its larger output weights pass "
    "larger gradients back to the shared layers. `benchmarks/train_faster_rcnn.py --paper-init` "
    "trains the detector with the paper's initialisation, to compare the two."
)

# %% [markdown]
#
# ## 4. Spot the bugs: three loss lines of the walkthrough
#
# The walkthrough's losses contain three mistakes. Here they are, written fresh in torch from
# the terms above. **Find each before reading on.**

# %%
smooth = F.smooth_l1_loss(
    deltas[0][labels == 1], target_deltas[labels == 1], beta=1.0, reduction="none"
)
rpn_label_loss = F.cross_entropy(logits[0], labels, ignore_index=-1)
rpn_lambda = 10.0
n_positive_rpn = (labels == 1).sum()
# (a) the RPN total: the label loss plus lambda times ... the label loss
rpn_total_seed = rpn_label_loss + rpn_lambda * rpn_label_loss
# (b) the RPN box loss: divided by N_reg, a name that no cell defines
try:
    rpn_box_seed = smooth.sum() / N_reg  # noqa: F821
except NameError as error:
    print("(b)", type(error).__name__ + ":", error)
# (c) the RoI box loss: divided by the RPN's number of positive anchors
positive_rois = roi_labels > 0
roi_smooth = F.smooth_l1_loss(
    box_deltas[positive_rois, roi_labels[positive_rois]],
    roi_deltas[positive_rois],
    beta=1.0,
    reduction="sum",
)
roi_box_seed = roi_smooth / n_positive_rpn
print(
    f"(a) RPN total: {rpn_total_seed.item():.4f} = 11 x the label loss {rpn_label_loss.item():.4f}"
)
print(f"(c) RoI box loss / {int(n_positive_rpn)} RPN positives: {roi_box_seed.item():.4f}", end=" ")
print(f"instead of / 128 sampled RoIs: {(roi_smooth / 128).item():.4f}")

# %% [markdown]
# **(a)** `rpn_total = label + lambda x label` is 11 times the label loss, and **the box loss is
# not in it at all**: the RPN's regression layer gets no gradient and never learns to move an
# anchor, so every proposal stays an anchor. Nothing crashes, and the loss curve even goes down.
# The line should read `label + lambda x box`.
#
# **(b)** The box loss divides by `N_reg`, which no cell of the walkthrough defines (it computes
# `N_positive_label_rpn` just above and does not use it): a `NameError`. With our normalisation
# the divisor is the number of sampled anchors (256), with the paper's the number of anchor
# locations.
#
# **(c)** The RoI head's box loss is divided by **the RPN's** positive count (printed above),
# a number from another stage that has nothing to do with the 128 RoIs this loss sums over: the
# weight of the RoI box loss then changes from image to image with how many anchors happened to
# be positive (many for large objects, few for small ones). It should be divided by the RoI
# head's own sample (128, torchvision's choice), or by its positives.
#
# The package's `rpn_loss` and `roi_head_loss` do it right; the checks below contain these cases
# among others:

# %%
check_rpn_loss(rpn_loss)
check_roi_head_loss(roi_head_loss)

# %% [markdown]
# ## 5. Training on synthetic shapes
#
# Now everything together. `FasterRCNN` follows torchvision's detection contract: in training
# mode `model(images, targets)` returns the four terms (`loss_objectness`, `loss_rpn_box_reg`,
# `loss_classifier`, `loss_box_reg`), and `fit` trains on their sum; in evaluation mode
# `model(images)` returns one `{"boxes", "labels", "scores"}` per image. Its defaults are sized for
# 128 x 128 images of shapes 12 to 64 pixels wide:
#
# - `TinyBackbone` with a top-down connection (`TopDownBackbone`): a stride-8 map that also sees
#   the stride-16 stage, so the smallest shapes are not lost in one cell;
# - anchors of 16, 32 and 64 pixels at ratios 0.5, 1, 2, those crossing the border labelled like
#   the others (on such small images most large anchors do);
# - the proposal layer of lesson 04 scaled to the image (the paper's 12000 / 2000 and 6000 / 300
#   are for images with ten times as many anchors);
# - the targets of lessons 03 and 05: 256 anchors and 128 RoIs sampled per image;
# - a RoI head with two 256-wide layers on 7 x 7 RoIAlign grids (one bilinear sample per bin);
# - at test time: score threshold 0.05, per-class NMS at 0.5, at most 100 detections per image.
#
# The next cell prints the sizes that follow from these settings on a 128 x 128 image.

# %%
seed_everything(0)
model = FasterRCNN(len(SHAPE_CLASSES))
train_settings, test_settings = model.rpn.train_proposals, model.rpn.test_proposals
cells = 128 // model.backbone.stride
print(f"feature map: {cells} x {cells} cells (stride {model.backbone.stride})")
print(f"anchors: {cells} x {cells} x {model.rpn.num_anchors} = {cells**2 * model.rpn.num_anchors}")
for name, settings in (("training", train_settings), ("test", test_settings)):
    print(
        f"{name}: the best {settings.pre_nms_top_n} boxes enter NMS at "
        f"{settings.nms_thresh}, {settings.post_nms_top_n} proposals are kept"
    )
print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")

# %% [markdown]
# The training set holds 100 000 images, far more than 150 steps of 8 use (`ShapesDataset` draws a
# new image for every index, so none is seen twice); the held-out images use another seed:

# %%
train_set = ShapesDataset(100_000, seed=0)
held_out = ShapesDataset(100, seed=1)
print("classes:", SHAPE_CLASSES)
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, index in zip(axes, range(4), strict=True):
    image, target = held_out[index]
    show_image(image, ax=ax)
    draw_boxes(ax, target["boxes"], target["labels"], class_names=SHAPE_CLASSES)
    ax.set_title(f"held-out image {index}: {len(target['boxes'])} shapes", fontsize=9)
plt.show()

# %% [markdown]
# We train for a fixed number of steps of 8 images from fixed seeds, with AdamW and a one-cycle
# learning rate (a short warm-up, then a cosine decay). On the CPU this notebook runs torch on one
# thread (set in the first cell): with two threads the sums are added in another order, and
# after a few steps the weights differ in their last digits, so the numbers would depend on how
# many cores the machine has. Every run of this notebook on the same CPU trains the same
# weights; only the time it takes varies, so the next cell's output is not compared when the
# notebook is tested.

# %%
# NBVAL_IGNORE_OUTPUT
steps = 150
optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=1.5e-3, total_steps=steps, pct_start=0.05
)
start = time.perf_counter()
history = fit(
    model,
    train_set,
    optimizer=optimizer,
    scheduler=scheduler,
    max_steps=steps,
    batch_size=8,
    shuffle=False,
    grad_clip_norm=10.0,
    log_every=50,
    progress=False,
    device=device,
)
train_seconds = time.perf_counter() - start
print(f"{steps} steps in {train_seconds:.0f} s ({train_seconds / steps:.2f} s per step)")

# %% [markdown]
# ## 6. Mean average precision on held-out images
#
# `evaluate` runs the model over the 100 held-out images; `mean_average_precision` (lesson 10
# builds it; it agrees with pycocotools) scores the detections: `map_50` counts a detection as
# correct at IoU >= 0.5 with an unmatched ground truth of its class, `map` averages over IoU 0.5
# to 0.95 (COCO's main number).

# %%
predictions, targets = evaluate(model, held_out, batch_size=25)
metrics = mean_average_precision(predictions, targets)
print(f"mAP@0.5 = {metrics['map_50']:.3f}, mAP@[.5:.95] = {metrics['map']:.3f}")
for name, ap in zip(SHAPE_CLASSES[1:], metrics["map_per_class"].tolist(), strict=True):
    print(f"  {name:>8}: AP@[.5:.95] {ap:.3f}")
print(f"small objects (< 32² px): {metrics['map_small']:.3f}, medium: {metrics['map_medium']:.3f}")
areas = torch.cat([box_area(target["boxes"]) for target in targets])
print(f"small objects: {int((areas < 32**2).sum())} of the {len(areas)} held-out shapes")

# %% jupyter={"source_hidden": true}
n_small = int((areas < 32**2).sum())
say(
    f"After {steps} steps ({steps * 8} images) the detector reaches mAP@0.5 = "
    f"**{metrics['map_50']:.3f}**. The COCO average over stricter IoUs, "
    f"{metrics['map']:.3f}, is lower: boxes are roughly right sooner than they are tight. Small "
    f"shapes (under 32 x 32 pixels, {n_small} of the {len(areas)} held-out shapes) score "
    f"{metrics['map_small']:.3f} against {metrics['map_medium']:.3f} for medium ones. This is a "
    "short run: the README's table follows our Faster R-CNN and torchvision's on the same "
    "backbone to 300 steps over five seeds (`benchmarks/train_faster_rcnn.py`)."
)

# %% [markdown]
# ## 7. Detections
#
# The first eight held-out images, with every detection scoring at least 0.5 (colour by class,
# class and score on each box; the title counts the detections) and the ground truth as dashed
# white boxes:

# %%
fig, axes = plt.subplots(2, 4, figsize=(13, 7))
for ax, index in zip(axes.flat, range(8), strict=True):
    image, target = held_out[index]
    found = predictions[index]
    confident = found["scores"] >= 0.5
    show_image(image, ax=ax)
    draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.5)
    draw_boxes(
        ax,
        found["boxes"][confident],
        found["labels"][confident],
        found["scores"][confident],
        class_names=SHAPE_CLASSES,
    )
    ax.set_title(f"image {index}: {int(confident.sum())} detections", fontsize=9)
plt.show()

# %% [markdown]
# What the figure shows, counted: each confident detection, best score first, takes the
# not-yet-taken ground truth it overlaps most at IoU >= 0.5, of any class. It is right when the
# classes agree, a wrong class when they do not, and an extra box when no ground truth is left for
# it; a ground truth that no detection takes is missed.

# %%
tally = Counter()
mistakes = []
for index in range(8):
    gt_boxes, gt_classes = targets[index]["boxes"], targets[index]["labels"]
    found = predictions[index]
    order = found["scores"].argsort(descending=True)
    order = order[found["scores"][order] >= 0.5]
    overlaps = box_iou(found["boxes"][order], gt_boxes)  # [confident, objects]
    taken = set()
    for row, d in enumerate(order.tolist()):
        free = [g for g in range(len(gt_boxes)) if g not in taken and overlaps[row, g] >= 0.5]
        if not free:
            tally["extra box"] += 1
            best = overlaps[row].max().item() if len(gt_boxes) else 0.0
            where = "a shape already taken" if best >= 0.5 else f"no shape (best IoU {best:.2f})"
            mistakes.append(
                f"image {index}: an extra {SHAPE_CLASSES[found['labels'][d]]} box "
                f"(score {found['scores'][d]:.2f}) on {where}"
            )
            continue
        g = max(free, key=lambda g: overlaps[row, g])
        taken.add(g)
        if found["labels"][d] == gt_classes[g]:
            tally["right"] += 1
        else:
            tally["wrong class"] += 1
            mistakes.append(
                f"image {index}: a {SHAPE_CLASSES[gt_classes[g]]} of "
                f"{box_area(gt_boxes[g : g + 1]).sqrt().item():.0f} px called a "
                f"{SHAPE_CLASSES[found['labels'][d]]} (score {found['scores'][d]:.2f})"
            )
    for g in sorted(set(range(len(gt_boxes))) - taken):
        tally["missed"] += 1
        side = box_area(gt_boxes[g : g + 1]).sqrt().item()
        mistakes.append(f"image {index}: a {SHAPE_CLASSES[gt_classes[g]]} of {side:.0f} px missed")
print(dict(tally))
print("\n".join(mistakes))

# %% jupyter={"source_hidden": true}
n_objects = sum(len(targets[i]["boxes"]) for i in range(8))
say(
    f"Of the {n_objects} shapes in these eight images, {tally['right']} are found with the right "
    f"class, {tally['wrong class']} with a wrong one, and {tally['missed']} are missed; "
    f"{tally['extra box']} confident boxes find no shape of their own. (A size in pixels above "
    "is the square root of the box's area.)"
)

# %% [markdown]
# ## 8. Training curves
#
# `plot_history` draws every loss term as recorded (faint) and smoothed (bold); the cell also
# prints each term at step 1, its mean over the last 10 steps and how many times smaller that
# is, and the 10 steps where the mean of the RoI box loss is largest:

# %%
plot_history(history, log_scale=True)
plt.show()
terms = {name: (values[0], sum(values[-10:]) / 10) for name, values in history.terms.items()}
for name, (first, last) in terms.items():
    change = f"{first / last:.1f} x smaller" if first >= last else f"{last / first:.1f} x larger"
    print(f"{name:>17}: step 1 {first:.3f}, last 10 steps {last:.3f} ({change})")
box_means = torch.tensor(history.terms["loss_box_reg"]).unfold(0, 10, 1).mean(dim=1)
peak = int(box_means.argmax())
print(f"loss_box_reg: largest 10-step mean {box_means[peak]:.3f} over steps {peak + 1}-{peak + 10}")

# %% jupyter={"source_hidden": true}
fastest = max(terms, key=lambda name: terms[name][0] / terms[name][1])
say(
    f"The objectness loss starts at {terms['loss_objectness'][0]:.3f} (ln 2 = "
    f"{math.log(2):.3f}) and ends {terms['loss_objectness'][0] / terms['loss_objectness'][1]:.0f} "
    "times smaller, "
    + (
        "the largest fall of the four terms: telling shapes from background is the easy part."
        if fastest == "loss_objectness"
        else f"while `{fastest}` falls the most."
    )
    + f" The classifier starts at {terms['loss_classifier'][0]:.3f} (ln 4 = {math.log(4):.3f}: "
    f"four classes, each about equally likely) and ends at {terms['loss_classifier'][1]:.3f}. "
    f"The RoI box loss first *rises*, from {terms['loss_box_reg'][0]:.3f} at step 1 to a 10-step "
    f"mean of {box_means[peak]:.3f} over steps {peak + 1}-{peak + 10}, and only then falls, to "
    f"{terms['loss_box_reg'][1]:.3f}."
)

# %% [markdown]
# Why the RoI box loss rises first: it is summed over the positive RoIs and divided by all 128
# sampled ones, and the ground truths added to the proposals are positives whose targets are
# zero. Count the proposals that reach IoU 0.5 with a shape, on the first training batch, before
# and after training:


# %%
def proposals_on_shapes(detector, images, targets):
    """Per image, the training proposals (ground truths not added) at IoU >= 0.5 with a shape."""
    detector.eval()
    detector.rpn.train()  # the training proposal settings; the RPN has no batch norm or dropout
    with torch.no_grad():
        batch, sizes = detector.transform([image.to(device) for image in images])
        targets = [
            {"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets
        ]
        proposals, _ = detector.rpn(detector.backbone(batch), sizes, targets)
    detector.rpn.eval()
    return [
        int((box_iou(p, t["boxes"]).max(dim=1).values >= 0.5).sum())
        for p, t in zip(proposals, targets, strict=True)
    ]


first_batch = [train_set[i] for i in range(8)]
first_images, first_targets = [b[0] for b in first_batch], [b[1] for b in first_batch]
seed_everything(0)
untrained = FasterRCNN(len(SHAPE_CLASSES)).to(device)  # the weights training started from
before = proposals_on_shapes(untrained, first_images, first_targets)
after = proposals_on_shapes(model, first_images, first_targets)
print("shapes per image:   ", [len(t["boxes"]) for t in first_targets])
print("untrained proposals:", before)
print("trained proposals:  ", after)

# %% jupyter={"source_hidden": true}
n_shapes = sum(len(t["boxes"]) for t in first_targets)
say(
    f"On the first batch's {n_shapes} shapes, the untrained RPN's proposals reach IoU 0.5 "
    f"{sum(before)} times; the trained RPN's, {sum(after)} times. Each of them is a positive RoI "
    "with real offsets to learn (at most 32 positives per image are sampled), while the "
    f"{n_shapes} added ground truths have none. The cell measures only the two ends, but this "
    "growth is how the term can rise while the head learns: as the proposals improve, the sum "
    "over the positives gains terms, divided by the same 128; the term falls once the head's "
    "deltas improve faster than the positives multiply. Placing boxes to a few "
    "pixels takes longer than finding them, which is also why mAP@[.5:.95] trails mAP@0.5. The "
    "learning rate follows the one-cycle schedule, so the curves flatten at the end as the steps "
    "shrink."
)

# %% [markdown]
#
# ## 9. Exercises
#
# **a) The RPN loss.** Write `my_rpn_loss(logits, deltas, labels, target_deltas)` for a batch
# (`[N, K, 2]`, `[N, K, 4]`, `[N, K]`, `[N, K, 4]`) returning `(objectness, box)` as in section 2
# (lambda = 1, smooth L1 with `beta = 1/9`, both divided by the number of sampled anchors of the
# whole batch).


# %%
def my_rpn_loss(logits, deltas, labels, target_deltas):
    """(objectness_loss, box_loss), two scalars."""
    raise NotImplementedError  # your code here


check_rpn_loss(my_rpn_loss)

# %% [markdown]
# **b) The RoI head loss.** Write `my_roi_head_loss(class_logits, box_deltas, labels,
# target_deltas)` (`[S, C]`, `[S, C, 4]`, `[S]`, `[S, 4]`) returning `(classifier, box)` as in
# section 3 (smooth L1 with `beta = 1/9`, both terms divided by `S`).


# %%
def my_roi_head_loss(class_logits, box_deltas, labels, target_deltas):
    """(classifier_loss, box_loss), two scalars."""
    raise NotImplementedError  # your code here


check_roi_head_loss(my_roi_head_loss)

# %% [markdown]
# ## Summary
#
# - RPN: cross entropy over the sampled anchors (ln 2 when untrained) + lambda x smooth L1 over
#   the positives' deltas, both divided by the number of sampled anchors (lambda = 1; the
#   paper's N_reg and lambda = 10 weigh the terms about the same). Equal to torchvision's.
# - RoI head: cross entropy over the sampled RoIs (ln C when untrained) + smooth L1 on each
#   positive's own-class deltas, divided by the number of sampled RoIs. Equal to torchvision's
#   `fastrcnn_loss`.
# - Bugs to avoid: a total that adds the label loss twice (the box layer then never learns), a
#   normaliser that does not exist, and a normaliser taken from another stage.
# - `FasterRCNN` trains with `fit` on synthetic shapes for a fixed number of steps, on the CPU
#   or a GPU; `evaluate` and `mean_average_precision` measure it on held-out images.
#
# **More exercises**
# 1. Train with the walkthrough's RPN total (a) for the same number of steps: what happens to
#    `loss_rpn_box_reg`, to the RPN's recall and to the mAP?
# 2. Train with `pooling="pool"` instead of RoIAlign, and with `representation_size=1024`.
#    Compare mAP@0.5, mAP@[.5:.95] and the time per step.
# 3. Train with `FasterRCNN(4, backbone=TinyBackbone(), anchor_sizes=(16, 32, 64))` (`from
#    tutorial_det.backbones import TinyBackbone`): the plain stride-16 map. Which objects does it
#    miss (look at `map_small`)?
# 4. Evaluate on `ShapesDataset(100, seed=1, max_objects=8)`: how does the number of objects per
#    image change the mAP?
#
# Next: **07 · SSD**, a detector with no proposal stage.
