# %% [markdown]
# # 01 · Feature extraction
#
# A detector does not look at pixels directly. A **backbone**, a stack of convolutions and
# poolings, first turns the image into a smaller grid of feature vectors; everything after it
# (anchors, proposals, box regression) works on that grid. This lesson builds the backbone of the
# original Faster R-CNN, VGG16 cut at stride 16, and looks closely at what comes out of it.
#
# **You will learn**
# - why Faster R-CNN keeps exactly 30 of the 31 layers of VGG16's convolutional part, by walking
#   the layers and following the **stride**;
# - how the shape changes layer by layer, from `3 x 800 x 800` to `512 x 50 x 50`;
# - what the **receptive field** of a feature cell is, how to compute it, and how to check it;
# - what feature maps of a real photo look like, and what they can and cannot tell you when the
#   weights are random (as here, offline) rather than trained on ImageNet;
# - the small backbone the training lessons build on instead, how much cheaper it is, and which
#   of its feature maps their detectors read.
#
# **You need** lesson 00 (boxes, IoU) and basic PyTorch (`nn.Module`, `nn.Sequential`, tensors of
# shape `[N, C, H, W]`). The README's lesson table gives its running time on a quiet 2-core CPU.

# %%
from collections import Counter

import matplotlib.pyplot as plt
import torch
import torchvision
from torch import nn

from tutorial_det.backbones import (
    TinyBackbone,
    format_layer_shapes,
    imagenet_normalize,
    layer_shapes,
    vgg16_stride16,
    vgg16_weights_path,
)
from tutorial_det.exercises import check_receptive_field
from tutorial_det.faster_rcnn import TopDownBackbone
from tutorial_det.prose import say
from tutorial_det.runtime import median_time_ms, pick_device, seed_everything
from tutorial_det.samples import load_sample
from tutorial_det.viz import draw_cell_grid, draw_receptive_field, show_feature_maps, show_image

seed_everything(0)
device = pick_device()  # cuda, then mps, then cpu: the same code runs everywhere

# %% [markdown]
# ## 1. VGG16's convolutional part has 31 layers; the detector keeps 30
#
# torchvision's `vgg16()` is an ImageNet classifier: a convolutional part (`features`) followed by
# three fully connected layers (`classifier`) that turn the last feature map into 1000 class
# scores. A detector needs *where* things are, so it keeps only the convolutional part, which
# preserves the image's layout.
#
# Building the whole network just to look at it would allocate and initialise all of its
# parameters (the cell below counts them). On PyTorch's `meta` device a tensor has a shape but no
# memory and no values, so the model below costs nothing:

# %%
with torch.device("meta"):
    vgg = torchvision.models.vgg16(weights=None)


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())


kinds = Counter(type(layer).__name__ for layer in vgg.features)
print("layers in vgg.features:", len(vgg.features), dict(kinds))
n_features, n_classifier, n_total = (
    count_parameters(m) for m in (vgg.features, vgg.classifier, vgg)
)
print(f"parameters: features {n_features:,}, classifier {n_classifier:,}, total {n_total:,}")

# %% jupyter={"source_hidden": true}
say(
    f"The {len(vgg.features)} layers are {kinds['Conv2d']} convolutions, each followed by a ReLU, "
    f"and {kinds['MaxPool2d']} max-poolings. The convolutional part holds only "
    f"{n_features / 1e6:.1f} M of the {n_total / 1e6:.1f} M parameters; the classifier we throw "
    f"away holds the other {100 * n_classifier / n_total:.0f} %."
)

# %% [markdown]
# Every 3 x 3 convolution here has padding 1 and stride 1, so it keeps the height and width. Every
# max-pooling has a 2 x 2 window and stride 2, so it halves them. The **stride** of a layer's
# output is how many input pixels lie between two neighbouring output cells: it is the product
# of the strides of all the layers so far. Walking the layers and multiplying:

# %%
stride = 1
for index, layer in enumerate(vgg.features):
    if isinstance(layer, nn.MaxPool2d):
        stride *= layer.stride
        print(f"layer {index:2d} is a max-pool: the stride becomes {stride}")

# %% [markdown]
# The stride reaches 16 at layer 23 (the fourth pool) and stays 16 through layers 24 to 29: the
# three convolutions of the last block (conv5_1, conv5_2, conv5_3) with their ReLUs. Layer 30,
# the fifth pool, would double it to 32. The Faster R-CNN paper takes its features from conv5_3,
# so the backbone is layers 0 to 29: **30 layers**, stride 16.
#
# Why not go to stride 32? On an 800 x 800 image, stride 16 gives a 50 x 50 grid; stride 32 would
# give 25 x 25, and every cell would have to describe a 32 x 32 patch, too coarse for small
# objects. Why not stop earlier, at stride 8? The deeper layers see more of the image (section 3)
# and, once trained, describe whole object parts instead of edges.
#
# `tutorial_det.backbones.vgg16_stride16` makes this cut by following the strides exactly as
# above (it does not count to 30). It has the same layers as our slice:

# %%
cut = nn.Sequential(*list(vgg.features)[:30])
backbone = vgg16_stride16()  # random weights: see section 4 about ImageNet weights
same_layers = [repr(a) for a in cut] == [repr(b) for b in backbone]
print("layers:", len(backbone), "| same as vgg.features[:30]:", same_layers)
print("stride:", backbone.stride, "| output channels:", backbone.out_channels)
print(f"parameters: {count_parameters(backbone):,}")

# %% [markdown]
# ## 2. Shapes, layer by layer
#
# `layer_shapes(module, input_shape)` pushes a `meta` tensor through the layers (again no memory,
# no arithmetic) and records, for every layer, its output shape, its stride and its receptive
# field. For the walkthrough's image size, 800 x 800:

# %%
rows = layer_shapes(backbone, (1, 3, 800, 800))
print(format_layer_shapes(rows))

# %% [markdown]
# Read the `output shape` column top to bottom:
#
# - the convolutions change only the number of channels: 64 in block 1, then 128, 256, 512, 512;
# - the four pools halve the size: 800 -> 400 -> 200 -> 100 -> 50;
# - the last layer's output is `512 x 50 x 50`: 50 x 50 cells, each a vector of 512 numbers,
#   and 800 / 16 = 50.
#
# The `stride` column is what we computed by hand. The `receptive field` and `first centre`
# columns are the subject of the next section.
#
# A real forward pass gives the same shape. Here on the walkthrough's all-black 800 x 800 image
# (the second cell times it on your machine; section 6 compares that time with a smaller
# backbone's):

# %%
backbone = backbone.to(device).eval()
blank = torch.zeros(1, 3, 800, 800, device=device)
with torch.no_grad():
    features = backbone(blank)
print("features:", tuple(features.shape))

# %%
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    vgg_ms = median_time_ms(lambda: backbone(blank), repeat=1)  # after one untimed run
print(f"VGG16 to stride 16 on one 800 x 800 image: {vgg_ms:.0f} ms on {device}")

# %% [markdown]
# ## 3. Stride and receptive field
#
# Two numbers describe how a feature cell relates to the image:
#
# - the **stride** (16): cell `(i, j)` sits over the 16 x 16 pixel block starting at
#   `(16 j, 16 i)`, and its centre is `((j + 0.5) 16, (i + 0.5) 16)`. Neighbouring cells are 16
#   pixels apart. The table's `first centre` column (8 at the end) confirms where cell `(0, 0)` is
#   centred: lesson 02 puts the anchors exactly there.
# - the **receptive field** (196): the side of the square of input pixels that can influence the
#   cell at all. A 3 x 3 convolution widens the window by 2 cells of its input, and its input's
#   cells are `stride` pixels apart, so by `2 x stride` pixels; a 2 x 2 pool widens it by one input
#   cell (`stride` pixels). So the first convolution sees 3 pixels, the second 5, the first pool 6,
#   the third convolution `6 + 2 x 2 = 10`, and so on down to `164 + 2 x 16 = 196` for conv5_3.
#
# The receptive field is far wider than the stride. That is what lets one cell "see" an object as
# large as its window while the grid is still fine enough to separate nearby objects:

# %%
last = rows[-1]  # conv5_3's row: stride 16, receptive field 196, first centre 8
shared = 1 - last.stride / last.receptive_field  # of a window, along x or y, a neighbour sees

# %% jupyter={"source_hidden": true}
say(
    f"Neighbouring cells see windows shifted by {last.stride} pixels out of "
    f"{last.receptive_field}, so they share {100 * shared:.0f} % of their pixels in each direction."
)

# %% [markdown]
# The figure shows it on a photo: the 16-pixel cell grid, two neighbouring cells on the
# astronaut's face (shaded, red and yellow) with the 196-pixel windows they see, and a third cell
# on the mission patch (blue), far enough below them that its window shares no pixel with
# theirs.

# %%
photo, photo_target = load_sample("astronaut")  # [3, 512, 512], boxes in photo_target
fig, ax = plt.subplots(figsize=(6.5, 6.5))
show_image(photo, ax=ax, title="stride 16 between cells, receptive field 196 per cell")
draw_cell_grid(ax, photo.shape[-2:], last.stride, colour="white", alpha=0.35)
for row, column, colour in ((7, 13, "tab:red"), (7, 14, "gold"), (24, 10, "deepskyblue")):
    draw_receptive_field(
        ax, row, column, last.stride, last.receptive_field, last.centre, colour=colour
    )
ax.set_xlim(0, 512)
ax.set_ylim(512, 0)
plt.show()

# %% [markdown]
# The receptive field is not an estimate: outside it, nothing can change the cell. We can check
# the exact edges with the real network. On a random 256 x 256 image the grid is 16 x 16. Cell
# `(8, 8)` is centred at the first cell's centre plus 8 strides, and its window reaches half the
# receptive field to each side. Replace one whole column of pixels with noise and see whether
# that cell's 512 features move:

# %%
centre_x = last.centre + 8 * last.stride  # cell (8, 8)'s centre column
first, end = int(centre_x - last.receptive_field / 2), int(centre_x + last.receptive_field / 2)
print(f"cell (8, 8): centred at x = {centre_x:g}, its window spans columns {first} to {end - 1}")
generator = torch.Generator().manual_seed(0)
image = torch.rand(1, 3, 256, 256, generator=generator).to(device)
with torch.no_grad():
    before = backbone(image)[0, :, 8, 8]
    for column in (first - 1, first, end - 1, end):
        changed = image.clone()
        changed[..., column] = torch.rand(1, 3, 256, generator=generator).to(device)
        after = backbone(changed)[0, :, 8, 8]
        print(f"noise in column {column}: cell (8, 8) changes: {not torch.equal(before, after)}")

# %% [markdown]
# Columns 37 and 234 lie just outside the window and leave the cell exactly as it was; columns 38
# and 233, its first and last columns, change it. In practice the pixels near the window's
# centre matter much more than those near its edges (the *effective* receptive field is smaller,
# roughly Gaussian), and cells near the image border see part of their window in the zero
# padding, but no pixel outside the window can matter.
#
# ## 4. Feature maps of a real photo, and the missing ImageNet weights
#
# The Faster R-CNN paper starts from VGG16 weights trained on ImageNet. torchvision can download
# them (a file of about half a gigabyte) into the torch hub cache; this course never downloads
# anything while a notebook runs, and the machine that built this notebook has no internet. The
# cells below name the file and only look whether it is already in the cache:

# %%
weights_file = vgg16_weights_path()
print("the file:", weights_file.name)

# %%
# NBVAL_IGNORE_OUTPUT
have_imagenet = weights_file.is_file()
print("in the torch hub cache:", have_imagenet)

# %% [markdown]
# Here the answer was `False`, so everything below uses **random weights** (He initialisation,
# seeded, so every run is the same). `vgg16_stride16(pretrained=True)` would try the download and,
# offline, fall back to random weights after printing a single line such as
# `VGG16 ImageNet weights unavailable (URLError: ...); using random weights`.
#
# To get the real weights, on a machine with internet run once
#
# ```
# python -c "from tutorial_det.backbones import load_vgg16_imagenet_state_dict as f; f()"
# ```
#
# or copy the file `vgg16-397923af.pth` from any torchvision installation into the folder
# `vgg16_weights_path().parent` (set `TORCH_HOME` to move it). Re-run this notebook and the last
# cell of this section draws the ImageNet feature maps too.
#
# Networks trained on ImageNet expect images normalised with ImageNet's channel means and
# standard deviations, so we normalise the photo the same way before the forward pass:

# %%
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def normalise(image):
    """[3, H, W] in [0, 1] -> [1, 3, H, W] as the ImageNet-trained VGG16 expects."""
    return ((image - IMAGENET_MEAN) / IMAGENET_STD)[None]


print(
    "same as tutorial_det.backbones.imagenet_normalize:",
    torch.equal(normalise(photo), imagenet_normalize(photo)[None]),
)
with torch.no_grad():
    photo_features = backbone(normalise(photo).to(device))[0].cpu()
zero_share = (photo_features == 0).float().mean().item()
silent = int((photo_features.flatten(1).amax(dim=1) == 0).sum())
print("photo:", tuple(photo.shape), "-> features:", tuple(photo_features.shape))
print(f"values exactly 0: {zero_share:.0%}; channels that are 0 everywhere: {silent} of 512")

# %% jupyter={"source_hidden": true}
say(
    f"The 512 x 512 photo gives a {photo_features.shape[1]} x {photo_features.shape[2]} grid "
    f"(512 / 16). {100 * zero_share:.0f} % of all values are exactly 0: the last layer is a "
    "ReLU, and with random weights its input is positive or negative about equally often. "
    f"{silent} channels are 0 everywhere on this photo: their filter never produced a positive "
    "value on it."
)

# %% [markdown]
# First the photo next to the average of all 512 channels, cell by cell; then the 16 channels
# that vary most across the image, each with its own colour scale (bright = its largest value).

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5))
show_image(photo, ax=left, title="the photo, 512 x 512")
right.imshow(photo_features.mean(dim=0).numpy(), cmap="viridis")
right.set_title("mean over the 512 channels, 32 x 32 cells")
right.set_axis_off()
plt.show()

busiest = photo_features.flatten(1).std(dim=1).topk(16).indices.tolist()
axes = show_feature_maps(photo_features, channels=busiest, ncols=8)
axes[0, 0].figure.suptitle("VGG16 (random weights): the 16 busiest of 512 channels")
plt.show()

# %% [markdown]
# **What random-weight maps show.** The photo's layout is still there. The strongest mean
# responses sit where the photo has fine detail and strong contrast: around the mission patch
# and the name badge, the white helmet at the bottom right, and the ring around the neck. Flat
# areas (the plain wall at the top, the flag's broad stripes, the smooth orange suit) respond
# more weakly, and so does a one-cell frame around the border, where part of every window is zero
# padding. A random 3 x 3 filter is still a local filter (some difference or average of
# neighbouring pixels), so stacks of them with ReLUs and pools still respond to colour and
# contrast, and each cell's vector still describes its own window of the image. This is why a
# detector can be trained from random weights at all (the training lessons do exactly that, on
# the small backbone of section 6).
#
# **What they do not show.** No channel means anything: none responds to faces, helmets or
# flags in particular, and two cells with similar vectors merely have similar colours and
# textures. ImageNet training is what turns the deep channels into detectors of object parts;
# that is why Faster R-CNN starts from it, and why its features separate objects from background
# with far fewer detection examples.

# %%
# NBVAL_IGNORE_OUTPUT
if have_imagenet:
    trained = vgg16_stride16(pretrained=True).to(device).eval()
    with torch.no_grad():
        trained_features = trained(normalise(photo).to(device))[0].cpu()
    busiest = trained_features.flatten(1).std(dim=1).topk(16).indices.tolist()
    axes = show_feature_maps(trained_features, channels=busiest, ncols=8)
    axes[0, 0].figure.suptitle("VGG16 (ImageNet weights): the 16 busiest of 512 channels")
    plt.show()
else:
    print("No ImageNet weights cached: see above for how to get them.")

# %% [markdown]
# ## 5. Spot the bug
#
# The walkthrough this course grew from finds the cut point by running the layers on a test image
# and stopping when the feature map gets smaller than `800 // 16`. The function below does that.
# It returns the right 30 layers for the 800 x 800 image. **Before running the next cell, find
# the image size for which it silently returns the wrong backbone.**


# %%
def cut_by_size(layers, image_shape):
    """Keep layers while the feature map is at least 800 // 16 = 50 rows high."""
    x = torch.empty(image_shape, device="meta")
    kept = []
    for layer in layers:
        x = layer(x)
        if x.shape[2] < 800 // 16:
            break
        kept.append(layer)
    return nn.Sequential(*kept)


for shape in [(1, 3, 800, 800), (1, 3, 600, 1000)]:
    layers = cut_by_size(vgg.features, shape)
    out = layer_shapes(layers, shape)[-1]
    print(f"image {shape[2]} x {shape[3]}: {len(layers)} layers, stride {out.stride}, ", end="")
    print(f"output {out.shape[1]} x {out.shape[2]} x {out.shape[3]}")

# %% [markdown]
# The 800 in `800 // 16` is the *test image's* height, hard-coded. A 600 x 1000 image (the usual
# Faster R-CNN input, shorter side 600) falls below 50 rows already after the fourth pool
# (600 / 16 rounds down to 37 rows), so the function stops at stride 8 and keeps 23 layers, whose
# output is 600 / 8 = 75 by 1000 / 8 = 125 cells. Nothing crashes: the output still has 512
# channels, so the region proposal network built on top accepts it, and every anchor laid out
# for stride 16 is then placed at twice the distance of the cell it should belong to. The fix is
# to cut where the **stride** reaches 16, which depends only on the layers, never on an image:
# that is what `vgg16_stride16` does.
#
# ## 6. A backbone that trains on a CPU
#
# VGG16's convolutional part is fine on a GPU but far too slow to train on a laptop (section 2
# timed one image). The training lessons build on `TinyBackbone` instead: four stages of 3 x 3
# convolutions with BatchNorm, 32-64-128-128 channels, a 2 x 2 pool after each stage, so the same
# stride 16 at the end. Its layer table on the 128 x 128 images of those lessons:

# %%
tiny = TinyBackbone().to(device).eval()
tiny_rows = layer_shapes(tiny, (1, 3, 128, 128))
print(format_layer_shapes(tiny_rows))

# %% [markdown]
# The layer names `2.3` read "stage 2, layer 3": the stages are `nn.Sequential`s inside the
# backbone, and `layer_shapes` walks into them. The output is `128 x 8 x 8` (128 / 16 = 8), with a
# receptive field of 70 pixels, more than half of the 128-pixel image.
#
# The training lessons' detectors do not read that last map alone. On a 128-pixel image a stride-16
# cell is wider than the smallest objects there, and its anchors sit 16 pixels apart. So the Faster
# R-CNN of lessons 04 (its last part) and 06 builds on `TopDownBackbone`: the stride-8 map of stage
# 2 (layer `2.6`, 16 x 16 cells), to which the stride-16 map of stage 3 is added, upsampled, as one
# level of a feature pyramid (the `TopDownBackbone` docstring gives its formula; lesson 06 lists it
# among the detector's settings). The SSD of lessons 07, 09, 10 and 11 reads the stride-8 and
# stride-16 maps of a `TinyBackbone` with its first three stages at half width (16-32-64-128
# channels), and two coarser maps of its own. The top-down backbone on the same 128 x 128 input:

# %%
top_down = TopDownBackbone().to(device).eval()
with torch.no_grad():
    top_down_features = top_down(torch.zeros(1, 3, 128, 128, device=device))
print("TopDownBackbone: stride", top_down.stride, "| features:", tuple(top_down_features.shape))

# %% [markdown]
# How much cheaper is it? We count the multiply-adds of every convolution from the layer table
# (output height x width x output channels x input channels x kernel area) and compare both
# backbones on the same 800 x 800 input:


# %%
def conv_multiply_adds(model, input_shape):
    """Multiply-adds of the model's convolutions for one input of input_shape, per stride."""
    modules = dict(model.named_modules())
    per_stride = Counter()
    for row in layer_shapes(model, input_shape):
        layer = modules[row.name]
        if isinstance(layer, nn.Conv2d):
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            per_cell = layer.out_channels * layer.in_channels // layer.groups * kernel
            per_stride[row.stride] += row.shape[2] * row.shape[3] * per_cell
    return per_stride


print(f"{'':>18}  {'parameters':>10}  G multiply-adds  = at strides 1 + 2 + 4 + 8 + 16")
cost = {}
for name, model in (("VGG16 to stride 16", backbone), ("TinyBackbone", tiny)):
    per_stride = conv_multiply_adds(model, (1, 3, 800, 800))
    cost[name] = count_parameters(model), per_stride.total()
    parts = " + ".join(f"{per_stride[s] / 1e9:.1f}" for s in (1, 2, 4, 8, 16))
    print(f"{name:>18}: {cost[name][0]:>10,}  {cost[name][1] / 1e9:15.1f}  = {parts}")
(vgg_params, vgg_macs), (tiny_params, tiny_macs) = cost.values()

# %% jupyter={"source_hidden": true}
say(
    f"TinyBackbone has {vgg_params / tiny_params:.0f} times fewer parameters ({tiny_params:,} "
    f"against {vgg_params:,}) and needs {vgg_macs / tiny_macs:.0f} times fewer multiply-adds "
    f"({tiny_macs / 1e9:.1f} G against {vgg_macs / 1e9:.1f} G)."
)

# %% [markdown]
# VGG16's cost is spread over its blocks: each pool quarters the number of cells, and the next
# block doubles the channels, which quadruples the cost per cell of a convolution, so a block of
# three convolutions costs the same at stride 4 as at stride 8. TinyBackbone has fewer and
# narrower convolutions at every stride. On the clock (your numbers will differ; the ratio is
# what matters):

# %%
# NBVAL_IGNORE_OUTPUT
with torch.no_grad():
    tiny_ms = median_time_ms(lambda: tiny(blank), repeat=3)
print(f"VGG16 to stride 16: {vgg_ms:7.0f} ms per 800 x 800 image")
print(f"TinyBackbone      : {tiny_ms:7.0f} ms per 800 x 800 image ({vgg_ms / tiny_ms:.0f}x faster)")

# %% [markdown]
# The measured speed-up (last line) is usually smaller than the ratio of multiply-adds: the small
# network's BatchNorm, ReLU and pooling layers cost memory traffic that the multiply-add count
# does not see. Every backbone here gives the same kind of output, a grid of feature vectors with
# a known stride; anchors (lesson 02), labels (03), the region proposal network (04) and RoI
# pooling (05) take that stride as a parameter, so they work on any of them.
#
# ## 7. Exercise: compute a receptive field
#
# Write `my_receptive_field(net)` that returns `(stride, receptive_field)` of the last layer of an
# `nn.Sequential` of `Conv2d`, `MaxPool2d`, `ReLU` and `BatchNorm2d` layers (possibly nested, like
# TinyBackbone's stages). Generalise the two rules from section 3: a layer with kernel `k`, stride
# `s` and dilation `d` widens the field by `d (k - 1)` times the stride so far (section 3's 3 x 3
# convolution has `d = 1`: 2 strides), then multiplies the stride by `s`; ReLU and BatchNorm change
# nothing.
#
# `check_receptive_field` compares your function with the package's `layer_shapes` on networks
# from one convolution to VGG16 and, when a case fails, names the mistake first. First, a tempting
# wrong answer: adding up the kernels and forgetting the strides.


# %%
def sum_of_kernels(net):
    """Wrong on purpose: adds up the kernels and ignores every stride."""
    field = 1
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            field += k - 1
    return (1, field)


check_receptive_field(sum_of_kernels)

# %% [markdown]
# The check names two causes: the strides, and the dilation, which the kernel sum never reads. The
# kernel sum passes the first two cases (stride 1, no dilation) and fails all the others. It always
# reports stride 1: the smallest failing case, a convolution then a pool, gets the field (4) right
# but the stride wrong. In deeper networks the field is wrong too: after a stride-2 layer every
# further kernel tap is 2 pixels wide, after stride 16 it is 16 pixels wide, and a dilated kernel
# spans more pixels than it has taps. Now your version: replace the `raise` and run the cell.


# %%
def my_receptive_field(net):
    """(stride, receptive field) of the last layer of net."""
    raise NotImplementedError  # your code here


check_receptive_field(my_receptive_field)

# %% [markdown]
# ## Summary
#
# - A backbone turns a `[3, H, W]` image into a `[C, H / s, W / s]` grid of feature vectors. For
#   Faster R-CNN it is VGG16's convolutional part cut where the stride reaches 16: layers 0 to 29,
#   `3 x 800 x 800 -> 512 x 50 x 50`, 14.7 M parameters.
# - Cut by following the stride through the layers, never by testing sizes on one image.
# - Stride = distance between neighbouring cells in pixels (16); receptive field = the window of
#   pixels that can affect a cell (196 for conv5_3), computed layer by layer and exact.
# - Random-weight features keep the image's layout but carry no meaning; ImageNet weights are
#   what make deep channels respond to object parts. Nothing here downloads them: put the file in
#   the torch hub cache to use them.
# - `TinyBackbone` has the same stride 16 at 1/27 of the parameters and 1/13 of the
#   multiply-adds: the training lessons' detectors are built on it and trained from scratch on a
#   CPU. Faster R-CNN reads its stride-8 map enriched with the stride-16 one (`TopDownBackbone`),
#   SSD several of its maps.
#
# **More exercises**
# 1. Cut VGG16 at stride 8 instead (which layer index?). What is the output shape for 800 x 800,
#    and how many anchors would lesson 02's 9-per-cell scheme then produce?
# 2. Measure the *effective* receptive field: take the gradient of one cell's feature sum with
#    respect to a random input (use `requires_grad`) and plot the mean absolute gradient per
#    input column. How wide is the region that holds most of it, compared with 196?
# 3. Change `TinyBackbone(widths=..., depths=...)` so that its receptive field on 128 x 128
#    images exceeds 128 pixels, keeping the stride at 16. Check your answer with `layer_shapes`.
# 4. If you can get the ImageNet weights, compare the cosine similarity of the feature vectors of
#    two face cells and of a face cell and a background cell, with random and with trained weights.
#
# Next: **02 · Anchors**, where every one of the 50 x 50 cells gets 9 reference boxes.
