# %% [markdown]
# # 11 · Your own data
#
# Every detector so far learned from images generated on the fly. Your own data come as a folder:
# photos of many sizes and a file of boxes written by an annotation tool, in one of two layouts
# nearly every tool exports, Pascal VOC or COCO. This lesson builds a small folder in each
# layout, reads them back with the package's readers, trains an SSD on them with `fit` and then
# with the `tutorial-det` command line, evaluates and runs it, and finally breaks the
# annotations the way real ones break, to see what the package says.
#
# **You will learn**
# - the two layouts: a VOC folder (one XML file per image, 1-based inclusive pixel corners) and a
#   COCO folder (one JSON file, `[x, y, width, height]` boxes, category ids);
# - how the readers check a folder before anything trains: every annotation parsed, every
#   image's header read;
# - why images of mixed sizes are brought to one size, and how letterbox and stretch move the
#   boxes with the pixels, and back;
# - to train and evaluate a detector on folders, in Python and from the command line, with the
#   metrics and drawn boxes in each image's own pixels;
# - what the package says when an annotation is wrong, and where it says it.
#
# **You need** lesson 07 (the SSD trained here), lesson 09 (`fit` and the command line) and lesson
# 10 (mAP). Most of its running time is training; the README's lesson table gives it on a quiet
# 2-core CPU.

# %%
import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_det.cli import main as tutorial_det_cli
from tutorial_det.data import (
    SHAPE_CLASSES,
    CocoDataset,
    ShapesDataset,
    VOCDataset,
    write_coco_folder,
    write_voc_folder,
)
from tutorial_det.metrics import mean_average_precision
from tutorial_det.model_file import ModelSpec, load_model_file, save_model_file
from tutorial_det.models import build_model
from tutorial_det.prose import say
from tutorial_det.resize import Resize, ResizedDetector
from tutorial_det.runtime import pick_device, seed_everything
from tutorial_det.training import evaluate, fit
from tutorial_det.viz import draw_boxes, plot_history, show_image

device = pick_device()
if device.type == "cpu":
    torch.set_num_threads(1)  # the same numbers whatever the number of cores (lesson 04, section 7)
work = Path("own_data")  # everything this lesson writes, beside the notebook
shutil.rmtree(work, ignore_errors=True)

# %% [markdown]
# ## 1. A folder of images of mixed sizes
#
# Photos come in every size. We make some from the synthetic shapes of lessons 06 and 07: each
# image is drawn at one of four sides, with shapes scaled to it, then cut to a rectangle that
# keeps every shape whole, as a photographer's framing would. Their classes are circle, square
# and triangle.

# %%
CLASSES = SHAPE_CLASSES[1:]  # label 1 is a circle, 2 a square, 3 a triangle
SIDES = (96, 128, 160, 192)


def framed_shapes(seed: int, index: int):
    """A shapes image of one of SIDES, cut to a rectangle that keeps every shape whole."""
    rng = np.random.default_rng([seed, index])
    side = int(rng.choice(SIDES))
    scale = side / 128  # shapes of 12 to 64 px on a 128 px image, scaled with the side
    shapes = ShapesDataset(
        1, seed=1000 * seed + index, image_size=side, min_size=12 * scale, max_size=64 * scale
    )
    image, target = shapes[0]
    boxes = target["boxes"]
    left, top = boxes[:, :2].min(dim=0).values.tolist()
    right, bottom = boxes[:, 2:].max(dim=0).values.tolist()
    x0 = int(rng.integers(0, min(left, 0.25 * side) + 1))
    y0 = int(rng.integers(0, min(top, 0.25 * side) + 1))
    x1 = int(rng.integers(max(right, 0.75 * side), side + 1))
    y1 = int(rng.integers(max(bottom, 0.75 * side), side + 1))
    moved = boxes - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
    return image[:, y0:y1, x0:x1], {"boxes": moved, "labels": target["labels"]}


train_items = [framed_shapes(0, i) for i in range(400)]
held_out_items = [framed_shapes(1, i) for i in range(50)]
print("the first six images (width x height):")
print(", ".join(f"{image.shape[2]}x{image.shape[1]}" for image, _ in train_items[:6]))

# %% [markdown]
# ## 2. Two layouts on disk
#
# We write the training images as a **Pascal VOC** folder and the held-out images as a **COCO**
# folder, with the package's writers (`tutorial_det.data.write_voc_folder` and
# `write_coco_folder`; they convert any data set of `(image, target)` items). The images are
# PNG files (lossless) in both:

# %%
write_voc_folder(work / "voc", train_items, CLASSES)
write_coco_folder(work / "coco", held_out_items, CLASSES)
for folder in (work / "voc", work / "coco"):
    for path in sorted(p for p in folder.rglob("*") if p.parent == folder or p.name < "000002"):
        print(f"{path}/" if path.is_dir() else path)
    print(f"  ... {sum(1 for p in folder.rglob('*.png'))} images in all")

# %% [markdown]
# A VOC folder holds one XML file per image in `Annotations/` and the images in `JPEGImages/`
# (the name is historical: any format will do). Each XML file names its image and its size,
# then lists the objects, each with a class name and a box:

# %%
print((work / "voc" / "Annotations" / "000000.xml").read_text())

# %% [markdown]
# VOC boxes are **1-based and inclusive**: `xmin = 1` is the first pixel column and `xmax` is
# the last column the object covers, so a box covering the whole image runs from 1 to the
# image's width. The package keeps boxes as continuous `xyxy` coordinates without a "+1"
# (lesson 00), so the reader subtracts one from `xmin` and `ymin` only:
# `[xmin - 1, ymin - 1, xmax, ymax]`. Objects may carry `<difficult>1</difficult>`: evaluation
# then neither asks a detector to find them nor counts a detection on them as a mistake.
#
# A COCO folder holds one JSON file for all images. Its three lists are `images` (an id, a file
# name relative to the file's folder, the size), `categories` (an id and a name) and
# `annotations` (one per object: its image id, its category id, and `bbox` as
# `[x, y, width, height]` in pixels):

# %%
document = json.loads((work / "coco" / "annotations.json").read_text())
print(json.dumps(document["images"][0]))
print(json.dumps(document["categories"]))
print(json.dumps(document["annotations"][0]))

# %% [markdown]
# ## 3. Reading a folder, checked
#
# `VOCDataset(root, classes)` parses every XML file when it is built and checks every object: a
# known class name, a box inside the image with `xmax >= xmin`. `CocoDataset(root,
# annotation_file)` does the same for the JSON file, and maps COCO's category ids (often sparse,
# with gaps) to labels 1, 2, 3 in ascending id order. Images are decoded only
# when an item is read, so that a large data set opens at once; `check_images()` reads every
# image's **header** (format, pixel count, size) against its annotation, a small fraction of a
# decode, so that a bad file stops a run before its first step rather than hours into it:

# %%
voc = VOCDataset(work / "voc", CLASSES)
coco = CocoDataset(work / "coco", work / "coco" / "annotations.json")
start = time.perf_counter()
voc_checked = voc.check_images()
check_seconds = time.perf_counter() - start
start = time.perf_counter()
decoded = [voc[i][0] for i in range(len(voc))]
decode_seconds = time.perf_counter() - start
print("VOC: ", voc_checked)
print("COCO:", coco.check_images())
print("COCO category id -> label:", coco.category_to_label, "names:", coco.label_names)

# %%
# NBVAL_IGNORE_OUTPUT
print(f"reading the headers took {check_seconds / decode_seconds:.2f} x the time of decoding")

# %% [markdown]
# The boxes read back are the boxes written: the VOC writer rounds to whole pixels and the
# shapes' boxes are whole pixels already.

# %%
voc_error = max(
    (voc[i][1]["boxes"] - item[1]["boxes"]).abs().max().item() for i, item in enumerate(train_items)
)
coco_error = max(
    (coco[i][1]["boxes"] - item[1]["boxes"]).abs().max().item()
    for i, item in enumerate(held_out_items)
)
print(f"largest box difference: VOC {voc_error}, COCO {coco_error}")

# %% [markdown]
# Four of the training images at their true relative sizes, with their boxes:

# %%
fig, axes = plt.subplots(
    1, 4, figsize=(12, 3.4), gridspec_kw={"width_ratios": [voc[i][0].shape[2] for i in range(4)]}
)
for i, ax in enumerate(axes):
    image, target = voc[i]
    show_image(image, ax=ax, title=f"{image.shape[2]} x {image.shape[1]}")
    draw_boxes(ax, target["boxes"], target["labels"], class_names=SHAPE_CLASSES)
plt.show()

# %% [markdown]
# ## 4. One size: letterbox or stretch
#
# The detectors pad a batch to its largest image, so they accept images of mixed sizes. But the
# SSD lays its priors on the padded size (fractions of the image side, lesson 07), so the size
# of an object relative to the priors would depend on which other images share its batch; and
# every detector here is sized for objects of a few dozen pixels. So we bring every image to
# 128 x 128 first, one of two ways (`tutorial_det.resize.Resize`):
#
# - **letterbox**: scale by one factor so that the longer side becomes 128, keeping the shape,
#   and pad with black at the bottom and right;
# - **stretch**: scale each side to 128 on its own; nothing is padded, shapes are distorted.
#
# The boxes move with the pixels: x is multiplied by the width's factor `sx`, y by the height's
# `sy`. A letterbox scales both sides by one factor, but the new size is a whole number of
# pixels, so `sx` and `sy` (new size over old size) can differ in the third decimal. The most
# elongated training image that holds a circle, both ways:


# %%
def elongation(item):
    image, target = item
    height, width = image.shape[1:]
    holds_a_circle = bool((target["labels"] == CLASSES.index("circle") + 1).any())
    return max(height / width, width / height) if holds_a_circle else 0.0


image, target = max((voc[i] for i in range(len(voc))), key=elongation)
letterbox, stretch = Resize(128), Resize(128, "stretch")
fig, axes = plt.subplots(
    1, 3, figsize=(12, 4), gridspec_kw={"width_ratios": [image.shape[2] / image.shape[1], 1, 1]}
)
show_image(image, ax=axes[0], title=f"original {image.shape[2]} x {image.shape[1]}")
draw_boxes(axes[0], target["boxes"], target["labels"], class_names=SHAPE_CLASSES)
for ax, resize in zip(axes[1:], (letterbox, stretch), strict=True):
    resized, moved = resize(image, target)
    sx, sy = resize.factors(*image.shape[1:])
    show_image(resized, ax=ax, title=f"{resize.mode}: sx = {sx:.3f}, sy = {sy:.3f}")
    draw_boxes(ax, moved["boxes"], moved["labels"], class_names=SHAPE_CLASSES)
plt.show()

# %% [markdown]
# The letterboxed circle stays round; the stretched one becomes an ellipse (a detector trained on
# stretched images sees its test images stretched the same way, so it is consistent, but objects
# change shape with the frame). We use letterbox.
# Detections on a resized image go back to the original by dividing by the same factors
# (`prediction_back`), clipped to the original image:

# %%
_, moved = letterbox(image, target)
back = letterbox.prediction_back(moved, image.shape[1:])
print("boxes back in the original pixels:", torch.allclose(back["boxes"], target["boxes"]))

# %% [markdown]
# ## 5. Training with `fit`
#
# `Resize` is a transform of the kind the readers take, `transforms(image, target)`, so the
# training set is the VOC folder read through it. This folder is small enough to read once into
# memory (a list of items is a data set too), so that the steps spend their time on the model
# rather than on decoding the same PNG files again in every epoch; a large folder is read as it
# goes, with `num_workers` processes decoding beside the training. Then the SSD of lesson 07,
# AdamW and a one-cycle learning rate, for a fixed number of steps:

# %%
train_set = VOCDataset(work / "voc", CLASSES, transforms=letterbox)
train_in_memory = [train_set[i] for i in range(len(train_set))]
print(len(train_in_memory), "items; the first image:", list(train_in_memory[0][0].shape))

# %%
# NBVAL_IGNORE_OUTPUT
seed_everything(0)
model = build_model("ssd", len(SHAPE_CLASSES))
steps = 200
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1
)
start = time.perf_counter()
history = fit(
    model,
    train_in_memory,
    optimizer=optimizer,
    scheduler=scheduler,
    max_steps=steps,
    batch_size=16,
    grad_clip_norm=10.0,
    seed=0,
    log_every=50,
    progress=False,
    device=device,
)
print(f"{len(history.step)} steps in {time.perf_counter() - start:.0f} s")

# %%
plot_history(history)
plt.show()

# %% [markdown]
# ## 6. Evaluating in each image's own pixels
#
# The held-out images keep their sizes. `ResizedDetector(model, letterbox)` letterboxes each
# image it is given, runs the SSD and maps the boxes back, so the metrics compare detections
# and annotations in the pixels of the images as they are on disk (COCO's small, medium and
# large objects are judged by their real areas):

# %%
detector = ResizedDetector(model, letterbox)
predictions, targets = evaluate(detector, coco, device=device)
metrics = mean_average_precision(predictions, targets)

# %% jupyter={"source_hidden": true}
say(
    f"On the {len(coco)} held-out images, the SSD trained for {len(history.step)} steps reaches "
    f"mAP@0.5 = **{metrics['map_50']:.3f}** and mAP@[.5:.95] = **{metrics['map']:.3f}**."
)

# %% [markdown]
# Four held-out images at their own sizes, the annotated boxes dashed in white and the
# detections scoring above 0.5 in colour:

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
for ax, (image, truth), found in zip(axes, coco, predictions, strict=False):
    confident = found["scores"] > 0.5
    show_image(image, ax=ax, title=f"{image.shape[2]} x {image.shape[1]}")
    draw_boxes(ax, truth["boxes"], colour="white", linestyle="--")
    draw_boxes(
        ax,
        found["boxes"][confident],
        found["labels"][confident],
        found["scores"][confident],
        class_names=SHAPE_CLASSES,
    )
plt.show()

# %% [markdown]
# ## 7. The same from the command line
#
# `tutorial-det` (lesson 09) takes a folder with `--data voc:DIR` or `--data coco:DIR`, the
# class names of a VOC folder with `--classes`, and the resize with `--resize` (letterbox;
# `--resize-mode stretch` for the other). `tutorial-det train --help` describes both layouts and
# everything it writes. Nearly the training above, written as a command (its learning rate
# follows the command line's schedule, a 5 % linear warm-up then a cosine, not the one-cycle):
#
# ```bash
# tutorial-det train --model ssd --data voc:own_data/voc --classes circle,square,triangle \
#     --resize 128 --epochs 8 --batch-size 16 --lr 0.003 --out own_data/run
# ```
#
# We run it here in this process (`tutorial_det.cli.main` takes the same words), stopped after
# ten steps with `--max-steps`:

# %%
# NBVAL_IGNORE_OUTPUT
train_command = [
    "train", "--model", "ssd", "--data", "voc:own_data/voc", "--classes", "circle,square,triangle",
    "--resize", "128", "--epochs", "8", "--batch-size", "16", "--lr", "0.003",
    "--out", "own_data/run",
]  # fmt: skip
status = tutorial_det_cli(
    [*train_command, "--max-steps", "10", "--no-progress", "--log-every", "5"]
)

# %% [markdown]
# The first line of its output is the header check. `--out` now holds the run's settings, the
# checkpoint to resume from, the losses of every step, and the model file that `evaluate` and
# `detect` read; the model file records the resize with the model:

# %%
print("exit status", status)
print(sorted(p.name for p in (work / "run").iterdir()))
print("the model file's resize:", load_model_file(work / "run" / "model.pt")[1].resize)

# %% [markdown]
# The model trained in section 5 saved as such a model file, then evaluated by the command line
# on the COCO folder gives the numbers of section 6 again:

# %%
save_model_file(
    work / "ssd.pt", model, ModelSpec("ssd", SHAPE_CLASSES, resize=letterbox), {"steps": steps}
)
status = tutorial_det_cli(
    ["evaluate", "--checkpoint", "own_data/ssd.pt", "--data", "coco:own_data/coco"]
)

# %% [markdown]
# `detect` draws what the model finds in any image, in the image's own pixels (the PNG is at least
# 800 pixels wide, so this small image is drawn enlarged), and prints it:

# %%
status = tutorial_det_cli(
    ["detect", "own_data/coco/images/000001.png", "--checkpoint", "own_data/ssd.pt",
     "--out", "own_data/detections"]
)  # fmt: skip
drawn = plt.imread(work / "detections" / "000001.png")
plt.figure(figsize=(8, 8 * drawn.shape[0] / drawn.shape[1]))  # the file's own size at 100 dpi
plt.imshow(drawn)
plt.axis("off")
plt.show()

# %% [markdown]
# Only detections scoring at least `--score-thresh` (0.5 by default) are drawn. Set it too high
# and `detect` finds nothing, and says what it would take:

# %%
status = tutorial_det_cli(
    ["detect", "own_data/coco/images/000001.png", "--checkpoint", "own_data/ssd.pt",
     "--out", "own_data/detections", "--score-thresh", "0.999"]
)  # fmt: skip

# %% [markdown]
# ## 8. When an annotation is wrong
#
# Real annotations break: a box drawn past the image's edge, a class name typed wrong, an image
# replaced by a resized copy while its XML still gives the old size, a JSON file cut short by a
# crash, a file that is not an image. We make each mistake in a copy of the VOC folder (or the
# COCO file) and run the training command on it. Every one stops before the first step, with
# exit status 2 and one `error:` line that names the file, the object where there is one, and
# what is wrong:

# %%
broken = work / "broken"


def run_and_show_error(argv):
    """Run a tutorial-det command here; print its exit status and what it wrote to stderr."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        status = tutorial_det_cli([str(a) for a in argv])
    print(f"exit status {status}: {errors.getvalue().strip()}\n")


def make_mistake(replace_in=None, old="", new="", then=None):
    """A fresh copy of the VOC folder with one change in one of its files."""
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(work / "voc", broken)
    if replace_in is not None:
        path = broken / replace_in
        path.write_text(path.read_text().replace(old, new, 1))
    if then is not None:
        then()


train_broken = [
    "train", "--model", "ssd", "--data", f"voc:{broken}", "--classes", "circle,square,triangle",
    "--resize", "128", "--epochs", "1", "--out", work / "broken_run",
]  # fmt: skip
first_xml = (work / "voc" / "Annotations" / "000000.xml").read_text()
width = first_xml.split("<width>")[1].split("<")[0]
xmax = first_xml.split("<xmax>")[1].split("<")[0]

print("1. a box past the image's right edge:")
make_mistake("Annotations/000000.xml", f"<xmax>{xmax}</xmax>", f"<xmax>{int(width) + 7}</xmax>")
run_and_show_error(train_broken)
print("2. a class name typed wrong:")
make_mistake("Annotations/000003.xml", "<name>circle</name>", "<name>cirle</name>")
run_and_show_error(train_broken)
print("3. an image replaced by a smaller copy:")
make_mistake(then=lambda: plt.imsave(broken / "JPEGImages" / "000002.png", np.zeros((50, 60, 3))))
run_and_show_error(train_broken)
print("4. a file that is not an image:")
make_mistake(then=lambda: (broken / "JPEGImages" / "000004.png").write_text("not a picture"))
run_and_show_error(train_broken)
print("5. a COCO file cut short:")
shutil.copytree(work / "coco", work / "broken_coco")
cut = work / "broken_coco" / "annotations.json"
cut.write_text(cut.read_text()[:300])
train_broken_coco = [*train_broken[:4], f"coco:{work / 'broken_coco'}", *train_broken[7:]]
run_and_show_error(train_broken_coco)

# %% [markdown]
# Two things did not happen: no traceback, and no silent skip. A reader that drops the object
# whose box is wrong, or the image it cannot read, trains on less than you think it does and
# never says so. The same command with `--debug` shows the traceback, for a report.
#
# Errors that only decoding reveals (pixels damaged after a sound header) surface when the item
# is read, during training; `fit` then writes a checkpoint of the last completed step before it
# stops, so nothing trained is lost, and `--resume` continues from it once the file is fixed.
#
# ## Summary
#
# - A VOC folder: `Annotations/*.xml` (image file name and size, objects with a class name and
#   1-based inclusive `xmin ymin xmax ymax`) and the images in `JPEGImages/`. A COCO folder:
#   one JSON file with `images`, `categories` and `annotations` (`bbox` = `[x, y, width,
#   height]`). Both become `xyxy` boxes without "+1" and labels 1, 2, 3, ... (0 is the
#   background).
# - The readers parse and check every annotation when built; `check_images()` reads every
#   image's header before training. Nothing is skipped: a fault stops the run and is named.
# - Images of mixed sizes are letterboxed (or stretched) to one size; boxes move with the pixels,
#   and `ResizedDetector` maps detections back, so metrics and drawings are in each image's own
#   pixels.
# - `fit` trains on the resized folder; `tutorial-det train --data voc:DIR --resize N` does the
#   same from a shell, and the model file it writes carries the resize to `evaluate` and `detect`.
#
# **Exercises**
# 1. Train with `Resize(128, "stretch")` instead of the letterbox, for the same number of steps,
#    and compare `map` and `map_50` on the held-out folder. Which shapes suffer most?
# 2. Mark one object of `000000.xml` as `<difficult>1</difficult>` in a copy of the folder and
#    evaluate a model on it with `mean_average_precision`: which numbers change, and why?
# 3. Write a function that turns a VOC object's `xmin, ymin, xmax, ymax` into the package's
#    `xyxy` box, and check it on the first object of `000000.xml` against `VOCDataset`.
# 4. Convert the COCO folder into a VOC folder with `write_voc_folder(folder, CocoDataset(...),
#    classes)` and train on it from the command line. Does `tutorial-det train` accept it?
