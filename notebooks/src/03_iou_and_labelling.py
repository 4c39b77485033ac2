# %% [markdown]
# # 03 · IoU and labelling
#
# Lesson 02 laid 22500 anchors over an 800 x 800 image. To train the region proposal network we
# must tell it, for every anchor, what it should have predicted: is this anchor on an object
# (**positive**), on background (**negative**), or too ambiguous to learn from (**ignored**)? And
# for the positives, how should the anchor move to fit its object? This lesson computes those
# **targets** from the IoU of every anchor with every ground-truth box.
#
# **You will learn**
# - the IoU matrix of all inside anchors against the ground truth, and what its largest values
#   say about the anchor design;
# - Faster R-CNN's labelling rules one at a time (IoU >= 0.7, IoU < 0.3, the best anchor of each
#   ground truth with its ties, ignored), giving 18 positives, 7690 negatives and 1232 ignored
#   anchors on the example image;
# - how a mini-batch of 256 anchors with at most half positives is sampled;
# - the regression targets of the positives, computed with `encode_boxes` and decoded back;
# - to explore IoU and labelling interactively;
# - a labelling bug that turns every anchor positive.
#
# **You need** lessons 00 (IoU, box formats) and 02 (anchors). The README's lesson table gives its
# running time on a quiet 2-core CPU.

# %%
import matplotlib.pyplot as plt
import torch
import torchvision
from torchvision.models.detection._utils import (
    BalancedPositiveNegativeSampler,
    BoxCoder,
    Matcher,
)

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.boxes import box_area, box_convert, box_iou, decode_boxes, encode_boxes
from tutorial_det.exercises import check_box_iou, check_label_anchors
from tutorial_det.labelling import anchor_targets, label_anchors, sample_labels
from tutorial_det.prose import say
from tutorial_det.runtime import seed_everything
from tutorial_det.samples import load_sample, sample_categories
from tutorial_det.viz import draw_boxes, draw_labelled_anchors, show_image
from tutorial_det.widgets import IoUExplorer, LabellingExplorer

seed_everything(0)

# %% [markdown]
# ## 1. Two examples
#
# The first example is the one of the Faster R-CNN walkthrough this course grew from: a blank
# 800 x 800 image with two ground-truth boxes, written there as `(y1, x1, y2, x2)`. We convert
# them once, at the edge, to our `xyxy`. The second is a real photo with hand-drawn boxes.

# %%
gt_yxyx = torch.tensor([[20.0, 30, 400, 500], [300, 400, 500, 600]])
gt = box_convert(gt_yxyx, "yxyx", "xyxy")
print("ground truth, xyxy:", gt.tolist())
print("sizes (w x h):", [f"{x2 - x1:g} x {y2 - y1:g}" for x1, y1, x2, y2 in gt.tolist()])

blank = torch.ones(3, 800, 800)  # drawn white
anchors = grid_anchors(anchor_base(), (50, 50), 16)  # [22500, 4], lesson 02
inside = inside_anchors(anchors, (800, 800))
inside_boxes = anchors[inside]
print("anchors:", len(anchors), "| inside the image:", len(inside_boxes))

photo, photo_target = load_sample("motorcycle")
names = sample_categories()
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
show_image(blank, ax=left, title="blank 800 x 800, two ground truths")
draw_boxes(left, gt, labels=[1, 2], class_names={1: "gt 0", 2: "gt 1"}, colour="tab:blue")
left.set_xlim(0, 800)
left.set_ylim(800, 0)
photo_height, photo_width = photo.shape[-2:]
title = (
    f"motorcycle.jpg, {photo_width} x {photo_height}, {len(photo_target['boxes'])} ground truths"
)
show_image(photo, ax=right, title=title)
draw_boxes(right, photo_target["boxes"], photo_target["labels"], class_names=names)
plt.show()

# %% [markdown]
# Ground truth 0 is 470 x 380 pixels, ground truth 1 a 200 x 200 square. As in lesson 02, only
# the 8940 anchors lying entirely inside the image take part in training.
#
# ## 2. The IoU matrix
#
# Every inside anchor against every ground truth: a `[8940, 2]` matrix, computed by broadcasting
# (lesson 00) and identical to torchvision's:

# %%
iou = box_iou(inside_boxes, gt)
print(
    "iou:",
    tuple(iou.shape),
    "| same as torchvision:",
    torch.equal(iou, torchvision.ops.box_iou(inside_boxes, gt)),
)
for g in range(len(gt)):
    column = iou[:, g]
    best = int(column.argmax())
    anchor = inside_boxes[best]
    contains = bool((anchor[:2] <= gt[g, :2]).all() and (anchor[2:] >= gt[g, 2:]).all())
    gt_area, anchor_area = box_area(gt[g : g + 1]).item(), box_area(anchor[None]).item()
    print(
        f"gt {g}: overlaps {int((column > 0).sum())} anchors; "
        f"highest IoU {column.max().item():.4f} with anchor {anchor.tolist()}"
    )
    print(
        f"      the anchor contains it: {contains}; area(gt) / area(anchor) = "
        f"{gt_area:g} / {anchor_area:g} = {gt_area / anchor_area:.4f}"
    )

# %% [markdown]
# Ground truth 0 overlaps 5111 of the anchors at least a little, ground truth 1 overlaps 3772.
# The highest IoUs are only **0.6813** and **0.6104**, and both best anchors are squares that
# contain their ground truth entirely. For a box inside an anchor the intersection is the box
# and the union is the anchor, so the IoU is simply the ratio of the areas: `470 x 380 / 512²`
# and `200² / 256²`, as the second lines show. No anchor reaches the usual 0.7 for either box.
#
# How unusual is that? The curve below puts a square ground truth of every side from 32 to 720
# pixels, in steps of 8, in the middle of the image and records the highest IoU any inside anchor
# reaches.


# %%
def runs(values, step=8):
    """[112, 120, 128, 216] -> "112-128, 216": consecutive values (step apart) as ranges."""
    groups = [[values[0]]]
    for value in values[1:]:
        if value == groups[-1][-1] + step:
            groups[-1].append(value)
        else:
            groups.append([value])
    return ", ".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else f"{g[0]}" for g in groups)


sides = torch.arange(32, 720 + 1, 8)
best_for_side = []
for side in sides.tolist():
    square = torch.tensor([[400 - side / 2, 400 - side / 2, 400 + side / 2, 400 + side / 2]])
    best_for_side.append(box_iou(inside_boxes, square).max().item())
best_for_side = torch.tensor(best_for_side)

fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(sides, best_for_side, marker=".")
ax.axhline(0.7, color="tab:green", linestyle="--", label="0.7: positive")
ax.axhline(0.3, color="tab:red", linestyle="--", label="0.3: negative below")
for s in (128, 256, 512):
    ax.axvline(s, color="grey", linewidth=0.8, label="anchor sizes" if s == 128 else None)
ax.set_xlabel("side of a square ground truth in the middle of the image (pixels)")
ax.set_ylabel("highest IoU with an anchor")
ax.legend(loc="lower right")
plt.show()
print("sides reaching 0.7:", runs(sides[best_for_side >= 0.7].tolist()))
print("sides below 0.7:   ", runs(sides[best_for_side < 0.7].tolist()))

# %% [markdown]
# IoU 0.7 is reached only near the three anchor sizes (grey lines): sides 112 to 152, 216 to 304
# and 432 to 608. Squares of 104 pixels or less never reach it, because the smallest square anchor
# is 128 pixels wide; neither do squares of 160 to 208 or 312 to 424 pixels, which fall between two
# anchor sizes (our 200-pixel ground truth is one of them), nor squares of 616 pixels or more, too
# large for the largest anchor. The "IoU >= 0.7" rule alone would leave many objects with no
# positive anchor at all: hence the rule of section 3c.
#
# Over all 8940 anchors, the highest IoU of each anchor (its best ground truth) is spread like
# this:

# %%
best_iou, matched_gt = iou.max(dim=1)  # [8940] each: best IoU and which ground truth
print(f"IoU = 0: {int((best_iou == 0).sum())}")
print(f"0 < IoU < 0.3: {int(((best_iou > 0) & (best_iou < 0.3)).sum())}")
print(f"0.3 <= IoU < 0.7: {int(((best_iou >= 0.3) & (best_iou < 0.7)).sum())}")
print(f"IoU >= 0.7: {int((best_iou >= 0.7).sum())}")

# %% [markdown]
# 2593 anchors touch neither box, 5097 overlap one a little (below 0.3), 1250 overlap one by 0.3
# or more, and none by 0.7 or more. 2593 + 5097 = 7690: that will be the number of negatives.
#
# ## 3. The labelling rules, one at a time
#
# Labels start at -1 (ignored) and three rules overwrite them, in this order:
#
# **a) Negatives.** An anchor whose best IoU is below 0.3 is background (label 0).

# %%
labels = torch.full((len(inside_boxes),), -1)
labels[best_iou < 0.3] = 0
print("after rule a: negatives", int((labels == 0).sum()))

# %% [markdown]
# **b) Positives by threshold.** An anchor whose best IoU is at least 0.7 is an object (label 1).
# Here there is none (section 2), so the rule changes nothing:

# %%
labels[best_iou >= 0.7] = 1
print("after rule b: positives", int((labels == 1).sum()))

# %% [markdown]
# **c) The best anchors of each ground truth.** For every ground truth, the anchor with the
# highest IoU with it is positive, whatever that IoU is, so that every object gets at least one
# positive anchor. `iou.argmax(dim=0)` would pick one anchor per ground truth; but several
# anchors can share the highest IoU exactly, and they are all equally good:

# %%
gt_best = iou.max(dim=0).values  # [2]: each ground truth's highest IoU
is_best = iou == gt_best  # [8940, 2]: broadcasting compares each column with its maximum
print("highest IoU per ground truth:", [round(v, 4) for v in gt_best.tolist()])
print("anchors sharing it, per ground truth:", is_best.sum(dim=0).tolist())
print("argmax alone would give:", len(set(iou.argmax(dim=0).tolist())), "positives")
labels[is_best.any(dim=1)] = 1
print("after rule c: positives", int((labels == 1).sum()))

# %% [markdown]
# Why 2 and 16? An anchor that contains its ground truth has IoU = area(gt) / area(anchor), the
# same wherever it sits, as long as it still contains the box. The 256-pixel squares are centred 16
# pixels apart; a 256-pixel square contains the 200-pixel ground truth 1 at 4 horizontal x 4
# vertical positions (56 pixels of slack each way): **16 anchors** tie at 0.6104. The 512-pixel
# square contains ground truth 0 (470 x 380) at 3 horizontal x 8 vertical positions, but an anchor
# must also lie inside the image: only 2 of the horizontal positions and 1 of the vertical ones do
# (the others stick out of the left or the top), so **2 anchors** tie at 0.6813. `argmax` would
# keep one of each, 2 positives instead of 18, and teach the network that 16 anchors as good as the
# chosen ones are not objects.
#
# **d) Ignored.** Whatever is left, best IoU from 0.3 up to 0.7 and not a best anchor, stays -1:
# these anchors overlap an object too much to be called background and too little to be called
# that object, and the loss skips them.

# %%
positive, negative, ignored = (int((labels == v).sum()) for v in (1, 0, -1))
print(
    f"positive {positive}, negative {negative}, ignored {ignored}, "
    f"total {positive + negative + ignored}"
)

# %% [markdown]
# 18 positives, 7690 negatives and 1232 ignored anchors: 8940 in all. The ignored ones are the
# 1250 anchors whose best IoU lies from 0.3 up to 0.7, minus the 18 best anchors among them. The
# order of the rules matters: rule c comes after rule a, so a best anchor stays positive even if
# its IoU is below 0.3 (a small object whose best anchor overlaps it poorly still gets one
# positive).
#
# The package's `label_anchors` and torchvision's `Matcher` (the one its RPN uses, with
# `allow_low_quality_matches=True` for rule c) give the same labels. torchvision encodes them as
# a ground-truth index for positives, -1 for "below 0.3" and -2 for "between":

# %%
package_labels, package_matched = label_anchors(inside_boxes, gt, pos_thresh=0.7, neg_thresh=0.3)
matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(box_iou(gt, inside_boxes))
torchvision_labels = torch.where(matches >= 0, 1, torch.where(matches == -1, 0, -1))
print("ours == label_anchors:", torch.equal(labels, package_labels))
print("ours == torchvision Matcher:", torch.equal(labels, torchvision_labels))

# %%
fig, ax = plt.subplots(figsize=(6.5, 6.5))
show_image(blank, ax=ax, title=f"{positive} positive (green) and {ignored} ignored (grey) anchors")
draw_labelled_anchors(ax, inside_boxes, labels, show=(-1, 1))
draw_boxes(ax, gt, colour="tab:blue", linewidth=3)[0].set_label("ground truth")
ax.set_xlim(0, 800)
ax.set_ylim(800, 0)
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# The ignored anchors (faint grey) crowd around both boxes: anchors of roughly the right size
# that are shifted or of the wrong shape. The positives (green) are the 2 large squares around
# ground truth 0 and the 16 around ground truth 1, 16 pixels apart.
#
# ## 4. A balanced mini-batch
#
# 7690 negatives against 18 positives: a loss over all of them would be dominated by
# background.

# %% jupyter={"source_hidden": true}
say(
    'A network answering "background" everywhere would be right '
    f"{100 * negative / (negative + positive):.1f} % of the time on the labelled anchors."
)

# %% [markdown]
# Faster R-CNN therefore trains on a **mini-batch of 256 anchors per image** with at most
# half of them positive: it keeps up to 128 randomly chosen positives and fills the rest with
# randomly chosen negatives. Everything not chosen becomes ignored (-1) for this step.

# %%
generator = torch.Generator().manual_seed(0)
sampled = sample_labels(
    labels, batch_size_per_image=256, positive_fraction=0.5, generator=generator
)
print(
    "sampled: positive",
    int((sampled == 1).sum()),
    "| negative",
    int((sampled == 0).sum()),
    "| ignored",
    int((sampled == -1).sum()),
)

sampler = BalancedPositiveNegativeSampler(batch_size_per_image=256, positive_fraction=0.5)
pos_mask, neg_mask = sampler([torch.where(labels == 1, 1, torch.where(labels == 0, 0, -1))])
print(
    "torchvision's sampler: positive", int(pos_mask[0].sum()), "| negative", int(neg_mask[0].sum())
)

# %% [markdown]
# There are only 18 positives, fewer than the 128 allowed, so all of them are kept and the batch
# is filled with 256 - 18 = **238** negatives out of 7690; the other 8940 - 256 = 8684 anchors are
# ignored in this step. torchvision's sampler picks the same numbers (its random choice of
# *which* negatives differs). Every training step draws a new batch, so over many steps every
# negative gets its turn. The positives are still outnumbered 238 to 18 here; with more or
# larger objects (the photo in section 7) the balance improves.
#
# ## 5. Regression targets
#
# A positive anchor must also learn how to move onto its ground truth. The package's
# `encode_boxes` (in `tutorial_det.boxes`, next to lesson 00's box formats) writes that move as
# four numbers relative to the anchor's size: `dx = (x - xa) / wa`, `dy = (y - ya) / ha` for the
# centres, `dw = log(w / wa)`, `dh = log(h / ha)` for the sizes.

# %%
pos = labels == 1
deltas = encode_boxes(gt[package_matched[pos]], inside_boxes[pos])
print("deltas of the positives:", tuple(deltas.shape), "(dx, dy, dw, dh)")
for k in (0, 1, 2, 17):
    x1, y1, x2, y2 = inside_boxes[pos][k].tolist()
    move = [round(v, 4) for v in deltas[k].tolist()]
    print(
        f"  anchor centred at ({(x1 + x2) / 2:g}, {(y1 + y2) / 2:g}), {x2 - x1:g} x {y2 - y1:g}"
        f" -> gt {int(package_matched[pos][k])}: {move}"
    )

# %% [markdown]
# The two positives of ground truth 0 (512-pixel squares) both need `dw = log(470 / 512) =
# -0.0856` and `dh = log(380 / 512) = -0.2982`: shrink a little in width, more in height. The 16 of
# ground truth 1 share `dw = dh = log(200 / 256) = -0.2469`, and differ in `dx`, `dy`: the anchor
# centred at x = 472 must move `(500 - 472) / 256 = 0.1094` of its width to the right, the one at
# 520 must move -0.0781. Decoding the deltas gives the ground truth back, and torchvision's
# `BoxCoder` (weights 1, 1, 1, 1 for the RPN) computes the same numbers:

# %%
back = decode_boxes(deltas, inside_boxes[pos])
print("decoded == ground truth:", torch.allclose(back, gt[package_matched[pos]], atol=1e-3))
theirs = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).encode_single(
    gt[package_matched[pos]], inside_boxes[pos]
)
print("same as torchvision's BoxCoder:", torch.allclose(deltas, theirs, atol=1e-6))

# %% [markdown]
# (The walkthrough computed these targets in the order `dy, dx, dh, dw` with its own
# conversion helper, whose centre-y bug lesson 00 found: a tall box got a wrong `dy`.)
#
# `anchor_targets` does all of this for a whole image in one call: it drops the anchors crossing
# the border, labels the inside ones, samples the batch and encodes the positives. It returns one
# label and one delta row per anchor of the full grid, in the grid's (row, column, anchor) order,
# ready to be compared with the RPN's predictions in lesson 04:

# %%
rpn_labels, rpn_deltas = anchor_targets(
    anchors, gt, (800, 800), generator=torch.Generator().manual_seed(0)
)
print("labels:", tuple(rpn_labels.shape), "| deltas:", tuple(rpn_deltas.shape))
print(
    "positive",
    int((rpn_labels == 1).sum()),
    "| negative",
    int((rpn_labels == 0).sum()),
    "| ignored",
    int((rpn_labels == -1).sum()),
)
print("non-zero delta rows:", int((rpn_deltas != 0).any(dim=1).sum()))

# %% [markdown]
# 18 + 238 = 256 anchors take part; the other 22500 - 256 = 22244 (the 13560 crossing the border
# and the 8684 not sampled) are ignored. Only the 18 positives have regression targets; the
# other rows are zero and the box loss never looks at them.
#
# ## 6. Explore IoU
#
# Move and resize the two boxes; the dark area is the intersection, the whole shaded area the
# union. Widths and heights go down to 0, so lesson 00's zero-area boxes can be tried too. (With
# no running kernel, for instance on a web page, the sliders do not respond.)

# %%
iou_explorer = IoUExplorer()
iou_explorer

# %% [markdown]
# The starting boxes are two 100 x 100 squares overlapping by 50 x 50: IoU = 2500 / 17500 = 0.143,
# even though each covers a quarter of the other. How far can a box slide sideways and still keep
# IoU >= 0.7 with an identical box? If it slides by `d`, the IoU of two squares of side `s` is
# `(s - d) / (s + d)`, which stays >= 0.7 while `d <= 0.176 s`: 17 pixels for a 100-pixel box.

# %%
slide = IoUExplorer(box_a=(50, 50, 150, 150), box_b=(50, 50, 150, 150))
for d in (17, 18):
    slide.b_left.value = 50 + d
    print(f"slid by {d}: {slide.sentence}")

# %% [markdown]
# Slid by 17 pixels: intersection 83 x 100 = 8300, union 11700, IoU 0.709, still positive. By 18:
# 0.695, no longer. For anchors, position is rarely the problem: a ground truth's centre is at
# most 8 pixels from some cell centre in x and in y. Size and shape are, as section 2 showed.
#
# Two boxes of width 0 (lesson 00's edge case) have no area, and their union has none either:

# %%
with slide.hold():
    slide.a_width.value = slide.b_width.value = 0
print(slide.sentence)

# %% [markdown]
# ## 7. Explore labelling
#
# The labelling explorer applies the rules of section 3 and the sampling of section 4 live. On the
# blank example it starts with the numbers found above:

# %%
labelling = LabellingExplorer(blank, gt)
labelling

# %% [markdown]
# Things to try: lower the positive threshold to 0.6, raise the negative threshold, switch off
# the sampling to see all 7690 negatives, tick "draw ignored". What should lowering the positive
# threshold do? Each ground truth's positives, per threshold:

# %%
for pos_thresh in (0.7, 0.6):
    lowered, lowered_gt = label_anchors(inside_boxes, gt, pos_thresh=pos_thresh)
    per_gt = [int(((lowered == 1) & (lowered_gt == g)).sum()) for g in range(len(gt))]
    print(f"positive at IoU >= {pos_thresh}: {per_gt} (gt 0, gt 1), {sum(per_gt)} in all")

# %% [markdown]
# At 0.6 ground truth 0, whose best IoU is 0.6813, gains the anchors from 0.6 up to it. Ground
# truth 1 keeps the same 16: its best IoU, 0.6104, is shared by all of them, and no other anchor
# reaches 0.6.
#
# On the photo, with the same anchors:

# %%
photo_labelling = LabellingExplorer(
    photo, photo_target["boxes"], photo_target["labels"], class_names=names
)
photo_labelling

# %% [markdown]
# The grid now has fewer cells, and fewer anchors fit inside the smaller image. Which ground
# truth do the positives belong to, and which rule made them positive?

# %%
photo_iou = box_iou(photo_labelling.anchors, photo_target["boxes"])
photo_labels, photo_matched = label_anchors(photo_labelling.anchors, photo_target["boxes"])
by_threshold = photo_iou.max(dim=1).values >= 0.7  # rule b; the other positives come from rule c
print(f"grid: {photo_height // 16} rows x {photo_width // 16} columns")
for g, label in enumerate(photo_target["labels"].tolist()):
    mine = (photo_labels == 1) & (photo_matched == g)
    print(
        f"gt {g} {names[label]:>10}: highest IoU {photo_iou[:, g].max().item():.3f}, "
        f"positives {int(mine.sum())}: {int((mine & by_threshold).sum())} by rule b, "
        f"{int((mine & ~by_threshold).sum())} by rule c"
    )

# %% [markdown]
# 31 x 46 x 9 = 12834 anchors, of which only 3803 lie inside this smaller image (the other 9031
# cross its border). Of the inside ones, 25 are positive, 2901 negative and 877 ignored; the
# sampled batch holds all 25 positives and 256 - 25 = 231 negatives, leaving 3803 - 256 = 3547
# ignored.
#
# The bench and the bicycle reach IoU 0.7 or more (0.745 and 0.880): all their 8 and 4 positives
# come from rule b. The motorcycle just misses it (0.699) and the two wheels stay at 0.673 and
# 0.611: their 5, 2 and 6 positives all come from rule c, ties included. 25 in all.
#
# ## 8. Spot the bug
#
# Our rules of section 3 gave exactly the package's labels on the example. Now a random crop (a
# common data augmentation) cuts an object down to a tiny box in the image's top-left corner, 8 x
# 8 pixels. **Before running the next cell, predict how many positives rules a to c produce.**


# %%
def labels_by_rules(anchors, gt_boxes, pos_thresh=0.7, neg_thresh=0.3):
    """Section 3's rules as one function: (labels [A], matched_gt [A])."""
    iou = box_iou(anchors, gt_boxes)
    best_iou, matched = iou.max(dim=1)
    labels = torch.full((len(anchors),), -1)
    labels[best_iou < neg_thresh] = 0
    labels[best_iou >= pos_thresh] = 1
    labels[(iou == iou.max(dim=0).values).any(dim=1)] = 1
    return labels, matched


corner = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
with_corner = torch.cat((gt, corner))
for name, boxes in (("two ground truths", gt), ("plus the corner box", with_corner)):
    ours = labels_by_rules(inside_boxes, boxes)[0]
    print(f"{name:>19}: positive {int((ours == 1).sum())}, negative {int((ours == 0).sum())}")
print(
    "highest IoU of the corner box with any inside anchor:",
    box_iou(inside_boxes, corner).max().item(),
)

# %% [markdown]
# **Every one of the 8940 anchors is positive.** No inside anchor reaches into that 8 x 8 corner,
# so the corner box's highest IoU is 0 (the last line), and *every* anchor ties with it at 0.
# Rule c makes them all "best anchors". One tiny box in a corner ruins the whole image's targets:
# the network is told that every anchor, background included, is an object.
#
# The fix is one condition: a best anchor counts only if its IoU is above 0 (a ground truth that
# overlaps no anchor cannot be matched by rule c; a good data pipeline drops such boxes before
# they get here). `label_anchors` has it, and `check_label_anchors` tests for it:

# %%
fixed = label_anchors(inside_boxes, with_corner)[0]
print("label_anchors: positive", int((fixed == 1).sum()), "| negative", int((fixed == 0).sum()))
matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(box_iou(with_corner, inside_boxes))
print("torchvision's Matcher: positive", int((matches >= 0).sum()))
check_label_anchors(labels_by_rules)

# %% [markdown]
# With the fix the corner box gets no positive and the other anchors keep their labels (the
# corner box changes no anchor's best IoU), so the counts are those of section 3. torchvision's
# `Matcher` with `allow_low_quality_matches=True` behaves like our buggy version here: its RPN
# rarely meets the case because it also keeps the anchors crossing the border, which do reach
# into the corners. The check finds our bug, and a second one we had not thought of: with no
# ground truth at all (an image of background only, common in real data sets) `iou.max(dim=1)`
# has nothing to take the maximum over and raises; `label_anchors` makes every anchor negative.
#
# ## 9. Exercises
#
# **a) Label the anchors yourself.** Write `my_label_anchors(anchors, gt_boxes)` returning
# `(labels, matched_gt)` with the thresholds 0.7 / 0.3, the best-anchor rule with ties, and the
# corner case handled. The check includes the 8940-anchor example (18 / 7690 / 1232).


# %%
def my_label_anchors(anchors, gt_boxes):
    """labels [A] in {1, 0, -1} and matched_gt [A] (index of each anchor's best ground truth)."""
    raise NotImplementedError  # your code here


check_label_anchors(my_label_anchors)

# %% [markdown]
# **b) IoU, once more.** Paste your `my_box_iou` from lesson 00 (or write it again without
# looking) and check it: everything in this lesson rests on it.


# %%
def my_box_iou(boxes1, boxes2):
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU, 0 where the union is empty."""
    raise NotImplementedError  # your code here


check_box_iou(my_box_iou)

# %% [markdown]
# ## Summary
#
# - The IoU matrix of anchors against ground truths (`[8940, 2]` here) decides every label. Its
#   largest values show how well the anchor sizes fit the objects: a box inside an anchor has
#   IoU = area ratio, so a 200-pixel square never exceeds 0.6104 with 256-pixel anchors.
# - Rules: negative if the best IoU is < 0.3; positive if >= 0.7; positive also for every anchor
#   sharing a ground truth's highest IoU (ties included, IoU > 0); everything else ignored. On
#   the example: 18 positive, 7690 negative, 1232 ignored.
# - Training uses 256 sampled anchors per image, at most half positive: here 18 + 238.
# - Positives get regression targets `(dx, dy, dw, dh)` from `encode_boxes`; decoding them gives the
#   ground truth back; torchvision's `Matcher`, `BalancedPositiveNegativeSampler` and `BoxCoder`
#   agree with the package.
# - A ground truth that overlaps no anchor must not make every tied anchor positive.
#
# **More exercises**
# 1. Draw the IoU of every inside anchor with ground truth 1 as a 50 x 50 map, one map per anchor
#    shape (9 maps). Where is each map largest, and why are the maps of the 128-pixel anchors
#    small everywhere?
# 2. Add a fourth anchor scale, 12 (192 pixels), and re-run section 2's curve. Which ground
#    truth of the example now reaches 0.7, and how many positives does each get?
# 3. With `sample_labels`, how often does one particular negative anchor appear in the batch
#    over 100 steps? Compare with 238 / 7690 x 100.
# 4. The RoI head (lesson 05) labels proposals with one threshold (IoU >= 0.5 positive, < 0.5
#    negative) and samples 128 with at most 25 % positives. Write it with `box_iou` and
#    `sample_labels`.
#
# Next: **04 · Region proposal network**, which predicts these labels and deltas.
