# %% [markdown]
# # 07 · SSD: detection in a single shot
#
# Faster R-CNN works in two stages: the region proposal network suggests boxes, then a second
# head looks at each proposal again. **SSD** (the Single Shot MultiBox Detector, Liu et al.,
# ECCV 2016) drops the second stage. It puts a fixed set of reference boxes, the **priors**
# (the paper calls them *default boxes*), on several feature maps, small ones on the fine maps
# and large ones on the coarse maps, and a 3x3 convolution on every map predicts, for every
# prior at once, its class (background included) and four box offsets. One forward pass, a
# softmax, a decoding step and non-maximum suppression give the detections.
#
# **You will learn**
# - two ways to lay out priors: one size per feature map, and the paper's scales and aspect
#   ratios, up to SSD300's 8732 priors (checked against torchvision);
# - to explore which priors can match which objects, with a widget;
# - SSD's matching (each object takes its best prior, then every prior with IoU >= 0.5) and its
#   box targets with the "variances" 0.1 and 0.2;
# - the multibox loss step by step: softmax cross-entropy, **hard negative mining** (three
#   negatives per positive, per image), smooth L1, all divided by the number of matched priors;
# - two bugs in a popular way of writing that loss;
# - to train a small SSD on synthetic shapes for a fixed number of steps, decode its output,
#   measure its mAP, and compare its cost with Faster R-CNN's.
#
# **You need** lessons 00 (boxes, IoU), 02 (anchors) and 03 (labelling, box coding); the Faster
# R-CNN of lessons 04 to 06 helps for the comparison at the end. Most of its running time is
# training; the README's lesson table gives it on a quiet 2-core CPU.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD as TorchvisionSSD

from tutorial_det import ssd as S
from tutorial_det.anchors import (
    SSD300_ASPECT_RATIOS,
    SSD300_FEATURE_SIZES,
    SSD300_STEPS,
    ssd300_priors,
    ssd_scales,
)
from tutorial_det.boxes import box_convert, box_iou, decode_boxes
from tutorial_det.data import SHAPE_CLASSES, ShapesDataset
from tutorial_det.exercises import check_hard_negative_mining, check_match_priors
from tutorial_det.exercises.variants import (
    hard_negative_mask_across_batch,
    multibox_loss_tutorial_style,
    simple_priors,
)
from tutorial_det.labelling import match_priors
from tutorial_det.models import build_model
from tutorial_det.prose import say
from tutorial_det.runtime import median_time_ms, pick_device, seed_everything
from tutorial_det.training import evaluate, evaluate_map, fit
from tutorial_det.viz import class_colour, draw_boxes, draw_legend, plot_history, show_image
from tutorial_det.widgets import PriorsExplorer

seed_everything(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # one thread: see section 8

# %% [markdown]
# ## 1. The data and the simplest priors
#
# We work on the synthetic shapes of `tutorial_det.data`: 128 x 128 images with a few circles,
# squares and triangles on textured backgrounds (the settings are printed below; a shape's width
# is drawn before it is rotated, so rotated shapes have larger boxes). Any number of images can
# be drawn, and each is a pure function of `(seed, index)`, so a held-out set is just another
# seed.

# %%
examples = ShapesDataset(8, seed=3)
image, target = examples[0]
print("classes:", SHAPE_CLASSES)
print(
    f"{examples.min_objects} to {examples.max_objects} shapes per image, "
    f"{examples.min_size:g} to {examples.max_size:g} px wide, rotated up to {examples.max_rotation:g} degrees"
)
print("image:", tuple(image.shape))
for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
    print(f"  {SHAPE_CLASSES[label]:>8}: {box}, {box[2] - box[0]:g} x {box[3] - box[1]:g} px")

# %% [markdown]
# The simplest way to set up priors, the one many tutorials use, gives each feature map a
# **stride** (input pixels per cell), **one size in pixels**, and a few **aspect ratios** shared
# by all maps. With strides 4, 8, 16, sizes 10, 25, 40 pixels and ratios (height / width) 0.4,
# 0.8, 1.2, a 128-pixel image gets maps of 32 x 32, 16 x 16 and 8 x 8 cells with 3 priors per
# cell. `simple_priors` builds them with lesson 02's `anchor_base` and `grid_anchors` (it lives
# in `tutorial_det.exercises.variants`, apart from the library, with the other ways of the SSD
# tutorial this lesson compares with the paper's):

# %%
simple = simple_priors(128, strides=(4, 8, 16), scales=(10, 25, 40), ratios=(0.4, 0.8, 1.2))
print("priors:", tuple(simple.shape))
for stride, size in zip((4, 8, 16), (10, 25, 40), strict=True):
    cells = 128 // stride
    print(
        f"  stride {stride:>2}: {cells} x {cells} cells x 3 = {cells * cells * 3:>4} priors of {size} px"
    )

# %% [markdown]
# 3 x (1024 + 256 + 64) = 4032 priors. Are they any good for this data? A prior can only learn
# an object it is matched to, and section 4 will match priors with an IoU of at least 0.5. So
# count, over the objects of 200 training images, how many have **no** prior reaching 0.5:

# %%
train_boxes = torch.cat([t["boxes"] for _, t in ShapesDataset(200, seed=0)])
sides = (train_boxes[:, 2:] - train_boxes[:, :2]).amax(dim=1)  # [N] the longer side of each box


def coverage(priors, boxes=train_boxes):
    """How many objects lack a prior with IoU >= 0.5, and the mean number of such priors."""
    iou = box_iou(boxes, priors)
    reach = (iou >= 0.5).sum(dim=1)
    return int((reach == 0).sum()), reach.float().mean().item()


missing_simple, reach_simple = coverage(simple)
print(
    f"{len(train_boxes)} objects, boxes {sides.min():g} to {sides.max():g} px on their longer side"
)
print(f"{missing_simple} without a prior at IoU >= 0.5; {reach_simple:.2f} such priors per object")

# %% jupyter={"source_hidden": true}
say(
    f"{missing_simple} of {len(train_boxes)} objects ({missing_simple / len(train_boxes):.0%}) "
    f"have no prior at IoU 0.5 (on average an object has {reach_simple:.2f} such priors)."
)

# %% [markdown]
# Sizes 10, 25, 40 leave gaps, and the largest objects have nothing their size at all: a
# 60-pixel box containing a 40-pixel prior has an IoU of at most 40² / 60² = 0.44 with it.
# Matching would still force one prior onto each of them (section 4), but a prior far from its
# object has to learn a large, hard correction.
#
# ## 2. The paper's priors
#
# SSD sets the sizes by **scales**, fractions of the image side, spaced evenly from a small scale
# on the finest map to a large one on the coarsest:
#
# $$s_k = s_\text{min} + \frac{s_\text{max} - s_\text{min}}{m - 1}(k - 1), \qquad k = 1, \dots, m$$
#
# with $s_\text{min} = 0.2$, $s_\text{max} = 0.9$. Every cell of map $k$ gets a square prior of
# side $s_k$, a second square of side $s'_k = \sqrt{s_k s_{k+1}}$ (halfway, on a log scale, to
# the next map's size), and for each aspect ratio $a$ in a list (2, or 2 and 3) two priors of
# width $s_k\sqrt{a}$ and height $s_k/\sqrt{a}$ and the same turned by 90 degrees. So ratios
# `[2]` give 4 priors per cell and `[2, 3]` give 6. For SSD300 the paper gives its first map
# (conv4_3) the scale 0.1 and spaces the other five from 0.2 to 0.9; the last map's $s'_k$
# needs one more value, $s_7$, which continues the same spacing. `ssd_scales()` returns them:

# %%
print("SSD300 scales:", [round(s, 4) for s in ssd_scales()])

# %% [markdown]
# Five maps from 0.2 to 0.9 are 0.175 apart; $s_7 = 0.9 + 0.175 = 1.075$. (The original Caffe
# model rounds these to 0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05, and torchvision's `ssd300_vgg16`
# uses its COCO set starting at 0.07: scales are a design choice, not a law.)
#
# SSD300's six maps have 38, 19, 10, 5, 3 and 1 cells a side. Cell centres sit at
# `(j + 0.5) * step / 300` with steps 8, 16, 32, 64, 100, 300 pixels (the paper writes
# `(j + 0.5) / f_k`; the steps of the original code differ slightly: 38 cells of 8 pixels span
# 304, not 300). `ssd300_priors()` returns the priors as `(cx, cy, w, h)` fractions of the image:

# %%
priors300 = ssd300_priors()
print("SSD300 priors:", tuple(priors300.shape), " steps (px):", SSD300_STEPS)
scales300 = ssd_scales()
start = 0
for k, (f, ratios) in enumerate(zip(SSD300_FEATURE_SIZES, SSD300_ASPECT_RATIOS, strict=True)):
    per_cell = 2 + 2 * len(ratios)
    count = f * f * per_cell
    side, side2 = 300 * scales300[k], 300 * math.sqrt(scales300[k] * scales300[k + 1])
    print(
        f"  map {k}: {f:>2} x {f:<2} cells x {per_cell} = {count:>4} priors, "
        f"squares {side:5.1f} and {side2:5.1f} px, ratios 1, {', '.join(f'{a}, 1/{a}' for a in ratios)}"
    )
    start += count
print("  total:", start)

# %% [markdown]
# 5776 + 2166 + 600 + 150 + 36 + 4 = **8732**, the number quoted in the paper. On the
# 300-pixel input the squares grow from 30 and 42.4 pixels on the first map to 270 and 295.1 on
# the last. Two thirds of the priors sit on the finest map: small objects need many positions.
# torchvision builds the same boxes with `DefaultBoxGenerator`, in pixels `xyxy`. Given our
# scales and steps, do the two agree, box for box?

# %%
generator = DefaultBoxGenerator(
    [list(r) for r in SSD300_ASPECT_RATIOS],
    scales=list(scales300),
    steps=list(SSD300_STEPS),
    clip=False,
)
feature_maps = [torch.zeros(1, 1, f, f) for f in SSD300_FEATURE_SIZES]
theirs = generator(ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)]), feature_maps)[0]
ours = box_convert(priors300, "cxcywh", "xyxy") * 300
print("torchvision:", tuple(theirs.shape))
print(
    "same boxes in the same order (within 1e-4 px):",
    torch.allclose(ours, theirs, atol=1e-4, rtol=0),
)

# %% [markdown]
# Same 8732 boxes, same order: map by map, row by row, column by column, then the priors of a
# cell (the two squares first). This order matters for the same reason as in lesson 02: the
# head's output, permuted to `(N, H, W, A)` and flattened, must line up with it.
#
# **Our small SSD.** For 128-pixel images and the objects' sizes printed in section 1, the
# package's SSD (`tutorial_det.ssd.SSD`) uses four maps: the stride-8 and stride-16 outputs of
# lesson 01's `TinyBackbone` with its first three stages at half width (16-32-64-128 channels),
# and two extra stride-2 stages (strides 32 and 64).
# Its scales (printed below) are chosen for 128-pixel images rather than taken from the paper's
# formula; the last one only serves the last map's second square $s'_k$. Every map has the
# ratios `[2]`: 4 priors per cell.

# %%
torch.manual_seed(0)
untrained = S.build_ssd(len(SHAPE_CLASSES))
with torch.no_grad():
    _, _, priors = untrained.head_outputs(image[None])
print("backbone channels per stage:", [stage[0].out_channels for stage in untrained.backbone])
print("scales:", S.SMALL_SSD_SCALES, " aspect ratios per map:", S.SMALL_SSD_ASPECT_RATIOS)
print("priors:", tuple(priors.shape))
per_cell = [2 + 2 * len(ratios) for ratios in S.SMALL_SSD_ASPECT_RATIOS]
per_map = []
for stride, scale, next_scale, k in zip(
    S.SMALL_SSD_STRIDES, S.SMALL_SSD_SCALES, S.SMALL_SSD_SCALES[1:], per_cell, strict=False
):
    cells = 128 // stride
    per_map.append(cells * cells * k)
    print(
        f"  stride {stride:>2}: {cells:>2} x {cells:<2} cells x {k} = {per_map[-1]:>4} priors, "
        f"squares {128 * scale:5.1f} and {128 * math.sqrt(scale * next_scale):5.1f} px"
    )
missing, mean_reach = coverage(priors)
print(f"objects without a prior at IoU >= 0.5: {missing}; {mean_reach:.2f} such priors per object")

# %% jupyter={"source_hidden": true}
scales = S.SMALL_SSD_SCALES
smallest, largest = 128 * scales[0], 128 * math.sqrt(scales[-2] * scales[-1])
say(
    f"{' + '.join(map(str, per_map))} = {len(priors)} priors, "
    f"{len(priors) / len(simple):.0%} of the simple layout's {len(simple)}, yet only {missing} of "
    f"the {len(train_boxes)} objects ({missing / len(train_boxes):.0%}) lack a prior at IoU 0.5, "
    f"against {missing_simple}, and an object has {mean_reach:.2f} such priors on average "
    f"(against {reach_simple:.2f}): squares from {smallest:.0f} to {largest:.0f} pixels, each "
    "map's second square halfway to the next map's, cover the objects' sizes; most of the objects "
    "left without a prior are small shapes that fall between two cells of the finest map. Fewer "
    "priors also make every step cheaper."
)

# %% [markdown]
# ## 3. Explore the priors
#
# The explorer draws the priors of one cell on the image: pick the feature map, the scale, the
# aspect ratios and the cell. Priors reaching IoU 0.5 with a ground truth are solid green and
# the ground truths they match are shaded. (With no running kernel, for instance on a web page,
# the controls do not respond.)

# %%
explorer = PriorsExplorer(
    image, target["boxes"], target["labels"], SHAPE_CLASSES, level=2, row=1, column=1
)
explorer

# %% [markdown]
# On the stride-32 map the cell (1, 1) is centred on (48, 48), inside the large circle, and all
# four of its priors match it: the 56-pixel square reaches IoU 0.79 with the 61-pixel box. The
# explorer can be driven from code too (here a second one, so that the one above keeps what the
# text says). The smallest object, a 12 x 11 triangle at the bottom left, needs the finest map:

# %%
finest = PriorsExplorer(
    image, target["boxes"], target["labels"], SHAPE_CLASSES, level=2, row=1, column=1
)
with finest.hold():  # change several controls, redraw once
    finest.level.value = 0
    finest.row.value = 9
    finest.column.value = 1
print(finest.sentence)
# the priors of the eight cells around (9, 1) on the stride-8 map (16 x 16 cells, 4 per cell)
triangle = target["boxes"][3]
around = [(9 + dr, 1 + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
best_around = max(
    box_iou(triangle[None], priors[(r * 16 + c) * 4 : (r * 16 + c + 1) * 4]).max().item()
    for r, c in around
)
print(f"best IoU of the triangle with a prior of the 8 cells around: {best_around:.2f}")

# %% jupyter={"source_hidden": true}
prior_square = priors[(9 * 16 + 1) * 4]  # the cell's first prior: its square
tri_w, tri_h = (triangle[2:] - triangle[:2]).tolist()
square_side = (prior_square[2] - prior_square[0]).item()
say(
    f"The cell (9, 1) of the stride-8 map is centred on (12, 76); its {square_side:g}-pixel square "
    f"covers the whole triangle box ({tri_w:g} x {tri_h:g} = {tri_w * tri_h:g} px² of "
    f"{square_side**2:g}): IoU {tri_w * tri_h:g} / {square_side**2:g} = "
    f"{tri_w * tri_h / square_side**2:.2f}, just above 0.5. Move the cell one step in any "
    f"direction and the best prior reaches only {best_around:.2f}: small objects are matched by "
    "very few priors, one reason SSD finds small objects harder."
)

# %% [markdown]
# ## 4. Matching priors to objects
#
# Training needs, for every prior, what it should predict. SSD's matching has two rules:
#
# 1. every ground truth takes the prior it overlaps most, **even below 0.5**, so that no object
#    is left without a prior;
# 2. every other prior takes the ground truth it overlaps most if that IoU is **at least 0.5**.
#
# All remaining priors are background. Unlike the RPN's labelling (lesson 03) there is no
# "ignored" band and no sampling: the loss will pick the negatives it learns from (section 6).

# %%
matched = match_priors(priors, target["boxes"])
iou = box_iou(target["boxes"], priors)
level_of = torch.bucketize(torch.arange(len(priors)), torch.tensor([1024, 1280, 1344]), right=True)
print("positive priors:", int((matched >= 0).sum()), "of", len(priors))
for g, box in enumerate(target["boxes"].tolist()):
    mine = (matched == g).nonzero().flatten()
    strides = sorted({S.SMALL_SSD_STRIDES[int(level_of[i])] for i in mine})
    print(
        f"  object {g} ({SHAPE_CLASSES[target['labels'][g]]}, {box[2] - box[0]:g} px): "
        f"{len(mine)} prior(s), best IoU {iou[g].max():.2f}, on the stride {strides} map(s)"
    )
print("torchvision's SSDMatcher agrees:", torch.equal(matched, tv_utils.SSDMatcher(0.5)(iou)))

# %%
fig, ax = plt.subplots(figsize=(5.5, 5.5))
show_image(image, ax=ax, title="matched priors (dashed), coloured by object")
for g in range(len(target["boxes"])):
    draw_boxes(ax, priors[matched == g], colour=f"C{g}", linewidth=1, linestyle="--")
draw_boxes(ax, target["boxes"], target["labels"], class_names=SHAPE_CLASSES, colour="white")
names = [SHAPE_CLASSES[label] for label in target["labels"]]
entries = [
    (f"gt {g} ({name}): {int((matched == g).sum())} prior(s)", f"C{g}", {"linestyle": "--"})
    for g, name in enumerate(names)
]
draw_legend(ax, entries + [("ground truth", "white")], loc="lower right", facecolor="lightgrey")
plt.show()

# %% [markdown]
# 13 of 1360 priors are positive: 4 each for the two circles and the triangle at the top, and
# exactly one for the smallest triangle, the prior of section 3 at IoU 0.52. Each object is
# matched on the map whose priors have its size: the 61-pixel circle on the stride-32 map, the
# others on the stride-8 map. torchvision's `SSDMatcher` gives the same answer.
#
# They can differ in one situation: two objects whose best prior is **the same prior**.
# torchvision (like many reimplementations) gives it to the later object, and the earlier one
# keeps only its threshold matches, perhaps none. The package matches greedily, the way the
# original code does: the highest IoU of the whole matrix first, then that object and that prior
# leave the matrix, and so on. Each object then gets its own prior:

# %%
two_priors = torch.tensor([[0.0, 0, 10, 10], [-8, 0, 2, 10]])
two_objects = torch.tensor([[-3.0, 0, 7, 10], [0, 0, 8, 10]])
pair_iou = box_iou(two_objects, two_priors)
print("IoU (objects x priors):", [[round(v, 2) for v in row] for row in pair_iou.tolist()])
print("package    :", match_priors(two_priors, two_objects).tolist())
print("torchvision:", tv_utils.SSDMatcher(0.5)(pair_iou).tolist())

# %% [markdown]
# Both objects overlap prior 0 most (0.54 and 0.80). The package gives prior 0 to object 1 (the
# larger IoU) and prior 1 to object 0 (IoU 0.33: forced, below 0.5); torchvision leaves object
# 0 with no prior at all (-1 everywhere), so it would never be learned.
#
# ## 5. Box targets and the "variances"
#
# A positive prior learns to move onto its object with the box coding of lesson 03, centre
# offsets relative to the prior's size and log size ratios. SSD divides them by two constants
# the paper's code calls **variances**, 0.1 for the centre and 0.2 for the size:
#
# $$\hat g^{cx} = \frac{g^{cx} - p^{cx}}{0.1\,p^w}, \quad \hat g^{w} = \frac{1}{0.2}\log\frac{g^w}{p^w}$$
#
# Dividing by 0.1 is multiplying by 10: these are `encode_boxes` with weights (10, 10, 5, 5),
# the same weights Faster R-CNN's RoI head uses. They scale the targets up to about unit size, so
# that the smooth L1 loss works in its linear region for poor predictions and its quadratic
# region near the answer. `prior_targets` matches and encodes in one call:

# %%
labels_0, deltas_0 = S.prior_targets(priors, target["boxes"], target["labels"])
print("weights:", S.SSD_WEIGHTS)
p = int((matched == 3).nonzero()[0])  # the smallest triangle's only prior
prior_c = box_convert(priors[p : p + 1], "xyxy", "cxcywh")[0]
gt_c = box_convert(target["boxes"][3:4], "xyxy", "cxcywh")[0]
by_hand = torch.cat(
    ((gt_c[:2] - prior_c[:2]) / prior_c[2:] / 0.1, torch.log(gt_c[2:] / prior_c[2:]) / 0.2)
)
print(f"prior {p}: (cx, cy, w, h) = {prior_c.tolist()}, label {labels_0[p].item()}")
print(f"object 3: (cx, cy, w, h) = {gt_c.tolist()}")
print("targets      :", [round(v, 4) for v in deltas_0[p].tolist()])
print("by the paper :", [round(v, 4) for v in by_hand.tolist()])
decoded = decode_boxes(deltas_0[labels_0 > 0], priors[labels_0 > 0], S.SSD_WEIGHTS)
print(
    "decoding the targets gives the objects back:",
    torch.allclose(decoded, target["boxes"][matched[matched >= 0]], atol=1e-4),
)

# %% [markdown]
# The prior is centred at (12, 76) and 16 pixels wide; the triangle's box is centred at
# (13, 77.5), 12 x 11. So dx = (13 - 12) / 16 / 0.1 = 0.625, dy = (77.5 - 76) / 16 / 0.1 =
# 0.9375, dw = log(12/16) / 0.2 = -1.4384, dh = log(11/16) / 0.2 = -1.8735. All other priors get
# label 0 (background) and zero deltas, which the loss never reads.
#
# ## 6. The multibox loss, step by step
#
# Take a batch of four images and the untrained model's outputs for it: `cls_logits [B, P, C]`
# (C = 4 classes, background first) and `box_deltas [B, P, 4]`, for P = 1360 priors.

# %%
batch = ShapesDataset(4, seed=5)
images = [image for image, _ in batch]
targets = [target for _, target in batch]
with torch.no_grad():
    cls_logits, box_deltas, _ = untrained.head_outputs(images)
labels, target_deltas = (
    torch.stack(t)
    for t in zip(*(S.prior_targets(priors, t["boxes"], t["labels"]) for t in targets), strict=True)
)
positive = labels > 0
print("cls_logits:", tuple(cls_logits.shape), " box_deltas:", tuple(box_deltas.shape))
print("objects per image:  ", [len(t["boxes"]) for t in targets])
print("positives per image:", positive.sum(dim=1).tolist(), " N =", int(positive.sum()))

# %% jupyter={"source_hidden": true}
say(
    f"**Classification: softmax cross-entropy.** Every prior has a cross-entropy loss against its "
    "target class; a positive's target is its object's class, a negative's the background (0). "
    f"With {labels.shape[1]} priors per image and at most {positive.sum(dim=1).max()} positives, "
    f"{(~positive).float().mean():.1%} of the priors in this batch are negatives."
)

# %% [markdown]
# Summing the losses of all negatives would drown the positives, and most negatives are easy
# (plain background far from any object). SSD keeps, **per image**, only the **3 x (positives
# of that image)** negatives with the highest loss, the *hard negatives*: the places where the
# model most wrongly sees an object.

# %%
ce = F.cross_entropy(cls_logits.reshape(-1, 4), labels.reshape(-1), reduction="none").view(4, -1)
ranked = ce.masked_fill(positive, -math.inf)  # a positive is never a negative
order = ranked.sort(dim=1, descending=True).indices
quota = torch.minimum(3 * positive.sum(dim=1), (~positive).sum(dim=1))
rank = torch.empty_like(order).scatter_(1, order, torch.arange(ce.shape[1]).expand_as(order))
hard = rank < quota[:, None]
print("negatives kept per image:", hard.sum(dim=1).tolist())
print(
    "same as the package's hard_negative_mask:",
    torch.equal(hard, S.hard_negative_mask(ce, positive)),
)
print(
    f"untrained: background loss of the negatives {ce[~positive].min():.3f} .. {ce[~positive].max():.3f} (log 4 = {math.log(4):.3f})"
)

# %% jupyter={"source_hidden": true}
say(
    f"The four images have {', '.join(map(str, positive.sum(dim=1).tolist()))} positive priors "
    f"(N = {int(positive.sum())} in the batch), and each keeps three times its own: "
    f"{', '.join(map(str, hard.sum(dim=1).tolist()))} negatives. `rank` turns the sorted order "
    'back into "the position of prior i in the ranking", so `rank < quota` selects each '
    "image's hardest negatives in one vectorised step. The untrained model knows nothing yet: "
    f"its background losses spread from {ce[~positive].min():.3f} to {ce[~positive].max():.3f} "
    f"around log 4 = {math.log(4):.3f} (four equally likely classes), so the mined negatives are "
    "simply where its random features happen to favour an object class. After training they "
    "will mean something (section 9)."
)

# %% [markdown]
# **Localisation: smooth L1** on the positives' four deltas, summed. **Both terms are divided by
# N**, the number of positives in the whole batch:
#
# $$L = \frac{1}{N}\Big(\sum_{i \in Pos} \mathrm{CE}_i + \sum_{i \in Neg} \mathrm{CE}_i\Big) + \frac{1}{N}\sum_{i \in Pos} \mathrm{smooth}_{L1}(l_i - \hat g_i)$$
#
# If a batch has no positive at all (every image empty), N = 0: nothing is mined, both sums are
# empty, and the package divides by `max(N, 1)` to return 0 instead of 0 / 0 = NaN (the paper
# sets the loss to 0 in that case; torchvision does the same as the package).

# %%
n = positive.sum()
classification = (ce[positive].sum() + ce[hard].sum()) / n
localisation = F.smooth_l1_loss(box_deltas[positive], target_deltas[positive], reduction="sum") / n
package = S.multibox_loss(cls_logits, box_deltas, labels, target_deltas)
matched_idxs = [match_priors(priors, t["boxes"]) for t in targets]
tv_ssd = TorchvisionSSD.__new__(TorchvisionSSD)  # no backbone or head: only the loss is used
torch.nn.Module.__init__(tv_ssd)
tv_ssd.box_coder, tv_ssd.neg_to_pos_ratio = tv_utils.BoxCoder(S.SSD_WEIGHTS), 3.0
head = {"cls_logits": cls_logits, "bbox_regression": box_deltas}
torchvision_loss = tv_ssd.compute_loss(targets, head, [priors] * 4, matched_idxs)
print(f"by hand    : classification {classification:.4f}, localisation {localisation:.4f}")
print(
    f"package    : classification {package['classification']:.4f}, localisation {package['bbox_regression']:.4f}"
)
print(
    f"torchvision: classification {torchvision_loss['classification']:.4f}, "
    f"localisation {torchvision_loss['bbox_regression']:.4f}"
)

# %% jupyter={"source_hidden": true}
pos_ce, neg_ce = ce[positive].mean().item(), ce[hard].mean().item()
say(
    f"The three agree. The classification term is the {int(n)} positives' cross-entropy "
    f"({pos_ce:.2f} on average) plus the {int(hard.sum())} mined negatives' ({neg_ce:.2f} on "
    f"average, the highest of all negatives by construction), divided by {int(n)}: "
    f"{pos_ce:.2f} + {hard.sum() / n:g} x {neg_ce:.2f} = {classification:.2f}. The localisation "
    f"term is {localisation:.2f} per positive: the untrained head predicts deltas of size "
    f"{box_deltas[positive].abs().mean():.2f} on average while the targets' are "
    f"{target_deltas[positive].abs().mean():.2f}, so each of the four coordinates costs a smooth "
    f"L1 of about {localisation / 4:.2f}. `multibox_loss` returns the two terms under "
    "torchvision's names, `classification` and `bbox_regression`, which is also what the model "
    "returns in training mode."
)

# %% [markdown]
# ## 7. Spot the bug
#
# Here is the multibox loss the way it is often written (in Keras in the tutorial this course
# grew from; here in PyTorch). It flattens the batch into one long list of priors first.
# **Read it and find two differences from the formula above before running the next cell.**


# %%
def flat_multibox_loss(cls_logits, box_deltas, labels, target_deltas, neg_pos_ratio=3):
    num_classes = cls_logits.shape[-1]
    logits, labels = cls_logits.reshape(-1, num_classes), labels.reshape(-1)
    ce = F.cross_entropy(logits, labels, reduction="none")
    pos = labels > 0
    num_pos = pos.sum()
    num_neg = torch.minimum(neg_pos_ratio * num_pos, (~pos).sum())
    pos_loss = ce[pos].sum() / num_pos
    neg_loss = ce.masked_fill(pos, 0).topk(int(num_neg)).values.sum() / num_neg
    box = F.smooth_l1_loss(
        box_deltas.reshape(-1, 4)[pos], target_deltas.reshape(-1, 4)[pos], reduction="sum"
    )
    return pos_loss + neg_loss + box / num_pos


# %% [markdown]
# 1. **The negatives are divided by their own number**, `num_neg`, not by N. With three
#    negatives per positive that weights each negative three times less than the paper does,
#    and the negative term becomes an *average*: raising `neg_pos_ratio` no longer adds weight
#    to the negatives, it only changes which ones are averaged.
# 2. **Hard negatives are mined over the whole batch** (`topk` over all B x P priors), not per
#    image. An image whose background fools the model can take the whole quota, and the others
#    get no negatives at all.
#
# The package keeps the SSD tutorial's loss apart from the library, with a switch for each bug:
# `multibox_loss_tutorial_style` (`split=False` divides the negatives by N as the paper does,
# `across_batch=False` mines per image) and its mining, `hard_negative_mask_across_batch`, both in
# `tutorial_det.exercises.variants`. So we can check that they are exactly this function and
# look at what each bug changes:

# %%
flat = flat_multibox_loss(cls_logits, box_deltas, labels, target_deltas)
variant = multibox_loss_tutorial_style(cls_logits, box_deltas, labels, target_deltas)
print(f"flat loss {flat:.4f} = split + batch variant {sum(variant.values()):.4f}")
print(
    f"paper: classification {package['classification']:.4f}; "
    f"both bugs (split, mined across the batch): {variant['classification']:.4f}"
)

# %% jupyter={"source_hidden": true}
batch_hard = hard_negative_mask_across_batch(ce, positive)
say(
    f"The flattened function is exactly the variant with both bugs: {flat:.4f} = "
    f"{variant['classification']:.4f} + {variant['bbox_regression']:.4f} (the localisation term "
    f"is unchanged). Its classification part, {variant['classification']:.4f}, is the positives' "
    f"mean cross-entropy plus the mined negatives' mean, {pos_ce:.2f} + "
    f"{ce[batch_hard].mean():.2f}, where the paper's is {pos_ce:.2f} + {hard.sum() / n:g} x "
    f"{neg_ce:.2f} = {package['classification']:.2f}: the negatives' share of the classification "
    "gradient drops from 3/4 to 1/2."
)

# %% [markdown]
# On this batch the two minings choose different negatives too:

# %%
for mining, mine in (
    ("per_image", S.hard_negative_mask),
    ("batch", hard_negative_mask_across_batch),
):
    kept = mine(ce, positive)
    print(f"{mining:>9}: negatives kept per image {kept.sum(dim=1).tolist()}")

# %% jupyter={"source_hidden": true}
per_image_counts = hard.sum(dim=1).tolist()
batch_counts = batch_hard.sum(dim=1).tolist()
takes = ", ".join(
    f"the image with {p} positives takes {k}"
    for p, k in zip(positive.sum(dim=1).tolist(), batch_counts, strict=True)
)
say(
    f"Per image, each image keeps three times its positives: "
    f"{', '.join(map(str, per_image_counts))}. Mined across the batch, the same "
    f"{int(batch_hard.sum())} places go to whichever priors have the highest losses anywhere: "
    f"{takes}."
)

# %% [markdown]
# The effect is clearest on a small example. Two images with one positive each; the first has
# background priors with large losses (the model is fooled there), the second only small ones.
# With three negatives per positive each image should keep three:

# %%
toy_loss = torch.tensor([[0.1, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0], [0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.3]])
toy_positive = torch.zeros(2, 7, dtype=torch.bool)
toy_positive[:, 0] = True
for mining, mine in (
    ("per_image", S.hard_negative_mask),
    ("batch", hard_negative_mask_across_batch),
):
    kept = mine(toy_loss, toy_positive, 3)
    print(f"{mining:>9}: negatives kept per image {kept.sum(dim=1).tolist()}")

# %% [markdown]
# Per image: 3 and 3. Across the batch: all 6 places go to the first image, and the second image
# contributes no negative at all. In a real batch this means that images with an easy background
# teach the model nothing about background, and the loss of one image depends on which other
# images happen to share its batch.
#
# ## 8. Training
#
# The model follows torchvision's detection contract, so the package's `fit`
# (`tutorial_det.training`) trains it as it is: in training mode `model(images, targets)` returns
# the two loss terms, in evaluation mode `model(images)` returns one `{"boxes", "labels",
# "scores"}` per image. It normalises the images itself. We train for a fixed number of steps of 16
# images, from fixed seeds, with AdamW and a one-cycle learning rate: a short warm-up, then a
# cosine decay. The training set holds 100 000 images (`ShapesDataset` draws a new image for every
# index), far more than the 4000 that 250 steps of 16 use, so nothing is shown twice and no
# augmentation is needed. On the CPU this notebook runs torch on one thread (set in the first
# cell), so its numbers do not depend on how many cores the machine has: every run of this notebook
# on the same CPU trains the same weights. Only the time it takes varies, so the next cell's output
# is not compared when the notebook is tested.

# %%
# NBVAL_IGNORE_OUTPUT
seed_everything(0)
model = build_model("ssd", num_classes=len(SHAPE_CLASSES))
steps = 250
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1
)
start = time.perf_counter()
history = fit(
    model,
    ShapesDataset(100_000, seed=0),
    optimizer=optimizer,
    scheduler=scheduler,
    max_steps=steps,
    batch_size=16,
    grad_clip_norm=10.0,
    log_every=50,
    progress=False,
    device=device,
)
train_seconds = time.perf_counter() - start
print(f"{steps} steps in {train_seconds:.0f} s ({train_seconds / steps:.2f} s per step)")

# %% [markdown]
# The losses, the same on every run: the first step's, then the mean over each 50 steps (one
# batch's loss is noisy):

# %%
losses = torch.tensor([history.loss, *history.terms.values()])  # [1 + terms, steps]
names = ["loss", *history.terms]
print(
    "step   1:",
    ", ".join(f"{name} {value:.3f}" for name, value in zip(names, losses[:, 0], strict=True)),
)
window_means = losses.reshape(len(names), -1, 50).mean(dim=2)  # [1 + terms, steps / 50]
for w in range(window_means.shape[1]):
    means = ", ".join(
        f"{name} {value:.3f}" for name, value in zip(names, window_means[:, w], strict=True)
    )
    print(f"steps {50 * w + 1:>3}-{50 * (w + 1)}: {means}")
plot_history(history)
plt.show()

# %% jupyter={"source_hidden": true}
say(
    f"Both terms fall quickly: the total from {losses[0, 0]:.1f} at the first step to a mean of "
    f"{window_means[0, 1]:.2f} over steps 51-100 and {window_means[0, -1]:.2f} over the last 50. "
    "The classification term averages "
    f"{window_means[names.index('classification'), -1]:.2f} over the last 50 steps, well above "
    "zero: it is summed over three negatives per positive, and the hardest negatives stay hard "
    "by construction."
)

# %% [markdown]
# ## 9. Decoding, NMS and mAP
#
# At inference every prior becomes a candidate detection: softmax over the classes, decode the
# deltas (weights 10, 10, 5, 5) into boxes, clip them to the image. Then, per class, keep the
# priors scoring above 0.01 (at most 200), and remove duplicates with per-class non-maximum
# suppression at IoU 0.45 (`tutorial_det.nms.batched_nms`). Let us follow one held-out image
# through these steps.

# %%
held_out = ShapesDataset(100, seed=1)
model.eval()
test_image, test_target = held_out[0]
with torch.no_grad():
    logits_1, deltas_1, priors_1 = model.head_outputs(test_image[None].to(device))
scores_1 = logits_1[0].softmax(dim=-1)
print("objects in the image:")
for box, label in zip(test_target["boxes"].tolist(), test_target["labels"].tolist(), strict=True):
    print(f"  {SHAPE_CLASSES[label]:>8}: {box}, {box[2] - box[0]:g} x {box[3] - box[1]:g} px")
candidates = int((scores_1[:, 1:] > 0.01).any(dim=1).sum())
print("priors with an object score > 0.01:", candidates, "of", len(priors_1))
detections = S.decode_detections(logits_1[0], deltas_1[0], priors_1, (128, 128))
confident = detections["scores"] > 0.5
print("after per-class NMS:", len(detections["boxes"]), " with score > 0.5:", int(confident.sum()))
for box, label, score in zip(
    detections["boxes"].tolist(),
    detections["labels"].tolist(),
    detections["scores"].tolist(),
    strict=True,
):
    print(f"  {SHAPE_CLASSES[label]:>8} {score:.3f}: [{', '.join(f'{v:.1f}' for v in box)}]")
tv_ssd.score_thresh, tv_ssd.nms_thresh = 0.01, 0.45  # the package's defaults
tv_ssd.topk_candidates, tv_ssd.detections_per_img = 200, 100
tv_detections = tv_ssd.postprocess_detections(
    {"cls_logits": logits_1, "bbox_regression": deltas_1}, [priors_1], [(128, 128)]
)[0]
print(
    "torchvision's post-processing keeps the same boxes:",
    torch.allclose(detections["boxes"], tv_detections["boxes"], atol=1e-4),
)

# %% jupyter={"source_hidden": true}
say(
    f"After training only {candidates} of the {len(priors_1)} priors give any object class more "
    "than 1%: the softmax has learned that almost every prior is background. The survivors "
    f"cluster around the objects, and per-class NMS leaves {len(detections['boxes'])} boxes, "
    f"{int(confident.sum())} of them scoring above 0.5 for the image's "
    f"{len(test_target['boxes'])} objects; the low-scoring rest cost nothing in mAP as long as "
    "they rank below the true detections. torchvision's SSD post-processing, given the same head "
    "outputs, keeps the same boxes."
)

# %% [markdown]
# Now the mean average precision over the 100 held-out images (lesson 10 explains the metric;
# `map_50` counts a detection as correct at IoU >= 0.5, `map` averages IoU 0.5 to 0.95):

# %%
metrics = evaluate_map(model, held_out, batch_size=50, device=device)
print(f"mAP@0.5 = {metrics['map_50']:.3f}, mAP@[.5:.95] = {metrics['map']:.3f}")

# %% jupyter={"source_hidden": true}
say(
    f"{steps} steps of 16 images give a mAP@0.5 of {metrics['map_50']:.3f}. The stricter "
    f"average over IoU 0.5 to 0.95 is {metrics['map']:.3f}: boxes are roughly right sooner than "
    "they are tight."
)

# %% [markdown]
# Which objects does it find with confidence? For every held-out object, take the best score of
# a detection of its class at IoU >= 0.5 with it (0 when there is none), and group the objects by
# the longer side of their box:

# %%
predictions, truths = evaluate(model, held_out, batch_size=50, device=device)
best_scores, object_sides = [], []
for prediction, truth in zip(predictions, truths, strict=True):
    iou_1 = box_iou(truth["boxes"], prediction["boxes"])  # [G, D]
    same_class = truth["labels"][:, None] == prediction["labels"][None, :]
    found = (iou_1 >= 0.5) & same_class
    masked = torch.where(found, prediction["scores"][None, :], 0.0)  # [G, D]
    best_scores.append(masked.amax(dim=1) if masked.shape[1] else torch.zeros(len(masked)))
    object_sides.append((truth["boxes"][:, 2:] - truth["boxes"][:, :2]).amax(dim=1))
best_scores, object_sides = torch.cat(best_scores), torch.cat(object_sides)
size_groups = [("under 20 px", 0, 20), ("20 to 40 px", 20, 40), ("40 px and more", 40, 1000)]
median_score = {}
for name, low, high in size_groups:
    group = best_scores[(object_sides >= low) & (object_sides < high)]
    median_score[name] = group.median().item()
    print(
        f"{name:>14}: {len(group):>3} objects, median best score {median_score[name]:.2f}, "
        f"{(group > 0.5).float().mean():.0%} above 0.5"
    )

# %% jupyter={"source_hidden": true}
say(
    f"The objects of 40 pixels and more get a median score of {median_score['40 px and more']:.2f}, "
    f"those under 20 pixels only {median_score['under 20 px']:.2f}: a threshold of 0.5 would "
    "lose many small shapes, though they still count in mAP, which ranks detections by score. "
    "This is SSD's known weakness: a small object is matched by only a few priors of the finest "
    "map, and that map comes from an early stage of the backbone, which has seen the least "
    "context. The detections scoring above 0.3 on eight held-out images, truth dashed in white:"
)

# %%
fig, axes = plt.subplots(2, 4, figsize=(12, 6.4))
for ax, k in zip(axes.flat, range(8), strict=True):
    img, truth = held_out[k]
    keep = predictions[k]["scores"] > 0.3
    show_image(img, ax=ax)
    draw_boxes(ax, truth["boxes"], colour="white", linestyle="--", linewidth=1)
    draw_boxes(
        ax,
        predictions[k]["boxes"][keep],
        predictions[k]["labels"][keep],
        predictions[k]["scores"][keep],
        SHAPE_CLASSES,
    )
draw_legend(
    axes[0, -1],
    [(name, class_colour(label)) for label, name in enumerate(SHAPE_CLASSES) if label > 0]
    + [("ground truth", "white", {"linestyle": "--"})],
    loc="upper left",
    bbox_to_anchor=(1.02, 1.0),
    facecolor="lightgrey",
)
plt.show()

# %% [markdown]
# **Hard negatives after training.** Which background priors does the loss now keep? For one
# new image drawn like the training images (seed 7): its positives (green) and its mined
# negatives (red, three per positive).

# %%
train_image, train_target = ShapesDataset(1, seed=7)[0]
model.eval()
with torch.no_grad():
    logits_t, _, priors_t = model.head_outputs(train_image[None].to(device))
labels_t, _ = S.prior_targets(
    priors_t, train_target["boxes"].to(device), train_target["labels"].to(device)
)
ce_t = F.cross_entropy(logits_t[0], labels_t, reduction="none")
hard_t = S.hard_negative_mask(ce_t[None], labels_t[None] > 0)[0]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.8))
show_image(train_image, ax=ax0, title="the mined negatives")
draw_boxes(ax0, priors_t[hard_t].cpu(), colour="red", linewidth=1)
draw_boxes(ax0, priors_t[labels_t > 0].cpu(), colour="lime", linewidth=1.5)
draw_legend(ax0, [("positive priors", "lime"), ("hard negatives", "red")], loc="upper right")
negative_losses = ce_t[labels_t == 0].sort(descending=True).values.cpu()
cut = int(hard_t.sum())
ax1.loglog(torch.arange(1, len(negative_losses) + 1), negative_losses.clamp(min=1e-6))
ax1.axvline(cut + 0.5, color="red", linestyle="--", label="3 x positives")
ax1.set(xlabel="negatives, by decreasing loss", ylabel="background loss", title="the mining cut")
ax1.legend()
plt.show()
print(f"{int((labels_t > 0).sum())} positives, {cut} mined of {len(negative_losses)} negatives")
print(
    f"background loss: hardest {negative_losses[0]:.2f}, last mined {negative_losses[cut - 1]:.3f}, "
    f"median of the rest {negative_losses[cut:].median():.4f}"
)

# %% jupyter={"source_hidden": true}
say(
    "The mined negatives are no longer arbitrary: they crowd around the objects, priors that see "
    'part of a shape without reaching IoU 0.5 with it, the places where "object or background?" '
    "is genuinely hard (on other images, also patches of texture that look like a shape). The "
    "curve, on log-log axes, shows why mining matters: the hardest negative has a background loss "
    f"of {negative_losses[0]:.2f}, the last one mined {negative_losses[cut - 1]:.3f}, and the "
    f"{len(negative_losses) - cut} easy ones left have a median of "
    f"{negative_losses[cut:].median():.4f}: summing them all would add many tiny terms and little "
    "signal."
)

# %% [markdown]
# ## 10. What a step costs: SSD and Faster R-CNN
#
# How does the single-shot design compare with the two-stage one? The package's Faster R-CNN
# (lessons 04 to 06, `build_model("faster_rcnn", ...)`) works on the same 128-pixel images with
# the same kind of backbone: `TinyBackbone` at full width, its stride-8 map enriched top-down with
# the stride-16 one, then a region proposal network, RoIAlign and a RoI head. Here is what each
# model holds and what the Faster R-CNN does per image that the SSD does not:

# %%
torch.manual_seed(0)
detectors = {
    name: build_model(name, num_classes=len(SHAPE_CLASSES)).to(device)
    for name in ("ssd", "faster_rcnn")
}
for name, detector in detectors.items():
    print(f"{name:>11}: {sum(p.numel() for p in detector.parameters()) / 1e6:.2f} M parameters")
frcnn = detectors["faster_rcnn"]
cells = 128 // frcnn.rpn.stride
proposals = frcnn.rpn.train_proposals
print(
    f"Faster R-CNN, per 128-pixel training image: {len(frcnn.rpn.anchors((cells, cells)))} anchors"
)
print(f"  the best {proposals.pre_nms_top_n} enter NMS, {proposals.post_nms_top_n} proposals kept")
print(
    f"  {frcnn.roi_batch_size_per_image} regions sampled, each pooled to "
    f"{' x '.join(map(str, frcnn.roi_head.output_size))} and read by a "
    f"{frcnn.roi_head.fc6.out_features}-wide head"
)
print(f"SSD: {len(priors)} priors, each read once by a 3x3 convolution")

# %% [markdown]
# Now time one training step and inference on the same 8 images for both. The times depend on
# the machine and its load, so they are not compared when the notebook is tested; the ratios in
# the last line, measured in the same cell, are what matter.

# %%
# NBVAL_IGNORE_OUTPUT
# on the device beforehand, so that the timings hold no copies from the CPU
batch_images = [held_out[i][0].to(device) for i in range(8)]
batch_targets = [
    {"boxes": held_out[i][1]["boxes"].to(device), "labels": held_out[i][1]["labels"].to(device)}
    for i in range(8)
]


def time_detector(detector):
    """Median ms of one training step and of inference on the 8 images (3 timed runs each, after
    one untimed; `median_time_ms` waits for a GPU to finish)."""
    sgd = torch.optim.SGD(detector.parameters(), lr=1e-4)

    def train_step():
        detector.train()
        loss = sum(detector(batch_images, batch_targets).values())
        sgd.zero_grad()
        loss.backward()
        sgd.step()

    def predict():
        detector.eval()
        with torch.no_grad():
            detector(batch_images)

    return median_time_ms(train_step, repeat=3), median_time_ms(predict, repeat=3)


timings = {name: time_detector(detector) for name, detector in detectors.items()}
for name, (step_ms, predict_ms) in timings.items():
    print(
        f"{name:>11}: training step {step_ms:5.0f} ms, inference {predict_ms:5.0f} ms per 8 images"
    )
ratio = [f / s for f, s in zip(timings["faster_rcnn"], timings["ssd"], strict=True)]
say(
    f"Here the Faster R-CNN's training step takes **{ratio[0]:.1f} times** as long as the SSD's, "
    f"and its inference **{ratio[1]:.1f} times** as long."
)

# %% [markdown]
# The SSD is cheaper: one pass through a backbone with its first three stages at half width and a
# few 3x3 convolutions, where the Faster R-CNN runs a full-width backbone, the proposal stage
# (scores and deltas for every anchor, decoding, NMS), then pools every sampled region and runs a
# second head on it. Cheaper steps mean more of them in the same time.
#
# Which of the two learns more **per step** is a separate question, and this lesson does not
# answer it: it trains only the SSD. Lesson 06 trains the Faster R-CNN on shapes like these, but
# with its own number of steps, batch size and learning rate, so its mAP there and the one above
# are no fair comparison; exercise 5 below makes one. What the two designs are known for: a
# single-shot detector suits data like this, a few well separated objects of moderate size,
# where its lower cost per image is what counts; two-stage detectors earn their cost on harder
# data: crowded scenes, many small objects, and when the tightest boxes matter.
#
# ## 11. Exercises
#
# **a) Match priors yourself.** Write `my_match_priors(priors, gt_boxes)` returning, for every
# prior, the index of its ground truth or -1 (background), with both rules of section 4 at IoU
# 0.5. The check includes two objects sharing a best prior.


# %%
def my_match_priors(priors, gt_boxes):
    """[P, 4] x [G, 4] xyxy -> [P] int64: matched ground truth, -1 for background."""
    raise NotImplementedError  # your code here


check_match_priors(my_match_priors)

# %% [markdown]
# **b) Mine hard negatives.** Write `my_hard_negatives(background_loss, positive, neg_pos_ratio)`
# for `[B, P]` losses and a `[B, P]` bool mask of positives: return a `[B, P]` bool mask of the
# kept negatives, the `min(ratio x positives, negatives)` highest-loss negatives **of each image**.


# %%
def my_hard_negatives(background_loss, positive, neg_pos_ratio):
    """[B, P] float, [B, P] bool, number -> [B, P] bool: each image's hardest negatives."""
    raise NotImplementedError  # your code here


check_hard_negative_mining(my_hard_negatives)

# %% [markdown]
# ## Summary
#
# - SSD predicts a class and four deltas for every **prior** of several feature maps in one
#   pass; fine maps carry small priors, coarse maps large ones.
# - The paper's priors: scales spaced linearly (SSD300: 0.1, then 0.2 to 0.9, plus 1.075 for the
#   last extra square), two squares per cell ($s_k$ and $\sqrt{s_k s_{k+1}}$) and two priors per
#   aspect ratio: SSD300 has 8732, the same boxes as torchvision's `DefaultBoxGenerator`. Our
#   1360 priors cover the shapes better than 4032 priors of three fixed sizes.
# - Matching: each object takes its best prior (greedily, so two objects never share one), then
#   every prior with IoU >= 0.5 takes its best object; targets use the variances 0.1 / 0.2,
#   i.e. box-coding weights (10, 10, 5, 5).
# - Loss: cross-entropy on the positives and on 3 hard negatives per positive **per image**, plus
#   smooth L1 on the positives, **all divided by N**, the number of positives (0 when N = 0);
#   torchvision's `compute_loss` gives the same numbers. Dividing the negatives by their own
#   count, or mining across the batch, are bugs.
# - Decoding: softmax, decode, clip, score threshold, top-k, per-class NMS.
# - On synthetic shapes a small SSD trains on a CPU, for a fixed number of steps, to the mAP of
#   section 9; its training step costs a fraction of a Faster R-CNN's (section 10); its weak spot
#   is the smallest objects.
#
# **More exercises**
# 1. Train with `multibox_loss_tutorial_style`, one bug at a time (`split=False` or
#    `across_batch=False`), in a small training loop on `model.head_outputs` and
#    `S.prior_targets` as in section 6, and compare the mAP after the same number of steps.
# 2. Use section 1's kind of priors in the model: replace `SSD.priors_for` so that it returns
#    `simple_priors` for the four maps (one size per map, three ratios; change the heads to
#    3 priors per cell). How much does mAP@0.5 drop after the same training?
# 3. `neg_pos_ratio` 3 is a choice (`build_model("ssd", 4, neg_pos_ratio=1)`). Try 1 and 10:
#    what happens to the false positives on the textured backgrounds?
# 4. Add the stride-4 map of the backbone with 8-pixel priors. Do the smallest shapes get more
#    positives (section 2's count), and does mAP for small objects (`map_small`) improve?
# 5. Compare the two detectors fairly: train `build_model("faster_rcnn", 4)` here for the same
#    steps and images as the SSD (section 8's cell with the model swapped; try its own learning
#    rate too), evaluate both on `held_out`, and repeat with two more seeds. Is the difference in
#    mAP@0.5 larger than the spread between seeds? How long did each take?
#
# Next: **08 · WPOD-Net**, a single-shot detector for licence plates that predicts an affine
# transform instead of a box.
