# %% [markdown]
# # 05 · RoI pooling and heads
#
# The RPN of lesson 04 says *where* objects might be: a few hundred to two thousand boxes per
# image. The second stage of Faster R-CNN looks at each of those **regions of interest** (RoIs)
# closely and says *what* it is (one of the classes, or background) and *exactly where* (a last
# correction of the box, one per class). To do that with one fully connected network, every RoI,
# whatever its size, must first become a feature grid of one fixed size: that is **RoI pooling**.
#
# **You will learn**
# - how the RoIs a training step learns from are chosen: the ground truths added to the
#   proposals, 128 sampled per image with at most 25 % positives (IoU >= 0.5), their classes and
#   regression targets;
# - RoI max pooling step by step on a small example: scaling, rounding to cells, bins, maxima;
#   checked against torchvision's `roi_pool`, and how the package's `roi_pool` does the same;
# - what the rounding costs, and how RoIAlign avoids it;
# - a RoI pooling bug that truncates coordinates and crops past the edge of the map;
# - the RoI head: fully connected layers, class logits and per-class deltas, and why the layers
#   need a non-linearity between them (shown numerically).
#
# **You need** lessons 03 (IoU, `encode_boxes`, sampling) and 04 (proposals). The README's lesson
# table gives its running time on a quiet 2-core CPU.

# %%
import matplotlib.pyplot as plt
import torch
import torchvision
from torch import nn

from tutorial_det.backbones import imagenet_normalize, vgg16_stride16
from tutorial_det.boxes import box_iou
from tutorial_det.exercises import check_proposal_targets, check_roi_pool
from tutorial_det.labelling import sample_labels
from tutorial_det.prose import say
from tutorial_det.roi import ROI_BOX_WEIGHTS, RoIHead, proposal_targets
from tutorial_det.roi_pool import roi_pool
from tutorial_det.rpn import TRAIN_PROPOSALS, RegionProposalNetwork, objectness_probability, propose
from tutorial_det.runtime import seed_everything
from tutorial_det.samples import load_sample, sample_categories
from tutorial_det.viz import draw_boxes, draw_legend, show_image

seed_everything(0)

# %% [markdown]
# ## 1. The example: lesson 04's proposals
#
# The astronaut photo at 800 x 800, VGG16 features (random weights) and the untrained RPN of
# lesson 04, rebuilt with the same seeds: 2000 proposals. The photo has 7 annotated objects
# (person, face, two eyes, helmet, flag, rocket); the class numbers are those of the sample
# annotations.

# %%
size = 800
photo800, photo_target = load_sample("astronaut", size=size)
gt = photo_target["boxes"].as_subclass(torch.Tensor)
gt_labels = photo_target["labels"].as_subclass(torch.Tensor)
names = sample_categories()
label_of = {name: label for label, name in names.items()}

backbone = vgg16_stride16().eval()
with torch.no_grad():
    features = backbone(imagenet_normalize(photo800)[None])
torch.manual_seed(0)
rpn = RegionProposalNetwork(512).eval()
with torch.no_grad():
    anchors, logits, deltas = rpn.predict(features)
proposals, _ = propose(
    anchors, objectness_probability(logits[0]), deltas[0], (size, size), TRAIN_PROPOSALS
)
print("features:", tuple(features.shape), "| proposals:", tuple(proposals.shape))
print("ground truth:", [names[int(c)] for c in gt_labels])

# %% [markdown]
# ## 2. Which RoIs to learn from
#
# Training the head on all 2000 proposals would mostly teach it "background". As for the RPN
# (lesson 03), each image contributes a small, balanced sample, chosen with simpler rules:
#
# 1. **add the ground-truth boxes** to the proposals: early in training the proposals are poor,
#    and a ground truth is a perfect example of its class;
# 2. each candidate takes the ground truth it overlaps most; **IoU >= 0.5 makes it positive**
#    (that ground truth's class), **IoU < 0.5 negative** (background, class 0). No band is
#    ignored here;
# 3. sample **128 per image, at most 25 % (32) positive**, the rest negative.

# %%
candidates = torch.cat((proposals, gt))
iou = box_iou(candidates, gt)
best_iou, matched = iou.max(dim=1)
positive = best_iou >= 0.5
print("candidates:", len(candidates), "=", len(proposals), "proposals +", len(gt), "ground truths")
print("positive (IoU >= 0.5):", int(positive.sum()), "| negative:", int((~positive).sum()))
for g in range(len(gt)):
    from_proposals = int((positive[: len(proposals)] & (matched[: len(proposals)] == g)).sum())
    print(f"  {names[int(gt_labels[g])]:>7}: {from_proposals} positive proposals")
positive_proposals = int(positive[: len(proposals)].sum())
sides = proposals[:, 2:] - proposals[:, :2]  # [2000, (width, height)]
print(f"proposal sides from {sides.min():.0f} to {sides.max():.0f} pixels")
eyes = gt[gt_labels == label_of["eye"]]
print("eye boxes, width x height:", [f"{w:.0f} x {h:.0f}" for w, h in (eyes[:, 2:] - eyes[:, :2])])

# %% jupyter={"source_hidden": true}
say(f"""
    Of the {len(candidates)} candidates, {int(positive.sum())} are positive and
    {int((~positive).sum())} negative: the {len(gt)} ground truths themselves and
    {positive_proposals} proposals. The untrained RPN proposes boxes of roughly anchor sizes
    (sides from {sides.min():.0f} to {sides.max():.0f} pixels) scattered over the image; the
    large objects catch several of them by chance. The eyes are far smaller than any anchor, so
    no proposal reaches IoU 0.5 with them: without step 1 they would never be a positive
    example. With a trained RPN the proposals gather on the objects and the positives become
    plentiful.
""")

# %% [markdown]
# Now the sampling. `sample_labels` from lesson 03 does it: labels 1 / 0 in, at most 32
# positives and 128 in all kept:

# %%
labels = positive.long()
sampled = sample_labels(
    labels,
    batch_size_per_image=128,
    positive_fraction=0.25,
    generator=torch.Generator().manual_seed(0),
)
print("sampled positives:", int((sampled == 1).sum()), "| negatives:", int((sampled == 0).sum()))
without_gt = sample_labels(
    labels[: len(proposals)],  # the proposals alone, ground truths not added
    batch_size_per_image=128,
    positive_fraction=0.25,
    generator=torch.Generator().manual_seed(0),
)
print(
    "without the ground truths, sampled positives:",
    int((without_gt == 1).sum()),
    "| negatives:",
    int((without_gt == 0).sum()),
)

# %% jupyter={"source_hidden": true}
say(f"""
    There are {int(positive.sum())} positives, more than 32, so exactly 32 are kept, and
    128 - 32 = {int((sampled == 0).sum())} negatives. Without the ground truths there would be
    only {positive_proposals} positive proposals, fewer than the quota: all of them are kept, and
    the sample is topped up with {int((without_gt == 0).sum())} negatives.
""")

# %% [markdown]
# The positives also get **regression targets**: how to move each RoI onto its ground truth, with
# `encode_boxes` and the RoI head's weights (10, 10, 5, 5). A positive RoI overlaps its object at
# IoU 0.5 or more, so its raw deltas are small; the weights scale them up, so that the box loss is
# neither negligible nor dominant (the untrained proposals here barely reach IoU 0.5, and their
# weighted deltas reach about 3, as printed below). `proposal_targets` does all of this for an
# image:

# %%
rois, roi_labels, roi_deltas = proposal_targets(
    proposals, gt, gt_labels, generator=torch.Generator().manual_seed(0)
)
print(
    "rois:",
    tuple(rois.shape),
    "| labels:",
    tuple(roi_labels.shape),
    "| deltas:",
    tuple(roi_deltas.shape),
)
print("classes of the positives:", sorted(set(roi_labels[roi_labels > 0].tolist())))
n_pos = int((roi_labels > 0).sum())
print(f"{n_pos} positives first, then {len(rois) - n_pos} negatives (labels 0, deltas 0)")
print("deltas of the first 3 positives:", roi_deltas[:3].round(decimals=3).tolist())
same = torch.allclose(
    roi_deltas[:3],
    torchvision.models.detection._utils.BoxCoder(ROI_BOX_WEIGHTS).encode_single(
        gt[box_iou(rois[:3], gt).argmax(dim=1)], rois[:3]
    ),
    atol=1e-5,
)
print("same as torchvision's BoxCoder(10, 10, 5, 5):", same)

# %%
fig, ax = plt.subplots(figsize=(6.5, 6.5))
show_image(
    photo800,
    ax=ax,
    title=f"sampled RoIs: the {n_pos} positives, 20 of the {len(rois) - n_pos} negatives",
)
draw_boxes(ax, rois[n_pos : n_pos + 20], colour="tab:red", linewidth=1)
draw_boxes(ax, rois[:n_pos], colour="tab:green", linewidth=1)
draw_boxes(ax, gt, gt_labels, class_names=names, colour="tab:blue", linewidth=2.5)
ax.set_xlim(0, size)
ax.set_ylim(size, 0)
draw_legend(
    ax,
    [
        ("ground truth", "tab:blue", {"linewidth": 2.5}),
        ("positive RoI", "tab:green"),
        ("negative RoI", "tab:red"),
    ],
    loc="lower left",
)
plt.show()

# %% [markdown]
# ## 3. RoI max pooling, step by step
#
# A RoI of any size must become a grid of, say, 7 x 7 values per channel. Fast R-CNN's **RoI
# max pooling**:
#
# 1. scale the box to the feature map (`x * spatial_scale`, 1/16 for VGG16) and **round** each
#    coordinate to a cell;
# 2. the RoI covers cells `x1 .. x2` inclusive: `x2 - x1 + 1` cells (at least 1);
# 3. split that span into `w` bins: bin `j` covers cells `floor(j * span / w)` to
#    `ceil((j + 1) * span / w) - 1` (neighbouring bins may share a cell), likewise in y;
# 4. each output value is the **maximum** over its bin.
#
# On a small example where every value says where it is: a 6 x 8 map whose cell (row y,
# column x) holds `10 y + x`, a stride of 16 pixels, and one RoI pooled to 2 x 2.

# %%
grid = (10 * torch.arange(6.0).view(6, 1) + torch.arange(8.0).view(1, 8))[None, None]
print(grid[0, 0].long())
roi = torch.tensor([[0.0, 20, 12, 100, 70]])  # image 0; x1, y1, x2, y2 in pixels
scaled = roi[0, 1:] / 16
print("scaled to cells:", scaled.tolist())
cells = torch.round(scaled)  # (none of these is a half: torch.round is fine here)
print("rounded:", cells.long().tolist())
print("torch.round of 0.5, 1.5, 2.5:", torch.round(torch.tensor([0.5, 1.5, 2.5])).tolist())

# %% [markdown]
# The RoI from (20, 12) to (100, 70) pixels becomes (1.25, 0.75) to (6.25, 4.375) cells, rounded
# to columns 1 to 6 and rows 1 to 4: **6 columns and 4 rows**. Rounding has moved its left edge
# by 0.25 cells (4 pixels) and its top edge by 0.25 cells the other way. Now the 2 x 2 bins:
# columns 1 to 6 split into 1-3 and 4-6, rows 1-4 into 1-2 and 3-4.

# %%
x1, y1, x2, y2 = cells.long().tolist()
span_w, span_h = x2 - x1 + 1, y2 - y1 + 1
pooled_by_hand = torch.zeros(2, 2)
for i in range(2):
    top = y1 + int(torch.floor(torch.tensor(i * span_h / 2)))
    bottom = y1 + int(torch.ceil(torch.tensor((i + 1) * span_h / 2)))
    for j in range(2):
        left = x1 + int(torch.floor(torch.tensor(j * span_w / 2)))
        right = x1 + int(torch.ceil(torch.tensor((j + 1) * span_w / 2)))
        pooled_by_hand[i, j] = grid[0, 0, top:bottom, left:right].max()
        print(f"bin ({i}, {j}): rows {top}-{bottom - 1}, columns {left}-{right - 1}")
print(pooled_by_hand.long())
print("torchvision roi_pool:", torchvision.ops.roi_pool(grid, roi, 2, 1 / 16)[0, 0].long().tolist())
print("tutorial_det roi_pool:", roi_pool(grid, roi, 2, 1 / 16)[0, 0].long().tolist())

# %% [markdown]
# Each bin's maximum is its bottom-right cell (the values grow down and right): 23, 26, 43, 46.
# torchvision and the package's `roi_pool` give the same grid.
#
# `tutorial_det.roi_pool.roi_pool` follows the same four steps, with three differences from
# the cell above, all of them torchvision's rules:
#
# - it rounds halves **away from zero**, as C's `round` does; `torch.round` rounds a half to the
#   even neighbour (2.5 becomes 2, printed above), which is why the cell above notes that none
#   of its coordinates is a half;
# - it computes a bin's edges as `j * (span / w)`, the bin size rounded to the features' dtype
#   first, where the cell above divides `j * span` exactly;
# - it **clamps** every bin to the map: a RoI may reach past the map's edge, and a bin entirely
#   off the map is empty and gives 0 (section 5 shows why this matters).
#
# It also computes steps 1-3 for all RoIs at once and step 4 one RoI at a time, all its bins
# together; the loop of the cell above, one RoI and one bin at a time, is
# `tutorial_det.naive.roi_pool_loop`, the baseline the benchmarks time and the tests compare
# the package's `roi_pool` with. Its gradient goes to
# each bin's maximum, as torchvision's does. On the real example, 128 RoIs on the
# `[1, 512, 50, 50]` VGG16 map become `[128, 512, 7, 7]`, and the package and torchvision agree
# exactly:

# %%
pooled = roi_pool(features, [rois], 7, 1 / 16)
print("pooled:", tuple(pooled.shape))
print(
    "equal to torchvision:",
    torch.equal(pooled, torchvision.ops.roi_pool(features, [rois], 7, 1 / 16)),
)

# %% [markdown]
# ## 4. What rounding costs, and RoIAlign
#
# Rounding snaps every RoI to the 16-pixel grid: moving a box by a few pixels changes nothing
# until a coordinate crosses half a cell, then the pooled values jump. **RoIAlign** (Mask R-CNN)
# keeps the exact coordinates: each bin is an exact sub-box, and its value is the average of a few
# points sampled in it, each read by **bilinear interpolation** of the four nearest cells. Slide
# a 48-pixel RoI across the ramp map of section 3 (whose value grows by 1 per cell to the right)
# and watch one output value:

# %%
shifts = torch.arange(0.0, 33.0, 1.0)
slid = torch.stack([torch.tensor([0.0, 16 + s, 16, 64 + s, 64]) for s in shifts])  # [33, 5]
print("RoI size:", tuple((slid[0, 3:] - slid[0, 1:3]).tolist()), "pixels")
by_pool = torchvision.ops.roi_pool(grid, slid, 1, 1 / 16)[:, 0, 0, 0]
by_align = torchvision.ops.roi_align(grid, slid, 1, 1 / 16, sampling_ratio=2, aligned=True)[
    :, 0, 0, 0
]
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.step(shifts, by_pool - by_pool[0], where="post", label="roi_pool (max over rounded cells)")
ax.plot(shifts, by_align - by_align[0], marker=".", label="roi_align (average, exact box)")
ax.set_xlabel("RoI moved right by (pixels)")
ax.set_ylabel("change of the pooled value")
ax.legend()
plt.show()
jumps = shifts[1:][by_pool.diff() != 0]
align_slope = ((by_align[-1] - by_align[0]) / shifts[-1]).item()
pool_values = sorted(set(by_pool.tolist()))
print("roi_pool values:", pool_values, "| jumps at shifts:", jumps.tolist())
print(f"roi_align: {align_slope:g} per pixel")

# %% jupyter={"source_hidden": true}
say(f"""
    The max-pooled value is that of the RoI's bottom-right cell: {pool_values[0]:.0f} (row 4,
    column 4) at first, then {pool_values[1]:.0f} from a shift of {jumps[0]:.0f} pixels and
    {pool_values[2]:.0f} from {jumps[1]:.0f}: whole steps of one cell, where the right edge,
    (64 + shift) / 16 cells, reaches a half ({(64 + jumps[0]) / 16:g}, then
    {(64 + jumps[1]) / 16:g}) and rounds up to the next cell. In between, it ignores the box's
    position entirely. RoIAlign's average follows the box continuously: {align_slope:g} =
    1 / 16 per pixel.
""")

# %% [markdown]
# For large objects on a fine map the difference is small; for small objects on a coarse map
# (a 20-pixel object is about one cell at stride 16) it decides whether the head can place the
# box precisely. The package's `RoIHead` uses torchvision's `roi_align` (with `aligned=True`,
# which puts cell centres at half-pixel positions) or the package's own `roi_pool`, chosen by
# `RoIHead(pooling=...)`.
#
# ## 5. Spot the bug: truncated coordinates, empty crops
#
# Here is RoI pooling as the walkthrough this course grew from writes it, in torch. It converts
# the scaled coordinates to integers with `.long()` (which truncates: 0.75 becomes 0), crops the
# feature map from `y1` to `y2 + 1` and `x1` to `x2 + 1`, and lets an adaptive max pool split the
# crop into 7 x 7. **Predict what happens with the two RoIs below before running the cell.**


# %%
def walkthrough_roi_pool(features, rois, output_size, spatial_scale):
    """RoI pooling as in the walkthrough: look at the coordinates and the crop."""
    pool = nn.AdaptiveMaxPool2d(output_size)
    scaled = rois.clone()
    scaled[:, 1:] = scaled[:, 1:] * spatial_scale
    scaled = scaled.long()
    outputs = []
    for index, x1, y1, x2, y2 in scaled.tolist():
        crop = features[index : index + 1, :, y1 : y2 + 1, x1 : x2 + 1]
        outputs.append(pool(crop))
    return torch.cat(outputs)


near = torch.tensor([[0.0, 14, 14, 46, 46]])  # 32 x 32 pixels
print("near the origin, scaled to cells:", (near[0, 1:] / 16).tolist())
print(
    "near the origin, walkthrough:", walkthrough_roi_pool(grid, near, 1, 1 / 16).flatten().tolist()
)
print("near the origin, roi_pool:   ", roi_pool(grid, near, 1, 1 / 16).flatten().tolist())
edge = torch.tensor([[0.0, 100, 96, 128, 100]])  # the bottom strip of a 100 x 128 (h x w) image
print(
    "map rows x columns:",
    tuple(grid.shape[-2:]),
    "| at the border, scaled to cells:",
    (edge[0, 1:] / 16).tolist(),
)
try:
    walkthrough_roi_pool(grid, edge, 1, 1 / 16)
except RuntimeError as error:
    print("at the border, walkthrough: RuntimeError:", str(error).splitlines()[0].split(", but")[0])
print("at the border, roi_pool:   ", roi_pool(grid, edge, 1, 1 / 16).flatten().tolist())

# %% [markdown]
# **Truncation disagrees with the reference.** The 32-pixel RoI covers cells 0.875 to 2.875.
# `roi_pool` rounds: cells 1 to 3, and its maximum is cell (3, 3) = 33. Truncated, it becomes
# cells 0 to 2: the max is cell (2, 2) = 22. Rounding treats cell `i` as centred on pixel `16 i`
# (half a cell from the centres of lessons 01 and 02, the offset RoIAlign's `aligned=True`
# removes); truncating picks the cell before whenever the fraction is 0.5 or more, so it crops up
# to a whole cell (16 pixels) up and left of what `roi_pool` crops, and a head trained on one
# reads other features than the other gives it.
#
# **Crops can be empty.** The RoI along the bottom of an image 100 pixels high starts at row 96 /
# 16 = 6, but VGG16's pools give such an image floor(100 / 16) = 6 rows only, rows 0 to 5 (like the
# map above). The slice `[6 : 7]` of those rows is empty, and the adaptive pool raises. RoIs at the
# bottom or right border are common (proposals are clipped to the image, and the image size is
# rarely a multiple of 16). `roi_pool` clamps every bin to the map; a bin entirely outside is 0.
#
# The walkthrough then reshaped a variable `output` that no cell ever defined (the pooled
# features had been stored under another name), so its head never received them. The fix is
# the real `roi_pool` (rounding, clamping, no crop). `check_roi_pool` names both mistakes:

# %%
check_result = check_roi_pool(walkthrough_roi_pool)

# %% jupyter={"source_hidden": true}
say(f"""
    The truncation comes first, then the crop, each with the smallest case that shows it. The
    20 random RoIs fail too, from the two mistakes together (neither alone gives the
    walkthrough's numbers there), so the check shows that case as well;
    {check_result.passed} of the {check_result.total} cases pass.
""")

# %% [markdown]
# ## 6. The RoI head
#
# The pooled grid of each RoI is flattened (512 x 7 x 7 = 25088 numbers for VGG16) and goes
# through **two fully connected layers with a ReLU after each**, then two outputs side by side:
# `num_classes` logits (background included) and `num_classes x 4` deltas, one box refinement
# per class. The paper's VGG16 head has 4096-wide layers: 25088 x 4096 + 4096 x 4096 weights
# and their biases. `RoIHead` builds the same structure at any width; here 256, for the 21
# classes of Pascal VOC (20 + background):

# %%
torch.manual_seed(0)
head = RoIHead(512, 21, pooling="pool", output_size=7, representation_size=256)
print(head)
with torch.no_grad():
    class_logits, box_deltas = head(features, [rois])
print("class logits:", tuple(class_logits.shape), "| box deltas:", tuple(box_deltas.shape))
fc6_fc7 = 25088 * 4096 + 4096 + 4096 * 4096 + 4096
backbone_parameters = sum(p.numel() for p in backbone.parameters())
print(f"paper-size head: {fc6_fc7:,} parameters in fc6 and fc7")
print(f"the VGG16 backbone (lesson 01): {backbone_parameters:,} parameters")

# %% jupyter={"source_hidden": true}
say(f"""
    128 RoIs in, 21 logits and 21 x 4 deltas per RoI out. At the paper's width, fc6 and fc7
    alone hold {fc6_fc7 / 1e6:.1f} million parameters, {fc6_fc7 / backbone_parameters:.1f} times
    the {backbone_parameters / 1e6:.1f} million of the whole backbone.
""")

# %% [markdown]
# Only the deltas of the RoI's own class will be trained (lesson 06); at test time the deltas
# of each class refine the box for that class.
#
# ### Spot the bug: two Linear layers, no ReLU
#
# The walkthrough's head is `nn.Sequential(nn.Linear(25088, 4096), nn.Linear(4096, 4096))`: two
# layers, nothing between them. **Is that a two-layer network?**

# %%
torch.manual_seed(0)
stacked = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16))
first, second = stacked
merged = nn.Linear(64, 16)
with torch.no_grad():
    merged.weight.copy_(second.weight @ first.weight)  # W2 W1
    merged.bias.copy_(second.weight @ first.bias + second.bias)  # W2 b1 + b2
x = torch.randn(1000, 64)
with torch.no_grad():
    without = (stacked(x) - merged(x)).abs().max().item()
    with_relu = nn.Sequential(first, nn.ReLU(), second)
    between = (with_relu(x) - merged(x)).abs().max().item()
print(f"largest difference, stacked vs one layer:  {without:.1e}")
print(f"largest difference, with a ReLU between:   {between:.2f}")
fc7 = 4096 * 4096 + 4096

# %% jupyter={"source_hidden": true}
say(f"""
    Without a non-linearity, `W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)`: the two layers
    are exactly one linear layer (the difference, {without:.0e}, is float rounding). All the
    extra weights buy nothing: the head can only draw linear boundaries between classes in the
    pooled features, and the walkthrough's second 4096-wide layer adds {fc7 / 1e6:.1f} million
    parameters that cannot learn anything one layer could not. With a ReLU between them, the
    outputs differ from the merged layer by {between:.2f}: the network is now a real two-layer
    network. `RoIHead` puts a ReLU after each fully connected layer.
""")

# %% [markdown]
# ## 7. Exercises
#
# **a) RoI max pooling.** Write `my_roi_pool(features, rois, output_size, spatial_scale)` with
# torchvision's contract (`rois` is `[K, 5]`: batch index, x1, y1, x2, y2 in pixels; round
# halves away from zero; spans of `x2 - x1 + 1` cells; empty bins 0). Loops are fine.


# %%
def my_roi_pool(features, rois, output_size, spatial_scale):
    """[B, C, H, W] features, [K, 5] rois -> [K, C, h, w] max-pooled grids."""
    raise NotImplementedError  # your code here


check_roi_pool(my_roi_pool)

# %% [markdown]
# **b) Proposal targets.** Write `my_proposal_targets(proposals, gt_boxes, gt_labels)` that
# keeps *every* candidate (no sampling): the ground truths added, class of the matched ground
# truth at IoU >= 0.5 else 0, deltas with weights (10, 10, 5, 5) for positives, zeros for
# negatives. The check compares the rows in any order.


# %%
def my_proposal_targets(proposals, gt_boxes, gt_labels):
    """(rois [S, 4], labels [S], target_deltas [S, 4]) for every proposal and ground truth."""
    raise NotImplementedError  # your code here


check_proposal_targets(my_proposal_targets)

# %% [markdown]
# ## Summary
#
# - The RoI head learns from 128 RoIs per image: the proposals plus the ground truths, positive
#   at IoU >= 0.5 (at most 32), negative below; positives get the class of their ground truth
#   and deltas encoded with weights (10, 10, 5, 5). Small objects may have no positive proposal:
#   their ground truth still is one.
# - RoI max pooling rounds the scaled box to cells, splits its `x2 - x1 + 1` cells into bins and
#   takes each bin's maximum: a fixed `[C, 7, 7]` grid for any box. The package's `roi_pool`
#   equals torchvision's: it rounds halves away from zero and clamps every bin to the map.
# - Rounding makes the pooled features jump in 16-pixel steps; RoIAlign samples the exact box by
#   bilinear interpolation and moves smoothly.
# - Truncating with `.long()` crops up to a cell up and left of what `roi_pool` crops (it rounds),
#   and cropping past the map's edge gives an empty crop: round, and clamp bins to the map.
# - Two Linear layers with no non-linearity are one Linear layer: the RoI head needs a ReLU after
#   each fully connected layer.
#
# **More exercises**
# 1. With `sampling_ratio=1, 2, 4` in `roi_align`, how does the curve of section 4 change? And
#    with `aligned=False`?
# 2. Section 2 counted each object's positive proposals at IoU 0.5. Count them at 0.4 and at 0.6:
#    which objects gain or lose positives first, and why?
# 3. Give the RoI head 1024-wide layers and count its parameters for a 128-channel, 7 x 7 input.
#    Which layer dominates, and what would a 5 x 5 pooling change?
#
# Next: **06 · Losses and training**, where the RPN and this head are trained together.
