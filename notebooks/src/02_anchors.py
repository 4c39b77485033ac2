# %% [markdown]
# # 02 · Anchors
#
# Lesson 01 turned an 800 x 800 image into a 50 x 50 grid of feature vectors. The region proposal
# network (lesson 04) looks at each cell and answers, for a handful of **reference boxes** centred
# on that cell: "is there an object in this box, and how should the box move to fit it?". Those
# reference boxes are the **anchors**. This lesson builds all of them, counts them, and lines
# them up with the network's output.
#
# **You will learn**
# - how Faster R-CNN's 9 anchors per cell come from 3 aspect ratios x 3 scales;
# - how to copy them onto every cell of the grid, in the order the network's output uses:
#   22500 anchors on an 800 x 800 image, of which 8940 lie inside it, and why exactly 8940;
# - how torchvision's `AnchorGenerator` builds the same boxes, half a cell away and rounded;
# - to explore anchors interactively on a photo;
# - why the order of the anchors matters, through a bug that crashes nothing.
#
# **You need** lessons 00 (boxes) and 01 (stride, feature grid). The README's lesson table gives
# its running time on a quiet 2-core CPU.

# %%
import matplotlib.pyplot as plt
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from tutorial_det.anchors import anchor_base, grid_anchors, inside_anchors
from tutorial_det.exercises import check_anchor_base, check_grid_anchors
from tutorial_det.naive import anchors_loop
from tutorial_det.runtime import median_time_ms, seed_everything
from tutorial_det.samples import load_sample, sample_categories
from tutorial_det.viz import (
    class_colour,
    draw_anchors,
    draw_boxes,
    draw_cell,
    draw_cell_grid,
    draw_legend,
    show_image,
)
from tutorial_det.widgets import AnchorExplorer

seed_everything(0)

# %% [markdown]
# ## 1. Nine anchors for one cell
#
# An anchor has an **aspect ratio** `r = height / width` and a **scale** `k`, measured in cells:
# its area is `(stride x k)^2`, the area of a square `k` cells wide. Solving
# `h x w = (stride k)^2` and `h / w = r` gives
#
# $$h = \text{stride} \cdot k \cdot \sqrt{r}, \qquad w = \text{stride} \cdot k / \sqrt{r}.$$
#
# Faster R-CNN uses ratios 0.5, 1, 2 (wide, square, tall) and scales 8, 16, 32 (squares of 128,
# 256 and 512 pixels at stride 16). The first cell covers pixels 0 to 16, so its anchors are
# centred on `(8, 8)`. Written out with two loops, ratios outside and scales inside:


# %%
def anchors_by_hand(stride, ratios, scales):
    """[len(ratios) * len(scales), 4] xyxy anchors centred on the first cell's centre."""
    centre = stride / 2
    rows = []
    for ratio in ratios:
        for scale in scales:
            height = stride * scale * ratio**0.5
            width = stride * scale / ratio**0.5
            rows.append(
                [centre - width / 2, centre - height / 2, centre + width / 2, centre + height / 2]
            )
    return torch.tensor(rows)


stride, ratios, scales = 16, (0.5, 1.0, 2.0), (8, 16, 32)
base = anchors_by_hand(stride, ratios, scales)
print(" i  ratio  scale   width  height     area   x1, y1, x2, y2")
for i, box in enumerate(base.tolist()):
    w, h = box[2] - box[0], box[3] - box[1]
    corners = ", ".join(f"{v:.2f}" for v in box)
    print(
        f"{i:2d}  {ratios[i // 3]:5}  {scales[i % 3]:5}  {w:6.2f}  {h:6.2f}  {w * h:7.0f}"
        f"   {corners}"
    )
print("same as anchor_base():", torch.allclose(base, anchor_base()))

# %% [markdown]
# Row `i` has ratio `ratios[i // 3]` and scale `scales[i % 3]`. The three anchors of each scale
# have the same area (128² = 16384, 256² = 65536, 512² = 262144 square pixels): the ratio only
# trades width for height. Anchor 0, for example, is 181.02 wide and 90.51 high:
# `16 x 8 / sqrt(0.5)` and `16 x 8 x sqrt(0.5)`. The largest ones reach far outside the image:
# anchor 2 spans x from -354.04 to 370.04.
#
# The package's `anchor_base()` gives the same 9 rows. (The walkthrough printed its anchors as
# `y1, x1, y2, x2`; this course writes every box as `x1, y1, x2, y2`.)
#
# How big is that on a real photo? Here are the 9 anchors of one cell of the astronaut photo,
# resized to 800 x 800 (a square photo, so nothing is distorted), with the cell grid, the chosen
# cell (yellow), and the photo's hand-drawn face and person boxes (magenta, dotted) for
# comparison. Each ratio has its colour; the three nested boxes of a colour are its three scales.

# %%
size = 800
photo800, target = load_sample("astronaut", size=size)  # 512 x 512 -> 800 x 800, boxes scaled
boxes800 = target["boxes"]
names = sample_categories()
keep = [
    i for i, label in enumerate(target["labels"].tolist()) if names[label] in ("face", "person")
]

row, column = 14, 22  # the cell on the astronaut's mouth
cell_anchors = base + torch.tensor([column, row, column, row]) * stride
colours = [class_colour(i // 3) for i in range(9)]
fig, ax = plt.subplots(figsize=(7, 7))
show_image(photo800, ax=ax, title=f"the 9 anchors of cell (row {row}, column {column})")
draw_cell_grid(ax, (size, size), stride, colour="white", alpha=0.3)
draw_boxes(
    ax, boxes800[keep], target["labels"][keep], class_names=names, colour="magenta", linestyle=":"
)
draw_anchors(ax, cell_anchors, colours=colours)
draw_cell(ax, row, column, stride)
draw_legend(
    ax,
    [(f"ratio {r:g}", class_colour(i)) for i, r in enumerate(ratios)]
    + [("hand-drawn box", "magenta", {"linestyle": ":"}), ("the cell", "yellow", {"linewidth": 6})],
)
ax.set_xlim(0, size)
ax.set_ylim(size, 0)
plt.show()
for i in keep:
    x1, y1, x2, y2 = boxes800[i].tolist()
    print(f"{names[int(target['labels'][i])]:>6}: {x2 - x1:.0f} x {y2 - y1:.0f} pixels (w x h)")

# %% [markdown]
# The 128-pixel square (orange, smallest) is close to the face's size, the 512-pixel square to the
# person's width. That is the idea of anchors: whatever the object's size and shape, some anchor
# at a nearby cell is already roughly right, and the network only has to predict a small
# correction.
#
# ## 2. Anchors on every cell
#
# The grid has `800 / 16 = 50` rows and 50 columns. Cell `(i, j)` (row `i`, column `j`) is centred
# on `((j + 0.5) x 16, (i + 0.5) x 16)`: x goes with the column, y with the row, from 8 to 792.
# Its anchors are the first cell's anchors moved by `(16 j, 16 i)`. With broadcasting, no loop:
# the shifts have shape `[50, 50, 1, 4]`, the base `[1, 1, 9, 4]`, the sum `[50, 50, 9, 4]`.

# %%
height = width = size // stride
ys = torch.arange(height) * stride  # shift of each row
xs = torch.arange(width) * stride  # shift of each column
shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")  # [50, 50] each, row-major
shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1)  # [50, 50, 4]
anchors = (shifts[:, :, None, :] + base[None, None, :, :]).reshape(-1, 4)
print("anchors:", tuple(anchors.shape), "=", height, "x", width, "x", len(base))
print("same as grid_anchors:", torch.allclose(anchors, grid_anchors(base, (height, width), stride)))
print("same as the loop version:", torch.allclose(anchors, anchors_loop((height, width), stride)))

# %% [markdown]
# 50 x 50 cells x 9 anchors = 22500 anchors, the same as the package's `grid_anchors` and as
# `anchors_loop`, the plain-Python version that runs one iteration per anchor.
#
# The reshape fixes the **order**: all 9 anchors of cell (0, 0), then the 9 of cell (0, 1), to the
# end of row 0, then row 1. Anchor number `(i x 50 + j) x 9 + a` is anchor `a` of cell `(i, j)`.
# So anchor 9 is the first anchor of cell (0, 1), 16 pixels to the right of anchor 0, and anchor
# 450 = 50 x 9 the first anchor of cell (1, 0), 16 pixels down:


# %%
def centre(box):
    """(x, y) centre of one xyxy box, rounded to 1/100 pixel."""
    return round(((box[0] + box[2]) / 2).item(), 2), round(((box[1] + box[3]) / 2).item(), 2)


for k in (0, 9, 450, 22499):
    cell, a = divmod(k, 9)
    print(
        f"anchor {k:5d}: cell (row {cell // 50}, column {cell % 50}), anchor {a}, "
        f"centre {centre(anchors[k])}"
    )

# %% [markdown]
# The loop version gives the same numbers; the vectorised one is much faster (timings vary from
# machine to machine):

# %%
# NBVAL_IGNORE_OUTPUT
t_loop = median_time_ms(lambda: anchors_loop((height, width), stride), repeat=3)
t_grid = median_time_ms(lambda: grid_anchors(base, (height, width), stride), repeat=20)
print(f"loop: {t_loop:.1f} ms, broadcasting: {t_grid:.2f} ms ({t_loop / t_grid:.0f}x faster)")

# %% [markdown]
# ## 3. Why 8940 anchors lie inside the image
#
# During training, Faster R-CNN ignores every anchor that crosses the image border (the paper
# found that keeping them makes training diverge). An anchor is inside when
# `x1 >= 0, y1 >= 0, x2 <= 800, y2 <= 800`:

# %%
inside = inside_anchors(anchors, (size, size))
print(f"inside: {int(inside.sum())} of {len(anchors)}; crossing the border: {int((~inside).sum())}")

# %% [markdown]
# Where does 8940 come from? An anchor of width `w` fits horizontally when its centre `cx`
# satisfies `w/2 <= cx <= 800 - w/2`; the centres are 8, 24, ..., 792. Counting the columns
# where it fits (`nx`) and the rows where it fits (`ny`), each of the 9 shapes fits at
# `nx x ny` cells:

# %%
centres = torch.arange(width) * stride + stride / 2
total = 0
print("anchor   width  height  nx  x centres  ny  y centres  nx*ny")
for a, box in enumerate(base):
    w, h = (box[2] - box[0]).item(), (box[3] - box[1]).item()
    fits_x = centres[(centres - w / 2 >= 0) & (centres + w / 2 <= size)]
    fits_y = centres[(centres - h / 2 >= 0) & (centres + h / 2 <= size)]
    nx, ny = len(fits_x), len(fits_y)
    total += nx * ny
    print(
        f"{a:6d}  {w:6.1f}  {h:6.1f}  {nx:2d}  {fits_x[0]:3.0f} - {fits_x[-1]:3.0f}"
        f"  {ny:2d}  {fits_y[0]:3.0f} - {fits_y[-1]:3.0f}  {nx * ny:5d}"
    )
print("total:", total)

# %% [markdown]
# The 128-pixel square fits wherever its centre is at least 64 pixels from both borders: centres
# 72 to 728, 42 columns and 42 rows, 1764 cells. The 512-pixel square needs centres from 264 to
# 536: 18 x 18 = 324 cells. The 724.1-pixel-wide anchor (ratio 0.5, scale 32) fits in only 4
# columns, centres 376 to 424, and its tall twin in only 4 rows. The 9 counts add up to 8940.
#
# Per cell, the map below shows how many of its 9 anchors lie inside: all 9 in the middle, fewer
# towards the border, and none in a frame along the border, where even the smallest anchors
# stick out.

# %%
per_cell = inside.reshape(height, width, 9).sum(dim=-1)
fig, ax = plt.subplots(figsize=(5.5, 4.5))
image = ax.imshow(per_cell.numpy(), cmap="viridis", vmin=0, vmax=9)
fig.colorbar(image, ax=ax, label="anchors inside the image")
ax.set_title("inside anchors per cell (50 x 50 grid)")
ax.set_xlabel("column j")
ax.set_ylabel("row i")
plt.show()
frame = torch.ones(height, width, dtype=torch.bool)
frame[3:-3, 3:-3] = False  # the 3 rows and 3 columns along each border
empty = per_cell == 0
print(f"cells with all 9 inside: {int((per_cell == 9).sum())} | with none: {int(empty.sum())}")
print(
    f"  in the frame of 3 rows and 3 columns along the border: {int((empty & frame).sum())}", end=""
)
print(f" of its {int(frame.sum())} cells; inside the frame: {int((empty & ~frame).sum())}", end="")
print(f", {int((empty & ~frame)[:25, :25].sum())} of them in the top-left quarter")

# %% [markdown]
# All 9 fit only where the two largest non-square anchors fit, 4 columns for the wide one times 4
# rows for the tall one: the 16 cells in the middle. No anchor fits in the frame of 3 rows and 3
# columns along the border: their centres (8, 24, 40 pixels from the edge) are closer to it than
# 45.25 pixels, half the shortest side of the smallest anchor. That frame holds 564 of the empty
# cells; the other 20 sit in the corners just inside it (5 per corner), where the anchors that
# are short in one direction are too long in the other.
#
# ## 4. torchvision's `AnchorGenerator`
#
# torchvision builds the same anchors with `AnchorGenerator(sizes, aspect_ratios)`. Its `sizes`
# are the square roots of the areas, `stride x scale` = 128, 256, 512; its aspect ratio is also
# height / width. Two details differ: its cell anchors are centred on `(0, 0)` and **rounded** to
# whole pixels, and it moves them to each cell's top-left corner `(16 j, 16 i)` instead of its
# centre.

# %%
generator = AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
theirs = generator(images, [torch.zeros(1, 512, height, width)])[0]
print("torchvision:", tuple(theirs.shape))
print("their cell anchor 0:", generator.cell_anchors[0][0].tolist())
print("ours, moved to (0, 0):", [round(v, 2) for v in (base[0] - stride / 2).tolist()])
print("centre of anchor 0: theirs", centre(theirs[0]), "ours", centre(anchors[0]))
gap = (anchors - (theirs + stride / 2)).abs()
print(f"largest |ours - (theirs + 8)|: {gap.max().item():.2f} px")
print("their anchors inside the image:", int(inside_anchors(theirs, (size, size)).sum()))

# %% [markdown]
# Reading the numbers:
#
# - Their anchor 0 is `[-91, -45, 91, 45]`; ours, moved to the origin, is
#   `[-90.51, -45.25, 90.51, 45.25]`: torchvision rounds each half-width and half-height to whole
#   pixels. 90.51 becomes 91, an error of 0.49 pixels, the largest of all (the square anchors have
#   whole-pixel sizes and are not changed at all).
# - Their anchor 0 is centred on `(0, 0)`, the top-left *corner* of cell (0, 0); ours on `(8, 8)`,
#   its centre. Adding half a stride to all of theirs gives ours to within that 0.49 pixel: same
#   shapes, same order (row-major, ratios outside, scales inside).
# - The half-cell shift changes which anchors fit: 9321 of theirs lie inside the image against
#   our 8940. torchvision never drops anchors that cross the border (it clips the proposals
#   instead), so the count does not matter to it; in our labelling (lesson 03) it would.
#
# Neither convention is wrong as long as training and inference use the same anchors: the box
# regression learns its offsets relative to whichever anchors it is given. This course uses cell
# centres, which is where lesson 01 showed a cell's receptive field is centred (the
# `first centre` column: 8).
#
# ## 5. Explore
#
# The explorer below draws one cell's anchors on the photo and counts all anchors. Move the
# cell, type other ratios or scales (comma-separated), change the stride. Anchors crossing the
# border are dashed. (With no running kernel, for instance on a web page, the controls do not
# respond.)

# %%
explorer = AnchorExplorer(photo800, row=14, column=22)
explorer

# %% [markdown]
# The sentence above the picture starts with the numbers of sections 2 and 3: 22500 anchors,
# 8940 inside. The cell on the mouth, (14, 22), is centred on `(22.5 x 16, 14.5 x 16) =
# (360, 232)`; 6 of its 9 anchors fit, and its three scale-32 anchors cross the border (dashed:
# the 512-pixel square and the tall one at the top, the wide one at the left).
#
# Every explorer can also be driven from code, which is how we can check what it shows. A larger
# stride with the same scales gives fewer, **larger** anchors, because scales are multiples of
# the stride. (This explorer is not displayed, and its counts depend only on the image's size:
# it gets a blank 800 x 800 image, which keeps the notebook file small.)

# %%
stride32 = AnchorExplorer(torch.ones(3, size, size), stride=32)
print(stride32.sentence)
with stride32.hold():  # change two controls, redraw once
    stride32.scales.value = "4, 8, 16"
print(stride32.sentence)

# %% [markdown]
# At stride 32 the grid has 25 x 25 cells: 5625 anchors. With scales 8, 16, 32 they are 256, 512
# and 1024 pixels wide squares, so only 942 fit inside the 800-pixel image. Halving the scales to
# 4, 8, 16 restores the original 128 to 512 pixel anchors, and 2257 of them fit: about a quarter
# of 8940, because there are a quarter as many cells. The middle cell at stride 32, (12, 12), is
# centred on `(12.5 x 32, 12.5 x 32) = (400, 400)`; with scales 8, 16, 32 its three largest
# anchors (1024 pixels on a side or more) cross the border and 6 of its 9 fit, with scales 4, 8,
# 16 all 9 do.
#
# ## 6. Spot the bug
#
# Here is the grid of anchors built with two loops, one over x and one over y. It is how the
# Faster R-CNN walkthrough this course grew from does it. Its centres are all right. **Look at
# the order of the loops and predict what goes wrong before running the cells below.**


# %%
def anchors_x_then_y(base, feature_size, stride):
    """[H * W * A, 4]: every cell's anchors, with x (columns) in the outer loop."""
    rows, columns = feature_size
    out = []
    for j in range(columns):  # x outside
        for i in range(rows):  # y inside
            out.append(base + torch.tensor([j, i, j, i]) * stride)
    return torch.cat(out) if out else base.new_zeros(0, 4)


suspect = anchors_x_then_y(base, (height, width), stride)
print("shape:", tuple(suspect.shape))
print("same set of boxes:", torch.equal(suspect.unique(dim=0), anchors.unique(dim=0)))
print("same order:", torch.equal(suspect, anchors))

# %% [markdown]
# Same 22500 boxes, different order. Why does the order matter? The RPN head (lesson 04) is a
# 1 x 1 convolution with `9 x 4 = 36` output channels: for every cell, 4 box offsets for each of
# its 9 anchors. Its output `[1, 36, 50, 50]` is turned into one row per anchor with
# `permute(0, 2, 3, 1).reshape(1, -1, 4)`: cell (0, 0)'s 9 predictions, then cell (0, 1)'s, and so
# on, **row-major**. Prediction `k` is compared with anchor `k` in the loss, so both lists must
# walk the cells in the same order.
#
# To see which cell each prediction comes from, fill a fake head output with each cell's own row
# and column, flatten it the way the RPN does, and compare with the cell of each anchor:

# %%
head = torch.zeros(1, 9 * 4, height, width)
head[:, 0::4] = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1)  # its row
head[:, 1::4] = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width)  # its column
predicted_from = head.permute(0, 2, 3, 1).reshape(-1, 4)[:, :2].long()  # [22500, (row, column)]
print("fake head output:", tuple(head.shape))


def cell_of(boxes):
    """(row, column) of the cell each anchor is centred on."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return torch.stack(((cy // stride), (cx // stride)), dim=1).long()


for name, candidate in (("row-major (ours)", anchors), ("x outer loop", suspect)):
    same = (cell_of(candidate) == predicted_from).all(dim=1)
    print(f"{name:>17}: anchor k and prediction k at the same cell for {int(same.sum())} of 22500")
k = (10 * 50 + 40) * 9
print(
    f"k = {k}: prediction from cell {tuple(predicted_from[k].tolist())}, "
    f"x-outer anchor at cell {tuple(cell_of(suspect[k : k + 1])[0].tolist())}"
)

# %% [markdown]
# With the x-outer loop, anchor `k` and prediction `k` agree only on the 50 diagonal cells where
# row = column (50 cells x 9 anchors = 450 of 22500, 2 %). Everywhere else, on this square grid,
# the anchor sits at the **mirror image** of the cell across the diagonal: the prediction made at
# cell (10, 40) is trained against an anchor at cell (40, 10), 480 pixels left and 480 pixels
# down, far outside the 196-pixel receptive field of cell (10, 40). The network is asked to find
# objects it cannot see, and nothing crashes: lesson 04 labels these anchors and shows where the
# positive labels then land.

# %%
fig, ax = plt.subplots(figsize=(6.5, 6.5))
show_image(photo800, ax=ax, title="prediction k (cell (10, 40)) vs. x-outer anchor k")
draw_cell_grid(ax, (size, size), stride, colour="white", alpha=0.25)
draw_cell(ax, 10, 40, stride, colour="gold")
draw_anchors(ax, suspect[k : k + 1], colours=["red"], linewidth=2.5)
draw_anchors(ax, anchors[k : k + 1], colours=["gold"], linewidth=2.5)
draw_legend(
    ax,
    [
        ("cell of prediction k, its anchor (row-major)", "gold"),
        ("anchor k of the x-outer loop", "red"),
    ],
    loc="upper left",
)
ax.annotate(
    "",
    xy=centre(suspect[k]),
    xytext=centre(anchors[k]),
    arrowprops={"arrowstyle": "->", "color": "red", "lw": 2},
)
ax.set_xlim(0, size)
ax.set_ylim(size, 0)
plt.show()

# %% [markdown]
# Yellow: the cell that makes prediction `k`, on the rocket, and the anchor it should refine
# (row-major). Red: the anchor the x-outer loop pairs it with, on the astronaut's arm. The fix is
# to loop over rows (y) outside and columns (x) inside, or to use `meshgrid(..., indexing="ij")`
# as in section 2. `check_grid_anchors` knows this bug:

# %%
check_grid_anchors(anchors_x_then_y)

# %% [markdown]
# The grids with one row, one column or one cell, and the empty grid, cannot tell the two orders
# apart: that is why 4 of the 7 cases pass. A 2 x 3 grid is enough to catch it, and being
# non-square it also catches code that swaps the height and the width, which no square grid can
# show.
#
# ## 7. Exercises
#
# **a) The nine anchors, vectorised.** Write `my_anchor_base(stride, ratios, scales)` without a
# Python loop (hint: a `[len(ratios), 1]` tensor times a `[1, len(scales)]` tensor gives every
# pair). The check runs the known answers, then the loop version of section 1 shows what a pass
# looks like.


# %%
def my_anchor_base(stride, ratios, scales):
    """[len(ratios) * len(scales), 4] xyxy, ratio by ratio, centred on (stride / 2, stride / 2)."""
    raise NotImplementedError  # your code here


check_anchor_base(my_anchor_base)
check_anchor_base(anchors_by_hand)

# %% [markdown]
# **b) The grid, in the right order.** Write `my_grid_anchors(base, feature_size, stride)` that
# returns `[H * W * A, 4]` anchors, row-major. Try it with loops first, then with `meshgrid`.


# %%
def my_grid_anchors(base, feature_size, stride):
    """[H * W * A, 4]: anchor (i * W + j) * A + a is base[a] moved to row i, column j."""
    raise NotImplementedError  # your code here


check_grid_anchors(my_grid_anchors)

# %% [markdown]
# ## Summary
#
# - An anchor with ratio `r = h / w` and scale `k` has `h = stride k sqrt(r)` and
#   `w = stride k / sqrt(r)`; Faster R-CNN uses 3 ratios x 3 scales = 9 anchors per cell, centred
#   on the cell's centre `((j + 0.5) stride, (i + 0.5) stride)`.
# - On 800 x 800 at stride 16: 50 x 50 cells x 9 = 22500 anchors; 8940 lie inside the image, the
#   sum over the 9 shapes of the number of cells where each fits.
# - torchvision's `AnchorGenerator` gives the same anchors shifted by half a stride (centred on
#   cell corners) and rounded to whole pixels (at most 0.49 px here).
# - Anchors must be ordered (row, column, anchor), like the head's output permuted to
#   `(N, H, W, A)`. The x-outer loop produces the same boxes in the wrong order: anchor `k` and
#   prediction `k` then meet at the same cell only on the diagonal.
#
# **More exercises**
# 1. How many anchors does a 600 x 1000 image give at stride 16 with the default 9, and how many
#    lie inside? Predict `nx` and `ny` for the 128-pixel square first, then check with
#    `inside_anchors`.
# 2. Make the head's output channel layout `[1, 4 x 9, H, W]` with the 4 offsets outermost
#    (channel `c x 9 + a`) instead of anchor-major (`a x 4 + c`). Which `view`/`permute` turns it
#    into `[1, H x W x 9, 4]` in our anchor order? Test it with the fake head of section 6.
# 3. Our anchors are centred on cell centres and torchvision's on cell corners. Shift
#    torchvision's by `stride / 2` and count how many of the 22500 then match ours exactly, with
#    and without rounding (`generator.cell_anchors`).
# 4. In the explorer, find ratios and scales such that every cell of the 800 x 800 image keeps at
#    least one anchor inside. What is the largest scale allowed?
#
# Next: **03 · IoU and labelling**, where every inside anchor is labelled object, background or
# ignored.
