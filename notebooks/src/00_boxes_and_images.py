# %% [markdown]
# # 00 · Boxes and images
#
# A detector answers two questions about every object in a picture: *what* is it, and *where* is
# it. "Where" is a **box**: four numbers in pixel coordinates. Every later lesson (anchors, labels,
# proposals, losses, evaluation) compares boxes, so this lesson makes sure they are solid.
#
# **You will learn**
# - the four ways boxes are written (`xyxy`, `xywh`, `cxcywh`, `yxyx`) and how to convert between them;
# - how to draw boxes on a real photo;
# - **intersection over union** (IoU), the number every later lesson uses to compare two boxes:
#   first as a double loop, then vectorised with broadcasting, checked against torchvision and timed;
# - the edge cases that turn IoU into `NaN` if you are not careful.
#
# **You need** Python and basic PyTorch (tensors, indexing, broadcasting). The README's lesson
# table gives its running time on a quiet 2-core CPU.

# %%
import matplotlib.pyplot as plt
import torch
import torchvision

from tutorial_det import boxes as B
from tutorial_det.exercises import check_box_iou
from tutorial_det.prose import say
from tutorial_det.runtime import median_time_ms, seed_everything
from tutorial_det.samples import load_sample, sample_categories
from tutorial_det.viz import draw_boxes, show_image

seed_everything(0)

# %% [markdown]
# ## 1. A photo and its boxes
#
# The repository ships a few real photos with boxes drawn by hand (`images/README.md` says where
# they come from). Images are tensors of shape `[3, H, W]` (channels first, values in `[0, 1]`);
# boxes are a tensor of shape `[N, 4]`, one row per object, and labels a tensor of `N` class ids.

# %%
image, target = load_sample("coffee")
names = sample_categories()  # label id -> name
label_of = {name: label for label, name in names.items()}
print(
    "image:", tuple(image.shape), image.dtype, f"values in [{image.min():.0f}, {image.max():.0f}]"
)
print("boxes:", tuple(target["boxes"].shape))
for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
    print(f"  {names[label]:>7}: {box}")

# %%
fig, ax = plt.subplots(figsize=(7, 5))
show_image(image, ax=ax, title="coffee.jpg with its annotations")
draw_boxes(ax, target["boxes"], target["labels"], class_names=names)
plt.show()

# %% [markdown]
# ## 2. Four ways to write a box
#
# Pixel `(0, 0)` is the top-left corner of the image; `x` grows to the right, `y` grows **down**.
# The same box can be written as:
#
# | format | numbers | who uses it |
# | --- | --- | --- |
# | `xyxy` | left, top, right, bottom | torchvision, this package (everywhere inside) |
# | `xywh` | left, top, width, height | COCO annotation files |
# | `cxcywh` | centre x, centre y, width, height | SSD priors, the box regression targets |
# | `yxyx` | top, left, bottom, right | TensorFlow, and many older notebooks |
#
# `tutorial_det` keeps every box in `xyxy` and converts only at the edges. Here is the cup's box in
# each format:

# %%
cup = target["boxes"][target["labels"] == label_of["cup"]]
for fmt in B.FORMATS:
    print(f"{fmt:>7}: {B.box_convert(cup, 'xyxy', fmt)[0].tolist()}")
x1, _, x2, _ = cup[0].tolist()

# %% jupyter={"source_hidden": true}
say(
    f'There is no "+1": the cup\'s box is `x2 - x1 = {x2:g} - {x1:g} = {x2 - x1:g}` pixels wide, '
    f"the width the `xywh` row shows, not {x2 - x1 + 1:g}."
)

# %% [markdown]
# Every conversion goes through `xyxy`, so a round trip is two conversions that undo each other.
# On the photo's boxes it gives back exactly the boxes we started from, and torchvision agrees
# with us on the three formats it knows (it has no `yxyx`):

# %%
for fmt in B.FORMATS:
    there = B.box_convert(target["boxes"], "xyxy", fmt)
    back = B.box_convert(there, fmt, "xyxy")
    same_as_torchvision = (
        torch.equal(there, torchvision.ops.box_convert(target["boxes"], "xyxy", fmt))
        if fmt != "yxyx"
        else "n/a"
    )
    print(
        f"{fmt:>7}: round trip exact: {torch.equal(back, target['boxes'])}, torchvision agrees: {same_as_torchvision}"
    )

# %% [markdown]
# Two more operations appear in every detector: **clipping** boxes to the image (a predicted box
# may stick out of it) and **removing tiny boxes**. Clipping clamps `x` to `[0, width]` and `y` to
# `[0, height]`; note that `clip_boxes` takes the image size as `(height, width)`, like torchvision.
# `remove_small_boxes` returns the indices of the boxes it keeps, also like torchvision.

# %%
height, width = image.shape[-2:]
sticking_out = torch.tensor(
    [[-40.0, 100.0, 200.0, 250.0], [500.0, -10.0, 700.0, 90.0], [50.0, 60.0, 55.0, 300.0]]
)
clipped = B.clip_boxes(sticking_out, (height, width))
print("image size (h, w):", (height, width))
print("clipped:", clipped.tolist())
print("widths:", (clipped[:, 2] - clipped[:, 0]).tolist())
print("heights:", (clipped[:, 3] - clipped[:, 1]).tolist())
print("kept, at least 16 px wide and tall:", B.remove_small_boxes(clipped, min_size=16).tolist())

# %% [markdown]
# ## 3. Intersection over union
#
# How much do two boxes overlap? The **intersection** of two boxes is itself a box: its left edge
# is the larger of the two left edges, its right edge the smaller of the two right edges, and the
# same for top and bottom. If the left edge ends up right of the right edge, the boxes do not
# overlap and the intersection is empty.
#
# $$\mathrm{IoU}(a, b) = \frac{\text{area}(a \cap b)}{\text{area}(a) + \text{area}(b) - \text{area}(a \cap b)}$$
#
# The denominator is the area of the union: adding both areas counts the intersection twice, so
# it is subtracted once. IoU is 1 for identical boxes, 0 for boxes that do not touch, and does not
# depend on the image's scale. Written for one pair of boxes, with plain Python numbers:


# %%
def iou_pair(a, b):
    """IoU of two boxes given as (x1, y1, x2, y2) sequences of Python floats."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


print(iou_pair((0, 0, 10, 10), (5, 0, 15, 10)))  # overlap 5 x 10 = 50, union 100 + 100 - 50 = 150
print(iou_pair((0, 0, 10, 10), (0, 0, 10, 10)))  # identical
print(iou_pair((0, 0, 10, 10), (10, 0, 20, 10)))  # touching along an edge: no area in common

# %% [markdown]
# The first answer is $50 / 150 = 1/3$. Notice that two boxes of the same size shifted by half their
# width overlap by only one third: IoU is a strict measure. A detection with IoU 0.5 against the
# truth, the usual threshold for "found it", is already visibly off.
#
# On the photo the cup stands on the saucer. Their intersection is shaded white:

# %%
saucer = target["boxes"][target["labels"] == label_of["saucer"]]
a, b = cup[0].tolist(), saucer[0].tolist()
inter = [max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])]
inside = (inter[2] - inter[0]) * (inter[3] - inter[1]) / ((a[2] - a[0]) * (a[3] - a[1]))
fig, ax = plt.subplots(figsize=(7, 5))
show_image(image, ax=ax, title=f"IoU(cup, saucer) = {iou_pair(a, b):.3f}")
draw_boxes(ax, torch.cat((cup, saucer)), [label_of["cup"], label_of["saucer"]], class_names=names)
draw_boxes(ax, torch.tensor([inter]), colour="white", fill=True, alpha=0.45, linewidth=0)
plt.show()

# %% jupyter={"source_hidden": true}
say(
    f"{100 * inside:.0f} % of the cup's box lies inside the saucer's box, yet their IoU is only "
    f"{iou_pair(a, b):.3f}, because the union is dominated by the larger box. IoU rewards boxes "
    "that agree in position **and** size."
)

# %% [markdown]
# ## 4. All pairs at once
#
# Detectors compare thousands of boxes with a handful of ground truths (lesson 02 will produce
# 8940 anchors inside an 800 x 800 image; lesson 03 compares each with every ground truth). We
# need the matrix `iou[i, j] = IoU(boxes1[i], boxes2[j])`. The direct way is a double loop:


# %%
def box_iou_loop(boxes1, boxes2):
    """[N, 4] x [M, 4] -> [N, M], one pair at a time."""
    out = torch.zeros(len(boxes1), len(boxes2))
    rows1, rows2 = boxes1.tolist(), boxes2.tolist()
    for i, a in enumerate(rows1):
        for j, b in enumerate(rows2):
            out[i, j] = iou_pair(a, b)
    return out


# %% [markdown]
# The vectorised way uses **broadcasting**. Give the first set a new axis in the middle
# (`[N, 1, 2]`) and the second a new axis in front (`[1, M, 2]`); an element-wise `max` then
# produces `[N, M, 2]`: the top-left corner of every pair's intersection, with no loop in Python.


# %%
def box_iou_by_hand(boxes1, boxes2):
    """[N, 4] x [M, 4] -> [N, M] by broadcasting."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])  # [N]
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])  # [M]
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
    wh = (bottom_right - top_left).clamp(min=0)  # [N, M, 2]; negative means "no overlap"
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    union = area1[:, None] + area2[None, :] - inter  # [N, 1] + [1, M] -> [N, M]
    return inter / union


def random_boxes(n, image_size=800, generator=None):
    """n random xyxy boxes inside a square image."""
    xy = torch.rand(n, 2, generator=generator) * (image_size - 50)
    wh = torch.rand(n, 2, generator=generator) * 300 + 10
    return torch.cat((xy, (xy + wh).clamp(max=image_size)), dim=1)


g = torch.Generator().manual_seed(0)
many, few = random_boxes(8940, generator=g), random_boxes(2, generator=g)
print("broadcast shapes:", tuple(many[:, None, :2].shape), "vs", tuple(few[None, :, :2].shape))
reference = torchvision.ops.box_iou(many, few)
print("result shape:", tuple(box_iou_by_hand(many, few).shape))
print("loop       == torchvision:", torch.allclose(box_iou_loop(many, few), reference, atol=1e-6))
print(
    "vectorised == torchvision:", torch.allclose(box_iou_by_hand(many, few), reference, atol=1e-6)
)
print("package    == torchvision:", torch.allclose(B.box_iou(many, few), reference, atol=1e-6))

# %% [markdown]
# All three agree. How much faster is the vectorised version? (Timings depend on your machine,
# so this cell's numbers differ from run to run; the ratios are what matter.)

# %%
# NBVAL_IGNORE_OUTPUT
t_loop = median_time_ms(lambda: box_iou_loop(many, few), repeat=3)
t_ours = median_time_ms(lambda: box_iou_by_hand(many, few), repeat=20)
t_tv = median_time_ms(lambda: torchvision.ops.box_iou(many, few), repeat=20)
print(f"double loop : {t_loop:8.2f} ms")
print(f"broadcasting: {t_ours:8.3f} ms  ({t_loop / t_ours:.0f}x faster than the loop)")
print(f"torchvision : {t_tv:8.3f} ms  (ours / torchvision = {t_ours / t_tv:.2f})")

# %% [markdown]
# The loop spends its time in the Python interpreter, one pair at a time; the broadcast version
# hands the whole computation to PyTorch's C++ kernels in a few calls. torchvision's `box_iou` is
# written the same way, so the two take about the same time (the last line's ratio).
#
# ## 5. Edge cases: zero areas and empty sets
#
# Our `box_iou_by_hand` has a hidden bug. A box with zero width or height (a point or a line: it
# happens after clipping a box that lay entirely outside the image) has area 0. Two of them give a
# union of 0 and the division `0 / 0`:

# %%
point = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
print("box_iou_by_hand:", box_iou_by_hand(point, point))
print("B.box_iou      :", B.box_iou(point, point))

# %% [markdown]
# `NaN` spreads: a `NaN` IoU makes every comparison with it false, so a box silently ends up
# neither positive nor negative, and a `NaN` in a loss ruins every weight it touches. The package's
# `box_iou` defines the IoU of two zero-area boxes as 0. It also accepts empty sets (zero boxes) and
# returns a matrix of the right shape, so code downstream never needs a special case:

# %%
print(B.box_iou(torch.zeros(0, 4), few).shape)
print(B.box_iou(many, torch.zeros(0, 4)).shape)

# %% [markdown]
# And it refuses boxes that are not boxes, saying which one is wrong:

# %%
try:
    B.box_iou(few, torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 10.0, 20.0, 50.0]]))
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# ## 6. Spot the bug
#
# The function below converts `yxyx` boxes (top, left, bottom, right) into heights, widths and
# centres, the quantities the box regression of lesson 03 needs. It is the kind of helper found in
# many older notebooks, including the Faster R-CNN walkthrough this course grew from, and it has a
# bug. **Read it and find the wrong line before running the next cell.** Hint: for which boxes
# does the bug not show?


# %%
def yxyx_to_hwc(yxyx):
    """[N, 4] (y1, x1, y2, x2) -> heights, widths, centre ys, centre xs."""
    heights = yxyx[:, 2] - yxyx[:, 0]
    widths = yxyx[:, 3] - yxyx[:, 1]
    centre_y = yxyx[:, 0] + 0.5 * widths
    centre_x = yxyx[:, 1] + 0.5 * widths
    return heights, widths, centre_y, centre_x


# %% [markdown]
# Test it against the package's conversion on a square box and on a tall one:

# %%
for name, box_yxyx in [
    ("square", [[100.0, 100.0, 300.0, 300.0]]),
    ("tall", [[20.0, 30.0, 400.0, 130.0]]),
]:
    box_yxyx = torch.tensor(box_yxyx)
    h, w, cy, cx = yxyx_to_hwc(box_yxyx)
    right = B.box_convert(box_yxyx, "yxyx", "cxcywh")[0]  # (cx, cy, w, h)
    print(
        f"{name:>6}: helper centre y = {cy.item():6.1f}, correct centre y = {right[1].item():6.1f}"
    )

# %% [markdown]
# The square box hides the bug; the tall one shows it. `centre_y` adds half the **width** to the
# top edge: it should add half the **height**. A detector trained with such targets learns to put
# tall objects' centres in the wrong place, and because square boxes come out right, a quick test
# on a square box passes. Two lessons from one bug: test with boxes that are not square, and convert
# through one well-tested function (`box_convert`) instead of writing the arithmetic again.
#
# ## 7. Exercise: your own IoU
#
# `check_box_iou(fn)` runs a function of yours on known answers, edge cases and random boxes.
# When a case fails it first names the mistake your function makes, then shows the smallest case
# that fails, with what it expected and what came back. First, see what it says about the
# `box_iou_by_hand` we wrote above:

# %%
check_box_iou(box_iou_by_hand)

# %% [markdown]
# It names the cause we found by hand, and only the zero-area case fails. Now write your own
# version below, one that passes every case (don't copy `box_iou_by_hand`: start from the
# formula). Replace the `raise NotImplementedError` and run the check again.


# %%
def my_box_iou(boxes1, boxes2):
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU, 0 where the union is empty."""
    raise NotImplementedError  # your code here


check_box_iou(my_box_iou)

# %% [markdown]
# ## Summary
#
# - A box is four numbers; `tutorial_det` keeps them as `[N, 4]` float tensors in `xyxy` pixels
#   and converts other formats at the edges with `box_convert`.
# - IoU = intersection / union. The all-pairs matrix is computed by broadcasting `[N, 1, 2]`
#   against `[1, M, 2]`: far faster than a double loop and about as fast as torchvision (the
#   timing cell measures both on your machine).
# - Zero-area boxes and empty sets must give defined answers (IoU 0, shape `[0, M]`), never `NaN`.
# - Bugs that vanish on square boxes exist: test with boxes that are not square.
#
# **More exercises**
# 1. The Generalised IoU (GIoU) subtracts from the IoU the fraction of the smallest enclosing box
#    not covered by the union, so that even disjoint boxes get a useful (negative) score. Write it
#    and compare with `torchvision.ops.generalized_box_iou`.
# 2. Some older code computes areas as `(x2 - x1 + 1) * (y2 - y1 + 1)`. Compute IoU that way for
#    the two 10 x 10 boxes touching along an edge. Why is the answer not 0, and why is it wrong for
#    boxes in continuous pixel coordinates?
# 3. Convert the photo's boxes to `xywh` and write them as a COCO `"bbox"` list; then read
#    `images/annotations.json` and check that you get the file's numbers back.
#
# Next: **01 · Feature extraction**, where an image becomes a grid of feature vectors.
