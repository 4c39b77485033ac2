# %% [markdown]
# # 08 · WPOD-Net: licence plates as warped squares
#
# A licence plate seen from the side is not a rectangle in the picture: it is a slanted
# quadrilateral. A box around it holds as much background as plate, and cutting the box out gives
# a skewed, hard-to-read crop. **WPOD-Net** (Silva and Jung, *License Plate Detection and
# Recognition in Unconstrained Scenarios*, ECCV 2018) finds each plate's **four corners** instead,
# so that the plate can be warped back to a frontal view before anyone reads it.
#
# Its trick: every cell of the output grid predicts a probability ("a plate is here") and a
# 2 x 3 **affine map** that warps a small square, centred on the cell, onto the plate's corners.
#
# **You will learn**
# - why a box is not enough for an oblique plate, and how a perspective warp rectifies it;
# - the network, layer by layer, from a `128 x 128` image to an `8 x 8 x 8` output;
# - the warped unit square, the constant `alpha`, and how targets are encoded per cell;
# - the loss, term by term;
# - a threaded **sample pool** that renders training plates while the network trains, four bugs
#   of the generator it is modelled on, and why this lesson trains without it;
# - training on this CPU for a fixed number of steps, detecting plates and rectifying them.
#
# **You need** lesson 00 (boxes, IoU) and the idea of a detection head on a feature grid (lessons
# 01-04). Most of its running time is training; the README's lesson table gives it on a quiet
# 2-core CPU.

# %%
import math
import threading
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from tutorial_det import wpod as W
from tutorial_det.boxes import box_iou
from tutorial_det.data.plates import PlatesDataset
from tutorial_det.data.pool import SamplePool, SamplePoolError
from tutorial_det.exercises.wpod import check_warp_unit_square
from tutorial_det.prose import say
from tutorial_det.runtime import median_time_ms, pick_device, seed_everything
from tutorial_det.training import evaluate, fit
from tutorial_det.viz import draw_boxes, draw_legend, plot_history, show_image

seed_everything(0)
device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # the same numbers whatever the number of cores: see section 7

# %% [markdown]
# ## 1. Why a box is not enough
#
# The synthetic plates of `PlatesDataset` are flat plates seen from random viewpoints on
# cluttered backgrounds (the largest angles are printed below). Each target holds the plate's
# box **and** its four corners `[N, 4, 2]`, in the order top-left, top-right, bottom-right,
# bottom-left *of the plate as it reads*. The titles give how much of the box (orange) the plate
# (green; the dot marks its top-left corner) actually covers:

# %%
plates = PlatesDataset(6, seed=8)
turn, tilt, roll = (round(math.degrees(angle)) for angle in plates.max_angles)
print(f"viewpoints: turned up to {turn} degrees, tilted up to {tilt}, rotated up to {roll}")
fig, axes = plt.subplots(1, 6, figsize=(15, 3.4))
for ax, (image, target) in zip(axes, plates, strict=True):
    box = target["boxes"][0]
    covered = W.quad_area(target["corners"])[0] / ((box[2] - box[0]) * (box[3] - box[1]))
    show_image(image, ax=ax)
    ax.set_title(f"{target['text'][0]}\nplate: {covered:.0%} of its box", fontsize=10)
    draw_boxes(ax, target["boxes"], colour="orange", linewidth=1.5)
    W.draw_quads(ax, target["corners"])
draw_legend(
    axes[-1],
    [
        ("box", "orange"),
        ("plate", "lime"),
        ("top-left corner", "lime", {"marker": "o", "linestyle": ""}),
    ],
    loc="upper left",
    bbox_to_anchor=(1.02, 1.0),
)
plt.show()

# %% [markdown]
# To read a plate we want it frontal: a fixed-size picture in which the plate fills the frame.
# `W.rectify(image, corners, size=(h, w))` does that with a **perspective warp**: it solves the
# homography `H` (a 3 x 3 matrix, found from the four corner pairs by solving 8 linear equations)
# that maps the output rectangle onto the plate, and samples the image at `H @ (x, y, 1)` for
# every output pixel (`torch.nn.functional.grid_sample`). Fed the box's corners instead, the same
# function shows what a box-based detector would hand to a reader:

# %%
fig, axes = plt.subplots(2, 6, figsize=(15, 2.6))
for k, (image, target) in enumerate(plates):
    x1, y1, x2, y2 = target["boxes"][0].tolist()
    box_corners = torch.tensor([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]])
    show_image(W.rectify(image, box_corners, size=(32, 96))[0], ax=axes[0, k], title="box")
    show_image(
        W.rectify(image, target["corners"], size=(32, 96))[0], ax=axes[1, k], title="corners"
    )
plt.show()

# %% [markdown]
# The box crops are slanted and hold background around the plate (up to half of the box, as the
# titles above show); the corner crops are frontal plates. So the
# detector's job is to find four corners per plate.
#
# ## 2. The network, layer by layer
#
# WPOD-Net is fully convolutional: 3 x 3 convolutions, most of them inside residual blocks, ReLU
# everywhere but in the detection block, and 2 x 2 max-poolings, so the output grid has one cell
# per 16 x 16 pixels (the counts are printed below the table). Each plain convolution here is
# conv + batch norm + ReLU; a residual block is two of them with the input added back before the
# last ReLU. Let's push a `128 x 128` image through it:

# %%
net = W.WPODNet(width=1.0).eval()
x = torch.zeros(1, 3, 128, 128)
print(f"{'layer':<22} {'output shape':<18} {'parameters':>10}")
print(f"{'input':<22} {str(list(x.shape)):<18}")
with torch.no_grad():
    for i, layer in enumerate(net.features):
        x = layer(x)
        params = sum(p.numel() for p in layer.parameters())
        print(f"{i:>2} {type(layer).__name__:<19} {str(list(x.shape)):<18} {params:>10,}")
    out = net.detection(x)
print(
    f"{'detection':<22} {str(list(out.shape)):<18} {sum(p.numel() for p in net.detection.parameters()):>10,}"
)
convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
blocks = [m for m in net.features if type(m).__name__ == "ResidualBlock"]
in_blocks = sum(isinstance(m, torch.nn.Conv2d) for block in blocks for m in block.modules())
pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in net.features)
print(
    f"\n{len(convs)} convolutions, all {set(c.kernel_size for c in convs)}, {in_blocks} of them "
    f"in {len(blocks)} residual blocks; {pools} max-poolings; output stride {128 // out.shape[-1]}"
)

# %% [markdown]
# The detection block is two parallel 3 x 3 convolutions on the last feature map: one with **2
# channels and a softmax** (probability of object, of no object) and one with **6 linear
# channels**, the affine values. Together: `[B, 8, H/16, W/16]`, and the two probabilities of
# every cell sum to 1.
#
# A `width` multiplier scales every channel count. The paper's network (`width=1`) has
# 1,014,584 parameters; on this CPU we train half the width, about a quarter of the parameters
# and of the computation:

# %%
for width in (1.0, 0.5, 0.25):
    n = sum(p.numel() for p in W.WPODNet(width).parameters())
    print(f"width {width:<4}: {n:>9,} parameters")
print("probabilities sum to one:", torch.allclose(out[:, 0] + out[:, 1], torch.ones(1, 8, 8)))

# %% [markdown]
# ## 3. The affine unit square
#
# Each cell's six values `(a, b, tx, c, d, ty)` form a 2 x 3 affine map
#
# $$T(q) = \begin{pmatrix} \max(a, 0) & b \\ c & \max(d, 0) \end{pmatrix} q + \begin{pmatrix} t_x \\ t_y \end{pmatrix}$$
#
# applied to the four corners `q` of the **unit square** centred on the origin,
# `(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)`: top-left, top-right, bottom-right,
# bottom-left. The warped square is the predicted plate, in the cell's frame (section 4). The
# diagonal terms are clamped at 0 so that the map cannot flip the square left-right or
# upside-down, which would swap the plate's corners. The paper chose an affine map rather than a
# full perspective one because the perspective division can blow up during training; a
# parallelogram is close enough for plates that are small compared with their distance.

# %%
maps = {
    "identity": [1.0, 0, 0, 0, 1, 0],
    "a plate: wide, flat, shifted": [2.4, 0, 0.3, 0, 0.7, -0.2],
    "sheared and rotated": [2.0, 0.3, 0, 0.6, 0.8, 0],
    "a < 0: clamped to 0": [-1.0, 0, 0, 0, 1, 0],
}
fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
square = W.UNIT_SQUARE
for ax, (name, values) in zip(axes, maps.items(), strict=True):
    warped = W.warp_unit_square(torch.tensor(values))
    W.draw_quads(ax, square[None], colour="grey", linestyle="--", linewidth=1)
    W.draw_quads(ax, warped[None], colour="tab:green")
    for q, p in zip(square.tolist(), warped.tolist(), strict=True):
        ax.annotate("", p, q, arrowprops={"arrowstyle": "->", "color": "tab:blue", "alpha": 0.6})
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(1.1, -1.1)  # y grows downwards, as in images
    ax.set_aspect("equal")
    ax.set_title(f"{name}\n(a, b, tx, c, d, ty) = {tuple(values)}", fontsize=9)
draw_legend(
    axes[-1],
    [
        ("unit square", "grey", {"linestyle": "--"}),
        ("warped square", "tab:green"),
        ("first corner (top-left)", "tab:green", {"marker": "o", "linestyle": ""}),
        ("where each corner goes", "tab:blue"),
    ],
    loc="upper left",
    bbox_to_anchor=(1.02, 1.0),
)
plt.show()
print(
    "warped corners of the plate-like map:\n",
    W.warp_unit_square(torch.tensor(maps["a plate: wide, flat, shifted"])),
)

# %% [markdown]
# How much does the affine restriction cost? For each of 200 plates we fit the best
# parallelogram to its four corners (least squares) and measure its quadrilateral IoU with the
# true plate. Quadrilateral IoU works like box IoU; the intersection of two convex quadrilaterals
# is found by **Sutherland–Hodgman clipping** (cut one by each edge line of the other in turn)
# and its area by the shoelace formula (`W.quad_iou`).

# %%
views = PlatesDataset(200, seed=3)
corners = torch.cat([views[i][1]["corners"] for i in range(len(views))])  # [200, 4, 2]
design = torch.cat((square, torch.ones(4, 1)), dim=1)  # rows (qx, qy, 1)
fits = []
for quad in corners:
    affine = torch.linalg.lstsq(design, quad).solution.T  # [2, 3]: quad ~ design @ affine.T
    fits.append(design @ affine.T)
fit_iou = W.quad_iou(torch.stack(fits), corners).diagonal()
print(f"best parallelogram vs true plate: mean IoU {fit_iou.mean():.3f}, worst {fit_iou.min():.3f}")

# %% jupyter={"source_hidden": true}
say(
    f"Even the most oblique of these {len(corners)} plates is described by a parallelogram with "
    f"IoU {fit_iou.min():.3f} (mean {fit_iou.mean():.3f}): the affine model is not what limits "
    "the detector."
)

# %% [markdown]
# ## 4. Cells, alpha, and the targets
#
# The output has one cell per 16 x 16 pixels: an `8 x 8` grid on a `128 x 128` image. Cell
# `(i, j)` (row, column) is centred on pixel `((j + 0.5) * 16, (i + 0.5) * 16)`, as the anchors
# of lesson 02 are. Its frame measures positions relative to that centre, in cells, **divided by
# `alpha`**:
#
# $$A_{ij}(p) = \frac{1}{\alpha}\left(\frac{p}{16} - (j + 0.5,\ i + 0.5)\right)$$
#
# so the unit square of a cell is a square of side `alpha` cells (`16 * alpha` pixels) on the
# cell's centre. The paper sets `alpha` to the middle of the plate sizes seen in training,
# divided by the stride: its augmented plates span 40 to 208 pixels, so
# `alpha = ((208 + 40) / 2) / 16 = 7.75`. Our plates are smaller; the same rule on their widths
# gives our `alpha`:

# %%
widths = torch.cat([views[i][1]["boxes"] for i in range(len(views))])
widths = widths[:, 2] - widths[:, 0]
print(f"plate widths in 200 images: {widths.min():.1f} to {widths.max():.1f} px")
print(f"PlatesDataset's setting plate_width = {views.plate_width}")
print("paper's alpha:", W.alpha_for_sizes(40, 208))
print("our alpha    :", W.alpha_for_sizes(*views.plate_width), "=", W.PLATES_ALPHA)

# %% jupyter={"source_hidden": true}
unit_px = 16 * W.PLATES_ALPHA  # the unit square's side in pixels
say(
    f"With `alpha` in the middle of the sizes, the unit square of a cell is {unit_px:g} pixels "
    f"wide, and a plate's width in the cell's frame, its width divided by {unit_px:g}, runs from "
    f"{widths.min() / unit_px:.2f} to {widths.max() / unit_px:.2f}: about the unit square's side "
    "of 1, for every plate size. The affine values the network must produce stay of that order, "
    "which keeps the regression well conditioned."
)

# %% [markdown]
# **Which cells hold a plate?** The paper's rule (its gamma_obj; `pos_thresh` here, lesson 03's
# name for the positive IoU threshold): a cell is an object cell when the plate's bounding box
# has IoU above `pos_thresh` with a box of the same size centred on the cell. A thin plate can
# fail that everywhere: two boxes of the same height `h` shifted vertically by `dy` have IoU
# `(h - dy) / (h + dy)` at best, and the plate's centre can lie up to half a cell (8 pixels) from
# the nearest row of cell centres. So this package also makes the cell that contains the plate's
# centre positive. Here are the IoUs for one plate, and its object cells:

# %%
centres = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="xy"), -1) + 0.5
centres = 16 * centres.reshape(-1, 2)  # [64, 2] cell centres in pixels, row by row


def same_size_iou(quad):
    """[4, 2] plate corners -> [8, 8]: IoU of its box with a same-size box on each cell."""
    lo, hi = quad.amin(0), quad.amax(0)
    same_size = torch.cat((centres - (hi - lo) / 2, centres + (hi - lo) / 2), 1)  # [64, 4]
    return box_iou(torch.cat((lo, hi))[None], same_size).reshape(8, 8)


image, target = plates[3]
owner = W.positive_cells(target["corners"], (8, 8))
quad = target["corners"][0]
lo, hi = quad.amin(0), quad.amax(0)
print("pos_thresh:", W.POS_THRESH)
print("IoU of the plate's box with a same-size box on each cell (rows i, columns j):")
print(np.array2string(same_size_iou(quad).numpy(), precision=2, suppress_small=True))
print("object cells (i, j):", (owner >= 0).nonzero().tolist())
best_cell = torch.stack([same_size_iou(q).max() for q in corners])  # [200]
heights = (corners[:, :, 1].amax(1) - corners[:, :, 1].amin(1))[best_cell <= W.POS_THRESH]
print(
    f"plates of section 3 with IoU above {W.POS_THRESH} at no cell: {len(heights)} of "
    f"{len(corners)}, their boxes {heights.min():.1f} to {heights.max():.1f} px tall"
)

# %% [markdown]
# Now the targets: `W.encode_targets(corners, grid_size, alpha)` returns `[B, 9, H, W]`: an
# object flag, then the plate's corners `x1, y1, ..., x4, y4` in each object cell's frame. The
# figure shows the grid, the object cells (shaded), the unit square of the cell holding the
# plate's centre (side `alpha` cells, dashed blue) and the vectors from that cell's centre to the
# corners it must reach:

# %%
target_map = W.encode_targets([target["corners"]], (8, 8), alpha=W.PLATES_ALPHA)
cells = (target_map[0, 0] > 0).nonzero().tolist()
i, j = ((lo + hi) / 2 / 16).long().tolist()[::-1]  # the cell holding the plate's centre
fig, ax = plt.subplots(figsize=(6, 6))
show_image(image, ax=ax, title=f"object cells (shaded) and the frame of cell ({i}, {j})")
for k in range(1, 8):
    ax.axhline(16 * k, color="black", linewidth=0.6, alpha=0.5)
    ax.axvline(16 * k, color="black", linewidth=0.6, alpha=0.5)
for r, c in cells:
    ax.add_patch(
        Rectangle((16 * c, 16 * r), 16, 16, facecolor="magenta", edgecolor="black", alpha=0.3)
    )
cx, cy = 16 * (j + 0.5), 16 * (i + 0.5)
side = 16 * W.PLATES_ALPHA
ax.add_patch(
    Rectangle(
        (cx - side / 2, cy - side / 2),
        side,
        side,
        fill=False,
        linestyle="--",
        edgecolor="blue",
        linewidth=1.5,
    )
)
W.draw_quads(ax, target["corners"], colour="lime", linewidth=1.5)
for px, py in quad.tolist():
    ax.annotate("", (px, py), (cx, cy), arrowprops={"arrowstyle": "->", "color": "red", "lw": 1})
ax.plot([cx], [cy], "r+", markersize=12)
ax.set_xlim(0, 128)
ax.set_ylim(128, 0)
draw_legend(
    ax,
    [
        ("object cells", "magenta", {"linewidth": 6, "alpha": 0.4}),
        (f"unit square of cell ({i}, {j})", "blue", {"linestyle": "--"}),
        ("the plate", "lime"),
        ("centre to corners", "red"),
    ],
    loc="lower left",
)
plt.show()
print(f"target of cell ({i}, {j}):", [round(v, 3) for v in target_map[0, :, i, j].tolist()])
step_x = target_map[0, 1::2, i, j + 1] - target_map[0, 1::2, i, j]
print(
    f"corners' x in cell ({i}, {j + 1}) minus in cell ({i}, {j}):",
    [round(v, 4) for v in step_x.tolist()],
)
print(f"1 / alpha = {1 / W.PLATES_ALPHA:.4f}")
# the affine map (a, b, tx, c, d, ty) that warps the unit square exactly onto this target
target_corners = target_map[0, 1:, i, j].reshape(4, 2)
affine = torch.linalg.lstsq(design, target_corners).solution.T  # [2, 3]
print(
    "the map this cell must learn, (a, b, tx, c, d, ty):",
    [round(v, 2) for v in affine.flatten().tolist()],
)

# %% jupyter={"source_hidden": true}
(a, b, tx), (c, d, ty) = affine.tolist()
say(
    f"Every object cell carries the same plate, each in its own frame: from cell ({i}, {j}) to "
    f"cell ({i}, {j + 1}) every x drops by {-step_x.mean():.4f} = 1 / alpha. The first pair "
    "printed after the flag is the plate's top-left corner, left of this cell's centre (negative "
    f"x). The map this cell must learn is not the identity: it stretches the unit square "
    f"(side `alpha` cells, {unit_px:g} pixels) to {a:.2f} times its width and squeezes it to "
    f"{d:.2f} of its height, with a shear (b = {b:.2f}, c = {c:.2f}) and a shift "
    f"({tx:.2f}, {ty:.2f}) from the cell's centre. All six values are of order 1, as the "
    "choice of `alpha` intended."
)

# %% [markdown]
# ## 5. The loss, term by term
#
# For an image, summed over its cells (`W.wpod_loss`; the mean over images is the default):
#
# - **affine term**, object cells: warp the unit square with the cell's six values and add the
#   L1 distances of its 4 corners to the target corners (8 numbers);
# - **object term**, object cells: `-log(p_object)`;
# - **background term**, all other cells: `-log(p_not_object)`.
#
# The probabilities are clamped at `1e-9` inside the log, so a confident mistake costs
# `-log(1e-9)` (printed below) instead of infinity, and no `NaN` gradient. A one-cell example by
# hand: the identity map gives the unit square, the target is that square shifted 0.1 to the
# right, and `p_object` is 0.8:

# %%
shifted = (square + torch.tensor([0.1, 0.0])).flatten()
pred = torch.tensor([0.8, 0.2, 1.0, 0, 0, 0, 1.0, 0]).reshape(1, 8, 1, 1)
target_cell = torch.cat((torch.ones(1), shifted)).reshape(1, 9, 1, 1)
terms = W.wpod_loss_terms(pred, target_cell)
print({name: round(value.item(), 4) for name, value in terms.items()})
print("by hand: affine 4 * 0.1 = 0.4, object -log(0.8) =", round(-np.log(0.8), 4))
print("wpod_loss:", round(W.wpod_loss(pred, target_cell).item(), 4))
print("a confident mistake, -log(1e-9) =", round(-np.log(1e-9), 2))

# %% [markdown]
# On the untrained network and a real batch of 8 images: which term weighs most at first?

# %%
torch.manual_seed(0)
model = W.build_wpod(2, width=0.5)
images, targets = zip(*[PlatesDataset(8, seed=4)[k] for k in range(8)], strict=True)
with torch.no_grad():
    output = model.head_outputs(list(images))
    batch_target = W.encode_targets([t["corners"] for t in targets], output.shape[-2:], model.alpha)
print("output", list(output.shape), "target", list(batch_target.shape))
p_object = output[:, 0]  # [B, H, W]
print(f"p_object from {p_object.min():.2f} to {p_object.max():.2f}, mean {p_object.mean():.2f}")
object_cells = (batch_target[:, 0] > 0).sum(dim=(1, 2)).float()
print(f"object cells per image: {object_cells.mean():.1f} of {output.shape[-2] * output.shape[-1]}")
terms = {
    name: value.mean().item() for name, value in W.wpod_loss_terms(output, batch_target).items()
}
print("mean over images:", {name: round(value, 3) for name, value in terms.items()})

# %% jupyter={"source_hidden": true}
say(
    f"The untrained network's `p_object` spreads from {p_object.min():.2f} to "
    f"{p_object.max():.2f} (mean {p_object.mean():.2f}), and a plate claims only "
    f"{object_cells.mean():.1f} of the {output.shape[-2] * output.shape[-1]} cells of an image, so "
    f"the background term, summed over all the other cells, is the largest at first "
    f"({terms['background']:.1f}, against {terms['affine']:.1f} for the corners and "
    f"{terms['object']:.1f} for the object cells)."
)

# %% [markdown]
# ## 6. A pool of samples, filled by threads
#
# Each training plate is rendered on the fly: a new plate, a new viewpoint, a new background.
# Rendering takes a few milliseconds per plate (timed below), so the training code WPOD-Net was
# released with draws batches from a **pool** that worker threads keep refilling: while the pool
# fills, samples are appended; once full, each new sample overwrites a random slot; a batch is a
# random draw from the pool. Once the pool holds `min_samples`, training never waits for
# rendering.
#
# Below is that generator, rewritten in a few lines **with its defects kept**. Before reading on,
# find four problems. (Hints: what does `get_batch` do while it waits? Which shared value is read
# without the lock? What happens when `sample_fn` raises? And one line does not belong in
# finished code at all.)

# %%
from pdb import set_trace as pause  # noqa: E402, F401


class NaivePool:
    """Worker threads fill a pool of samples; batches are drawn from it (defects included)."""

    def __init__(self, sample_fn, pool_size, min_samples=1):
        self.sample_fn, self.pool_size, self.min_samples = sample_fn, pool_size, min_samples
        self.samples, self.count = [], 0
        self.lock = threading.Lock()

    def _work(self, seed):
        rng = np.random.default_rng(seed)
        while True:
            sample = self.sample_fn(rng)
            with self.lock:
                if self.count < self.pool_size:
                    self.samples.append(sample)
                    self.count += 1
                else:
                    self.samples[int(rng.integers(self.pool_size))] = sample

    def start(self, workers=2):
        for w in range(workers):
            threading.Thread(target=self._work, args=(w,), daemon=True).start()

    def get_batch(self, n):
        while self.count < self.min_samples:
            time.sleep(0.1)
        with self.lock:
            picks = np.random.randint(self.count, size=n)
            return [self.samples[i] for i in picks]


# %% [markdown]
# The four defects:
#
# 1. **A debugger import** (`from pdb import set_trace as pause`) left behind: harmless until
#    someone calls `pause()` in a training job with no terminal attached.
# 2. **Polling**: `get_batch` wakes up ten times a second to look at the count, instead of
#    sleeping until a worker says something changed (a `threading.Condition`).
# 3. **An unlocked read**: `self.count` is read outside the lock. In CPython this particular read
#    happens to be safe, but the rule "shared state only under the lock" is what keeps the code
#    correct when it grows (and the check and the draw are not one atomic step).
# 4. **A dead worker hangs the consumer**: if `sample_fn` raises, the worker thread dies (the
#    error goes to `threading.excepthook`, which prints to a stderr nobody may be reading), the
#    pool never fills, and `get_batch` waits forever.
#
# Number 4 is the serious one. Let's provoke it with a sample function that fails, and give
# `get_batch` one second:


# %%
def broken_sample(rng):
    raise ValueError("the font file is missing")


errors = []
default_hook = threading.excepthook
threading.excepthook = lambda args: errors.append(args.exc_value)  # record, don't print
naive = NaivePool(broken_sample, pool_size=8, min_samples=4)
naive.start(workers=1)
consumer = threading.Thread(target=naive.get_batch, args=(2,), daemon=True)
consumer.start()
consumer.join(timeout=1.0)
threading.excepthook = default_hook
print("worker errors:", [repr(e) for e in errors])
print("get_batch still waiting after 1 s:", consumer.is_alive())
with naive.lock:  # fill the pool by hand so that the stuck consumer can finish
    naive.samples, naive.count = ["placeholder"] * 4, 4
consumer.join()
print("released by hand:", not consumer.is_alive())

# %% [markdown]
# `tutorial_det.data.pool.SamplePool` fixes all four: it imports no debugger, waits on a condition
# variable, touches shared state only under its lock, and re-raises a worker's exception in the
# thread that asks for a batch, at once:

# %%
pool = SamplePool(broken_sample, pool_size=8, num_workers=1, min_samples=4, seed=0)
with pool:
    try:
        pool.get_batch(2, timeout=10)
    except SamplePoolError as error:
        print(f"SamplePoolError: {error}\n  caused by: {error.__cause__!r}")

# %% [markdown]
# For training, the pool's `sample_fn` is `PlatesDataset.render`: given a random generator it
# returns a fresh `(image, target)`. Batches go to the training loop `fit`
# (`tutorial_det.training`) as a callable, `W.pool_batches(pool, batch_size)`. How long a plate
# takes to render, and how many the worker renders while we wait, depend on the machine and its
# load, so the numbers below vary from run to run:

# %%
# NBVAL_IGNORE_OUTPUT
render = PlatesDataset(1).render
rng = np.random.default_rng(0)
print(f"rendering one plate: {median_time_ms(lambda: render(rng), repeat=20):.1f} ms")
pool = SamplePool(render, pool_size=256, num_workers=1, min_samples=32, seed=0)
with pool:
    start = time.perf_counter()
    images, targets = W.pool_batches(pool, 16)()
    waited = time.perf_counter() - start
    time.sleep(0.5)
    print(f"first batch after {waited:.2f} s: {len(images)} images {list(images[0].shape)}")
    print(f"half a second later the pool holds {len(pool)} samples ({pool.produced} rendered)")

# %% [markdown]
# That variation is the pool's price. Which samples a batch holds depends on how many plates
# the worker rendered since the last batch, and that depends on the machine's speed and load:
# two training runs from the same seeds see different batches and end with different weights.
# (`SamplePool`'s docstring says so.) That is fine for a long training run, but a lesson must
# give the same numbers every time it runs.

# %% [markdown]
# ## 7. Training
#
# `W.train_on_plates` puts the pieces together for a long run: a `SamplePool` rendering plates
# with one worker thread, AdamW with a cosine learning-rate decay, and `fit` drawing batches of
# 16 from the pool (`benchmarks/train_wpod.py` uses it). Here we make the same choices except
# the pool: `fit` reads a `PlatesDataset` directly, in which plate `i` is a pure function of
# `(seed, i)`, rendered in the training loop, so every run trains on the same plates in the same
# order. We train the half-width network for a fixed number of steps with a short, steep
# schedule (the learning rate decays twentyfold along a cosine). On the CPU, torch runs on one
# thread (set in the first cell), so the numbers do not depend on the number of cores: every
# run on the same CPU gives the same weights. Only the time varies, so the next cell's output is
# not compared when the notebook is tested.

# %%
# NBVAL_IGNORE_OUTPUT
seed_everything(0)
model = W.build_wpod(2, width=0.5)
steps, lr = 150, 4e-3
optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=lr / 20)
start = time.perf_counter()
history = fit(
    model,
    PlatesDataset(100_000, seed=0),
    optimizer=optimizer,
    scheduler=scheduler,
    max_steps=steps,
    batch_size=16,
    grad_clip_norm=10.0,
    log_every=50,
    progress=False,
    device=device,
)
print(f"{steps} steps in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# The losses, the same on every run: the first step's, then the mean over each 50 steps.

# %%
losses = torch.tensor([history.loss, *history.terms.values()])  # [1 + terms, steps]
names = ["loss", *history.terms]
print("step   1:", ", ".join(f"{n} {v:.3f}" for n, v in zip(names, losses[:, 0], strict=True)))
window_means = losses.reshape(len(names), -1, 50).mean(dim=2)  # [1 + terms, steps / 50]
for w in range(window_means.shape[1]):
    means = ", ".join(f"{n} {v:.3f}" for n, v in zip(names, window_means[:, w], strict=True))
    print(f"steps {50 * w + 1:>3}-{50 * (w + 1)}: {means}")
plot_history(history, log_scale=True)
plt.show()

# %% [markdown]
# Now the held-out plates, drawn from a different seed than the training plates. A plate counts
# as detected when a prediction reaches quadrilateral IoU 0.5 with it; the corner error is the
# mean distance, in pixels, between predicted and true corners of detected plates.

# %%
held_out = PlatesDataset(100, seed=1000)
predictions, truths = evaluate(model, held_out, batch_size=25, device=device)
score = W.evaluate_plates(predictions, truths, iou_threshold=0.5)
print(
    f"{score['detected']} of {score['plates']} plates detected ({score['detection_rate']:.0%}), "
    f"{score['false_positives']} false positives, corner error {score['corner_error_px']:.1f} px"
)

# %% jupyter={"source_hidden": true}
say(
    f"After {steps} steps of 16 plates the network finds {score['detected']} of the "
    f"{score['plates']} held-out plates ({score['detection_rate']:.0%}), their corners "
    f"{score['corner_error_px']:.1f} pixels from the truth on average, with "
    f"{score['false_positives']} false detections. `benchmarks/train_wpod.py` trains for more "
    "steps, from the pool; the README's benchmark section gives what it reaches."
)

# %% [markdown]
# ## 8. Detections and rectified plates
#
# Predictions in green with their scores, the truth dashed in white; below each image, its
# best-scoring predicted plate rectified to `32 x 96` pixels with `W.rectify`: frontal where the
# predicted corners are right, skewed and partly background where they are a few pixels off.

# %%
fig, axes = plt.subplots(2, 6, figsize=(15, 3.8), height_ratios=[3, 1])
for k in range(6):
    image, truth = held_out[k]
    pred = predictions[k]
    show_image(image, ax=axes[0, k], title=truth["text"][0])
    W.draw_quads(
        axes[0, k], truth["corners"], colour="white", linestyle="--", linewidth=1, mark_first=False
    )
    W.draw_quads(axes[0, k], pred["corners"], colour="lime", scores=pred["scores"])
    if len(pred["corners"]):
        show_image(W.rectify(image, pred["corners"][:1], size=(32, 96))[0], ax=axes[1, k])
    else:
        show_image(torch.zeros(3, 32, 96), ax=axes[1, k], title="no plate found")
draw_legend(
    axes[0, -1],
    [("prediction, with its score", "lime"), ("truth", "white", {"linestyle": "--"})],
    loc="upper left",
    bbox_to_anchor=(1.02, 1.0),
    facecolor="lightgrey",
)
plt.show()

# %% [markdown]
# ## 9. Exercise: warp the unit square yourself
#
# `check_warp_unit_square(fn)` runs your function on known answers (identity, scaling, shear,
# a negative diagonal term), a random batch and inputs on another device; when a case fails it
# names the mistake first, then shows the smallest case that fails. Here is what it says about a
# version that forgets the clamp:


# %%
def warp_without_clamp(affine):
    a, b, tx, c, d, ty = affine.unbind(-1)
    square = W.UNIT_SQUARE.to(affine)  # on the inputs' device
    qx, qy = square[:, 0], square[:, 1]
    x = a[..., None] * qx + b[..., None] * qy + tx[..., None]
    y = c[..., None] * qx + d[..., None] * qy + ty[..., None]
    return torch.stack((x, y), dim=-1)


check_warp_unit_square(warp_without_clamp)

# %% [markdown]
# Now write your own: `affine [..., 6]` holds `(a, b, tx, c, d, ty)`; return `[..., 4, 2]`, the
# four corners of the unit square (top-left, top-right, bottom-right, bottom-left) moved by
# the clamped map, on the inputs' device. Replace the `raise NotImplementedError` and run the
# check.


# %%
def my_warp_unit_square(affine):
    """[..., 6] affine values -> [..., 4, 2] warped unit-square corners."""
    raise NotImplementedError  # your code here


check_warp_unit_square(my_warp_unit_square)

# %% [markdown]
# ## Summary
#
# - An oblique plate is a quadrilateral, not a box: WPOD-Net predicts its four corners, and a
#   homography (`rectify`) turns them into a frontal picture.
# - The network is fully convolutional, stride 16; each output cell holds 2 probabilities and 6
#   affine values that warp a unit square (side `alpha` cells) onto the plate.
# - `alpha` is the middle of the training plates' sizes divided by the stride: 7.75 in the
#   paper, 4.25 for our 32-104 pixel plates.
# - The loss: L1 between warped-square corners and plate corners on object cells, plus
#   `-log p_object` there and `-log p_not_object` elsewhere, summed per image.
# - A threaded sample pool renders training data beside the training loop; it must wait on a
#   condition (not poll), read shared state under its lock, and pass worker errors on. Its
#   batches depend on thread timing, so a run that must be reproducible (this lesson) reads a
#   data set instead.
#
# **More exercises**
# 1. Write the loss yourself and test it with `tutorial_det.exercises.wpod.check_wpod_loss`.
# 2. Train with `alpha = W.PAPER_ALPHA` (7.75) instead of 4.25
#    (`W.build_wpod(2, width=0.5, alpha=W.PAPER_ALPHA)`) and compare the corner error: what
#    does a badly scaled frame do to the affine values the network must produce?
# 3. Replace the affine map by a perspective one (8 values, with the division by
#    `g * qx + h * qy + 1`). Where can the division go wrong, and how would you guard it?
# 4. `W.quad_iou` assumes convex quadrilaterals. Draw a quadrilateral for which Sutherland–Hodgman
#    clipping gives the wrong intersection when the *clipping* polygon is not convex.
# 5. Train from the pool (`W.train_on_plates(model, PlatesDataset(1), lr=4e-3, max_steps=150)`)
#    twice from the same seeds: do the two runs end with the same losses? Run a third time while
#    another program keeps the machine busy: what changes, and why?
#
# Next: **09 · Training at scale**.
